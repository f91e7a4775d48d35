//! `create-task`: creates a task linked to the item. Config: the body of `POST /tasks`
//! (`title`, `description`, `responsible`, `deadline_in_s`, `require_result`, `tags`, ...); the
//! title and description take placeholders (`{{item.title}}`, `{{item.fields.KEY}}`, ...).
//! Without `responsible` the task goes to the item's responsible.

use serde_json::{Map, Value, json};
use voronka_sdk::robot::{Context, Error, Guest, Outcome};

struct CreateTask;

impl Guest for CreateTask {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let mut task: Map<String, Value> = voronka_sdk::config(&ctx.config)?;
        for key in ["title", "description"] {
            if let Some(Value::String(text)) = task.get(key) {
                let rendered = voronka_sdk::render(text, &ctx.item);
                task.insert(key.into(), Value::String(rendered));
            }
        }
        task.entry("responsible").or_insert_with(|| json!({"relation": "responsible"}));
        let this = json!({"type": ctx.item.type_key, "id": ctx.item.id});
        match task.get_mut("links") {
            Some(Value::Array(links)) => links.insert(0, this),
            _ => {
                task.insert("links".into(), json!([this]));
            }
        }
        voronka_sdk::tasks::create(&Value::Object(task).to_string())?;
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(CreateTask);

#[cfg(test)]
mod tests {
    use super::*;
    use voronka_sdk::testing::MemoryHost;

    #[test]
    fn links_the_item_and_defaults_the_responsible() {
        let mut host = MemoryHost::new();
        let deal = host.add_item("deal", "Kitchen", json!({}));
        let config = r#"{"title": "Measure {{item.title}}", "deadline_in_s": 3600}"#;
        host.run_robot::<CreateTask>(&deal, "measuring", config).expect("the robot runs");
        assert_eq!(
            host.tasks,
            vec![json!({
                "title": "Measure Kitchen",
                "deadline_in_s": 3600,
                "responsible": {"relation": "responsible"},
                "links": [{"type": "deal", "id": deal.id}]
            })]
        );
    }
}
