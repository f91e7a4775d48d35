//! `set-field`: sets custom fields of the item. Config: `{"fields":{"key": value, ...}}`.

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    fields: serde_json::Map<String, serde_json::Value>,
}

struct SetField;

impl Guest for SetField {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let fields = serde_json::Value::Object(config.fields).to_string();
        voronka_sdk::items::update_fields(&ctx.item.type_key, ctx.item.id, &fields)?;
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(SetField);
