//! `create-linked-item`: creates an item of another type whose parent is this item, copying
//! mapped fields (the hand-over of a deal to production). Config:
//! `{"type":"production","title":"Production: {{item.title}}","funnel":..?,"stage":..?,
//!   "responsible": "inherit" | user id | {"role":..} | {"relation":..},
//!   "copy":{"target_field":"source_field"},"fields":{"target_field": value}}`.
//!
//! The new item's responsible is this item's unless `responsible` says otherwise (an assignee
//! is resolved against this item). A `fields` value may hold placeholders of this item
//! (`{{item.title}}`, `{{item.fields.KEY}}`): a value that is one placeholder of a field
//! copies that field's value as it is (a number stays a number); other text is rendered.

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
    #[serde(default = "inherit")]
    responsible: serde_json::Value,
}

fn inherit() -> serde_json::Value {
    serde_json::Value::from("inherit")
}

/// A configured field value with this item's placeholders filled in.
fn fill(value: serde_json::Value, ctx: &Context, source: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let serde_json::Value::String(text) = value else { return value };
    let whole = text.trim().strip_prefix("{{").and_then(|t| t.strip_suffix("}}")).map(str::trim);
    if let Some(key) = whole.and_then(|name| name.strip_prefix("item.fields."))
        && !key.contains("{{")
    {
        return source.get(key).cloned().unwrap_or(serde_json::Value::Null);
    }
    if text.contains("{{") { voronka_sdk::render(&text, &ctx.item).into() } else { text.into() }
}

struct CreateLinkedItem;

impl Guest for CreateLinkedItem {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let source = ctx.item.fields();
        let mut fields: serde_json::Map<String, serde_json::Value> =
            config.fields.into_iter().map(|(key, value)| (key, fill(value, &ctx, &source))).collect();
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
            "responsible": config.responsible,
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
