//! `create-linked-item`: creates an item of another type whose parent is this item, copying
//! mapped fields (the hand-over of a deal to production). Config:
//! `{"type":"production","title":"Production: {{item.title}}","funnel":..?,"stage":..?,
//!   "copy":{"target_field":"source_field"},"fields":{"target_field": value}}`.

use voronka_sdk::ItemExt;
use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    #[serde(rename = "type")]
    type_key: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    funnel: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    copy: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

struct CreateLinkedItem;

impl Guest for CreateLinkedItem {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let source = ctx.item.fields();
        let mut fields = config.fields;
        for (target, from) in config.copy {
            let Some(from) = from.as_str() else {
                return Err(voronka_sdk::error("invalid-config", format!("copy.{target} must name a source field")));
            };
            if let Some(value) = source.get(from) {
                fields.insert(target, value.clone());
            }
        }
        let title = voronka_sdk::render(config.title.as_deref().unwrap_or("{{item.title}}"), &ctx.item);
        let mut input = serde_json::json!({
            "title": title,
            "parents": [{"type": ctx.item.type_key, "id": ctx.item.id}],
            "fields": fields,
        });
        if let Some(funnel) = config.funnel {
            input["funnel"] = funnel.into();
        }
        if let Some(stage) = config.stage {
            input["stage"] = stage.into();
        }
        let id = voronka_sdk::items::create(&config.type_key, &input.to_string())?;
        Ok(Outcome { message: Some(format!("created {} {id}", config.type_key)) })
    }
}

voronka_sdk::export_robot!(CreateLinkedItem);
