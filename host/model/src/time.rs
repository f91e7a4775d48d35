//! Timestamps: stored as microseconds since the Unix epoch, shown as RFC 3339 UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, as stored in the database.
pub type Micros = i64;

/// The current time in microseconds.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Renders stored microseconds as RFC 3339 in UTC (`2026-11-27T10:00:00.000000Z`).
pub fn to_rfc3339(micros: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 timestamp with any offset into microseconds.
pub fn parse_rfc3339(text: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_rfc3339("2026-11-27T10:00:00+03:00").unwrap();
        assert_eq!(to_rfc3339(t), "2026-11-27T07:00:00.000000Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
