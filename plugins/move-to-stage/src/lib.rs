//! `move-to-stage`: moves the item. Config: `{"stage": "...", "funnel": "..."?}`, or
//! `{"return": true, "stage": "..."?}` to move it back to the funnel it was in before its last
//! change of funnel (to the stage named, or to the stage it left there).

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    funnel: Option<String>,
    #[serde(default, rename = "return")]
    back: bool,
}

struct MoveToStage;

impl Guest for MoveToStage {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let (type_key, id) = (&ctx.item.type_key, ctx.item.id);
        match (config.back, config.stage) {
            (true, stage) => voronka_sdk::items::return_to_funnel(type_key, id, stage.as_deref())?,
            (false, Some(stage)) => voronka_sdk::items::move_to_stage(type_key, id, config.funnel.as_deref(), &stage)?,
            (false, None) => return Err(voronka_sdk::error("invalid-config", "a stage, or \"return\": true")),
        }
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(MoveToStage);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use voronka_sdk::testing::MemoryHost;

    #[test]
    fn returns_to_the_funnel_the_item_came_from() {
        let mut host = MemoryHost::new();
        let deal = host.add_item("deal", "Kitchen", json!({}));
        let refused = host.run_robot::<MoveToStage>(&deal, "new", r#"{"return": true}"#).err();
        assert_eq!(refused.map(|e| e.code), Some("conflict".to_string()));
        host.run_robot::<MoveToStage>(&deal, "new", r#"{"funnel": "claims", "stage": "open"}"#).expect("moves");
        host.run_robot::<MoveToStage>(&deal, "open", r#"{"return": true, "stage": "won"}"#).expect("returns");
        let back = host.item("deal", deal.id).expect("the deal");
        assert_eq!((back.funnel.as_deref(), back.stage.as_deref()), (Some("default"), Some("won")));
    }
}
