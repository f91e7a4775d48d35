//! Schedules: cron expressions in a time zone, for automations that run on a timetable.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::time::Micros;

/// A parsed timetable: when a schedule fires.
#[derive(Debug, Clone)]
pub struct Timetable {
    schedule: cron::Schedule,
    timezone: Tz,
}

impl Timetable {
    /// Parses a cron expression — five fields (`min hour day month weekday`), or six or seven
    /// with seconds first and a year last — and an IANA time zone such as `Europe/Moscow`.
    /// Errors say which of the two is wrong.
    pub fn parse(expression: &str, timezone: &str) -> Result<Timetable, (&'static str, String)> {
        let fields = expression.split_whitespace().count();
        let full = if fields == 5 { format!("0 {expression}") } else { expression.to_string() };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| {
            ("cron", format!("not a cron expression (min hour day month weekday, or with seconds first): {e}"))
        })?;
        let timezone = Tz::from_str(timezone)
            .map_err(|_| ("timezone", format!("`{timezone}` is not a time zone name like Europe/Moscow or UTC")))?;
        Ok(Timetable { schedule, timezone })
    }

    /// The first firing strictly after `after`, if the expression ever fires again. In the
    /// hour repeated when clocks go back, a local time that has already passed is skipped (the
    /// schedule never fires in the past); a local time that does not exist when clocks go
    /// forward does not fire that day.
    pub fn next_after(&self, after: Micros) -> Option<Micros> {
        let local = DateTime::<Utc>::from_timestamp_micros(after)?.with_timezone(&self.timezone);
        self.schedule.after(&local).take(1_000).map(|t| t.with_timezone(&Utc).timestamp_micros()).find(|t| *t > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, to_rfc3339};

    #[test]
    fn daily_at_nine_in_a_time_zone() {
        let t = Timetable::parse("0 9 * * *", "Europe/Moscow").unwrap();
        let now = parse_rfc3339("2026-11-27T07:00:00Z").unwrap();
        // 09:00 in Moscow is 06:00 UTC: today's has passed, tomorrow's is next.
        assert_eq!(to_rfc3339(t.next_after(now).unwrap()), "2026-11-28T06:00:00.000000Z");
        let early = parse_rfc3339("2026-11-27T05:00:00Z").unwrap();
        assert_eq!(to_rfc3339(t.next_after(early).unwrap()), "2026-11-27T06:00:00.000000Z");
    }

    #[test]
    fn clocks_going_back_never_fire_in_the_past() {
        // New York falls back on 2026-11-01 at 02:00 EDT (06:00 UTC) to 01:00 EST.
        let t = Timetable::parse("30 1 * * *", "America/New_York").unwrap();
        // During the repeated hour, after the first 01:30 (05:30 UTC) has passed.
        let now = parse_rfc3339("2026-11-01T05:45:00Z").unwrap();
        let next = t.next_after(now).unwrap();
        assert!(next > now, "{}", to_rfc3339(next));
        // Every firing over a week lies ahead of the one before.
        let mut at = parse_rfc3339("2026-10-30T00:00:00Z").unwrap();
        for _ in 0..7 {
            let next = t.next_after(at).unwrap();
            assert!(next > at);
            at = next;
        }
    }

    #[test]
    fn seconds_field_and_errors() {
        let every_two = Timetable::parse("*/2 * * * * *", "UTC").unwrap();
        let now = parse_rfc3339("2026-11-27T07:00:01Z").unwrap();
        assert_eq!(to_rfc3339(every_two.next_after(now).unwrap()), "2026-11-27T07:00:02.000000Z");
        assert_eq!(Timetable::parse("every day", "UTC").unwrap_err().0, "cron");
        assert_eq!(Timetable::parse("0 9 * * *", "Mars/Olympus").unwrap_err().0, "timezone");
    }
}
