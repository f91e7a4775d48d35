//! `move-to-stage`: moves the item. Config: `{"stage": "...", "funnel": "..."?}`.

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    stage: String,
    #[serde(default)]
    funnel: Option<String>,
}

struct MoveToStage;

impl Guest for MoveToStage {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        voronka_sdk::items::move_to_stage(&ctx.item.type_key, ctx.item.id, config.funnel.as_deref(), &config.stage)?;
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(MoveToStage);
