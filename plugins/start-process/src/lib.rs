//! `start-process`: starts a business process on the item. Config:
//! `{"template": "launch-production", "params": {...}}`.

use serde_json::{Map, Value};
use voronka_sdk::ItemRef;
use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    template: String,
    #[serde(default)]
    params: Map<String, Value>,
}

struct StartProcess;

impl Guest for StartProcess {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let item = ItemRef { type_key: ctx.item.type_key.clone(), id: ctx.item.id };
        voronka_sdk::processes::start(&config.template, &item, &Value::Object(config.params).to_string())?;
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(StartProcess);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use voronka_sdk::testing::MemoryHost;

    #[test]
    fn starts_the_template_on_the_item() {
        let mut host = MemoryHost::new();
        let deal = host.add_item("deal", "Kitchen", json!({}));
        let config = r#"{"template": "launch-production", "params": {"urgent": true}}"#;
        host.run_robot::<StartProcess>(&deal, "production", config).expect("the robot runs");
        assert_eq!(host.processes.len(), 1);
        assert_eq!(host.processes[0].0, "launch-production");
        assert_eq!(host.processes[0].1.id, deal.id);
        assert_eq!(host.processes[0].2, json!({"urgent": true}));
    }
}
