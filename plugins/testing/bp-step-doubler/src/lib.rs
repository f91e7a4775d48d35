//! A business-process step for the tests: multiplies the variable `n` by the config's
//! `factor` into `product`, takes the branch `wasm`, and sets the item's field `size` to `W`.

use serde_json::json;
use voronka_sdk::Error;
use voronka_sdk::bp_step::{Guest, StepContext, StepOutcome};

struct Doubler;

impl Guest for Doubler {
    fn execute(ctx: StepContext) -> Result<StepOutcome, Error> {
        let config: serde_json::Value = voronka_sdk::config(&ctx.config)?;
        let variables: serde_json::Value = voronka_sdk::config(&ctx.variables)?;
        let product = variables["n"].as_i64().unwrap_or(0) * config["factor"].as_i64().unwrap_or(1);
        voronka_sdk::items::update_fields(&ctx.item.type_key, ctx.item.id, &json!({"size": "W"}).to_string())?;
        Ok(StepOutcome { variables: json!({ "product": product }).to_string(), branch: Some("wasm".into()) })
    }
}

voronka_sdk::export_bp_step!(Doubler);
