//! `add-comment`: adds a timeline entry. Config: `{"text": "Measured {{item.title}}"}`;
//! placeholders: `{{item.title}}`, `{{item.id}}`, `{{item.stage}}`, `{{item.fields.KEY}}`.

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    text: String,
}

struct AddComment;

impl Guest for AddComment {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let text = voronka_sdk::render(&config.text, &ctx.item);
        voronka_sdk::timeline::add_entry(&ctx.item.type_key, ctx.item.id, &text)?;
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(AddComment);
