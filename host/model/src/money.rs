//! Money: a decimal amount and an ISO 4217 currency code. Never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// An amount of money as it travels through the API: `{"value":"150000.00","currency":"RUB"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Decimal amount as a string, e.g. `"150000.00"`.
    pub value: String,
    /// Three-letter upper-case currency code, e.g. `"RUB"`.
    pub currency: String,
}

impl Money {
    /// Checks and normalises money given as JSON. Accepts only a decimal string value (a JSON
    /// number would already have lost precision) and a three-letter currency.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, String> {
        let object =
            value.as_object().ok_or("money must be an object like {\"value\":\"100.00\",\"currency\":\"RUB\"}")?;
        if let Some(extra) = object.keys().find(|k| *k != "value" && *k != "currency") {
            return Err(format!("unknown key `{extra}` in money"));
        }
        let raw = match object.get("value") {
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(serde_json::Value::Number(_)) => {
                return Err("money value must be a decimal string like \"150000.00\", not a number".into());
            }
            _ => return Err("money needs a `value`, a decimal string like \"150000.00\"".into()),
        };
        let currency = object
            .get("currency")
            .and_then(|c| c.as_str())
            .ok_or("money needs a `currency`, a three-letter code like \"RUB\"")?;
        Money::parse(raw, currency)
    }

    /// Checks a decimal string and currency code, normalising the value (no exponent, no `+`).
    pub fn parse(value: &str, currency: &str) -> Result<Money, String> {
        let decimal = Decimal::from_str(value.trim())
            .map_err(|_| format!("`{value}` is not a decimal amount like \"150000.00\""))?;
        if !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase())) {
            return Err(format!("`{currency}` is not a three-letter upper-case currency code"));
        }
        Ok(Money { value: decimal.to_string(), currency: currency.to_string() })
    }

    /// The amount as a decimal.
    pub fn decimal(&self) -> Option<Decimal> {
        Decimal::from_str(&self.value).ok()
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"value": self.value, "currency": self.currency})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_decimal_strings_only() {
        let m = Money::from_json(&json!({"value":"150000.00","currency":"RUB"})).unwrap();
        assert_eq!(m.value, "150000.00");
        assert!(Money::from_json(&json!({"value":150000.5,"currency":"RUB"})).unwrap_err().contains("not a number"));
        assert!(Money::from_json(&json!({"value":"abc","currency":"RUB"})).is_err());
        assert!(Money::from_json(&json!({"value":"1","currency":"rub"})).is_err());
        assert!(Money::from_json(&json!({"value":"1","currency":"RUB","x":1})).is_err());
        assert!(Money::from_json(&json!("1 RUB")).is_err());
    }
}
