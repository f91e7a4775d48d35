//! A trigger plugin for the tests: matches an `item.updated` event whose item's title contains
//! the configured word. Config: `{"word": "urgent"}`; `{"word": "!fail"}` makes it fail, to
//! show that a failing trigger is contained.

use voronka_sdk::Error;
use voronka_sdk::trigger::Guest;

struct Keyword;

impl Guest for Keyword {
    fn matches(event: String, config: String) -> Result<bool, Error> {
        let event: serde_json::Value = voronka_sdk::config(&event)?;
        let config: serde_json::Value = voronka_sdk::config(&config)?;
        let word = config["word"].as_str().unwrap_or_default();
        if word == "!fail" {
            return Err(Error { code: "refused".into(), message: "asked to fail".into() });
        }
        let title = event["item"]["title"].as_str().unwrap_or_default();
        Ok(event["kind"] == "item.updated" && !word.is_empty() && title.contains(word))
    }
}

voronka_sdk::export_trigger!(Keyword);
