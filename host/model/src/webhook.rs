//! Outgoing webhook subscriptions: which events a subscriber receives, and how deliveries are
//! signed and retried.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::FieldError;
use super::event::EventKind;

/// Which events of the subscribed kinds are delivered: all keys given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Only events about items of this type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_key: Option<String>,
    /// Only events about items in this funnel (after the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<String>,
    /// Only events about items in this stage (after the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

impl WebhookFilter {
    /// Whether the filter needs the item's place (funnel, stage) to decide.
    pub fn needs_place(&self) -> bool {
        self.funnel.is_some() || self.stage.is_some()
    }

    /// Whether an event about an item of `type_key`, in `place` (funnel, stage) after it, passes.
    pub fn passes(&self, type_key: Option<&str>, place: Option<(&str, &str)>) -> bool {
        let type_ok = self.type_key.as_deref().is_none_or(|t| Some(t) == type_key);
        let funnel_ok = self.funnel.as_deref().is_none_or(|f| place.is_some_and(|(pf, _)| pf == f));
        let stage_ok = self.stage.as_deref().is_none_or(|s| place.is_some_and(|(_, ps)| ps == s));
        type_ok && funnel_ok && stage_ok
    }
}

/// Checks a subscription's event kinds: known names or `*` (every kind), at least one.
pub fn check_events(events: &[String]) -> Result<(), FieldError> {
    if events.is_empty() {
        return Err(FieldError::new("events", "name at least one event kind, or \"*\" for all"));
    }
    for name in events {
        if name != "*" && !EventKind::ALL.iter().any(|k| k.as_str() == name) {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(FieldError::new("events", format!("unknown event `{name}`; known: {}", known.join(", "))));
        }
    }
    Ok(())
}

/// Whether a subscription to `events` receives an event of `kind`.
pub fn subscribed(events: &[String], kind: EventKind) -> bool {
    events.iter().any(|e| e == "*" || e == kind.as_str())
}

/// Checks a target URL: absolute `http` or `https` with a host.
pub fn check_url(url: &str) -> Result<(), FieldError> {
    let parsed = url::Url::parse(url).map_err(|e| FieldError::new("url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FieldError::new("url", format!("scheme `{}` is refused: use http or https", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new("url", "the URL has no host"));
    }
    Ok(())
}

/// The `X-Voronka-Signature` value of a body: `sha256=<hex HMAC-SHA256 of the body>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds to wait before attempt `attempt + 1` after `attempt` failures: 1, 2, 4, ... capped
/// at an hour.
pub fn backoff_seconds(attempt: i64) -> i64 {
    (1i64 << attempt.saturating_sub(1).clamp(0, 12)).min(3600)
}

/// The place an event leaves its item in, when the event says: `to` of a move, the item of a
/// creation or deletion.
pub fn place_in(payload: &Value) -> Option<(String, String)> {
    let point = if payload.get("to").is_some() { &payload["to"] } else { &payload["item"] };
    Some((point["funnel"].as_str()?.to_string(), point["stage"].as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn filters_and_kinds() {
        let filter = WebhookFilter { type_key: Some("deal".into()), funnel: None, stage: Some("won".into()) };
        assert!(filter.passes(Some("deal"), Some(("sales", "won"))));
        assert!(!filter.passes(Some("deal"), Some(("sales", "new"))));
        assert!(!filter.passes(Some("contact"), Some(("sales", "won"))));
        assert!(!filter.passes(Some("deal"), None));
        assert!(WebhookFilter::default().passes(None, None));
        assert!(subscribed(&["*".into()], EventKind::ItemCreated));
        assert!(!subscribed(&["item.created".into()], EventKind::ItemDeleted));
        assert!(check_events(&["item.stage_changed".into()]).is_ok());
        assert!(check_events(&["item.moved".into()]).is_err());
        assert!(check_events(&[]).is_err());
    }

    #[test]
    fn only_http_and_https_targets() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("http://127.0.0.1:9000/").is_ok());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!((1..=4).map(backoff_seconds).collect::<Vec<_>>(), vec![1, 2, 4, 8]);
        assert_eq!(backoff_seconds(40), 3600);
    }

    #[test]
    fn place_comes_from_the_move_or_the_item() {
        let moved = json!({"from": {"funnel": "sales", "stage": "new"}, "to": {"funnel": "sales", "stage": "won"}});
        assert_eq!(place_in(&moved), Some(("sales".into(), "won".into())));
        assert_eq!(place_in(&json!({"item": {"funnel": "f", "stage": "s"}})), Some(("f".into(), "s".into())));
        assert_eq!(place_in(&json!({"changes": []})), None);
    }
}
