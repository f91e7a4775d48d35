//! Example robot: when an item enters the stage, set a date field to "today + N days" (in UTC)
//! and note it on the timeline. Config: `{"field": "install_date", "days": 3}`.

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    field: String,
    days: i64,
}

struct SetDeadline;

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Guest for SetDeadline {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        let today = voronka_sdk::clock::now().div_euclid(86_400_000_000);
        let (y, m, d) = civil_from_days(today + config.days);
        let date = format!("{y:04}-{m:02}-{d:02}");
        let fields = format!("{{\"{}\":\"{date}\"}}", config.field);
        voronka_sdk::items::update_fields(&ctx.item.type_key, ctx.item.id, &fields)?;
        voronka_sdk::timeline::add_entry(&ctx.item.type_key, ctx.item.id, &format!("Deadline set to {date}"))?;
        Ok(Outcome { message: Some(date) })
    }
}

voronka_sdk::export_robot!(SetDeadline);

#[cfg(test)]
mod tests {
    use voronka_sdk::ItemExt;
    use voronka_sdk::testing::MemoryHost;

    use super::*;

    #[test]
    fn sets_the_deadline_and_says_so() {
        let mut host = MemoryHost::new();
        let item = host.add_item("deal", "Kitchen", serde_json::json!({"size": "1200x600"}));
        let outcome = host.run_robot::<SetDeadline>(&item, "measuring", r#"{"field":"install_date","days":3}"#);
        assert_eq!(outcome.map(|o| o.message).map_err(|e| e.message), Ok(Some("2026-01-04".to_string())));
        let fields = host.item("deal", item.id).map(|i| i.fields()).unwrap_or_default();
        assert_eq!(fields["install_date"], "2026-01-04");
        assert_eq!(fields["size"], "1200x600");
        assert_eq!(host.timeline, vec![("deal".to_string(), item.id, "Deadline set to 2026-01-04".to_string())]);
    }

    #[test]
    fn a_bad_config_is_an_error() {
        let mut host = MemoryHost::new();
        let item = host.add_item("deal", "Kitchen", serde_json::json!({}));
        let error = host.run_robot::<SetDeadline>(&item, "measuring", r#"{"days":"soon"}"#).err();
        assert_eq!(error.map(|e| e.code), Some("invalid-config".to_string()));
        assert!(host.timeline.is_empty());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
