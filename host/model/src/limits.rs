//! Per-plugin limits and the ways a plugin call can fail.

use serde::{Deserialize, Serialize};

/// Limits of one plugin call, set at install (defaults below, capped by [`Limits::MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one call, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Linear memory a Wasm plugin may grow to, in MiB. Rhai scripts share one engine, whose
    /// fixed bounds apply to every script instead: strings of 1 MiB, arrays of 100,000 items,
    /// maps of 10,000 entries (exceeding one is a `memory-limit` failure).
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Fuel (Wasm instructions, roughly) or Rhai operations; `null` for no fuel limit.
    #[serde(default)]
    pub fuel: Option<u64>,
}

fn default_timeout() -> u64 {
    Limits::DEFAULT.timeout_ms
}

fn default_memory() -> u64 {
    Limits::DEFAULT.memory_mb
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

impl Limits {
    /// Defaults: one second, 64 MiB, no fuel limit.
    pub const DEFAULT: Limits = Limits { timeout_ms: 1_000, memory_mb: 64, fuel: None };
    /// The largest limits an administrator can grant.
    pub const MAX: Limits = Limits { timeout_ms: 60_000, memory_mb: 512, fuel: None };

    /// Checks the limits against [`Limits::MAX`]; returns the problem in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_ms == 0 || self.timeout_ms > Limits::MAX.timeout_ms {
            return Err(format!("timeout_ms must be 1 to {}", Limits::MAX.timeout_ms));
        }
        if self.memory_mb == 0 || self.memory_mb > Limits::MAX.memory_mb {
            return Err(format!("memory_mb must be 1 to {}", Limits::MAX.memory_mb));
        }
        if self.fuel == Some(0) {
            return Err("fuel must be positive (or null for none)".into());
        }
        Ok(())
    }
}

/// Why a plugin call failed. The kind is recorded on the item's timeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The call ran past its wall-clock budget.
    #[error("timeout: the plugin ran longer than {0} ms")]
    Timeout(u64),
    /// The call used up its fuel.
    #[error("out-of-fuel: the plugin used up its fuel")]
    OutOfFuel,
    /// The plugin tried to grow memory (or a Rhai value) past its limit.
    #[error("memory-limit: {0}")]
    MemoryLimit(String),
    /// The plugin trapped (panic, stack overflow, unreachable, ...).
    #[error("trap: {0}")]
    Trap(String),
    /// The plugin called a host function it was not granted.
    #[error("denied: the plugin lacks the `{0}` capability")]
    Denied(String),
    /// The plugin returned an error record of its own: shown as its code and message.
    #[error("{code}: {message}")]
    Plugin {
        /// The plugin's machine code.
        code: String,
        /// The plugin's message.
        message: String,
    },
    /// A script threw a value that is not an error record (`throw "customer has no phone"`):
    /// shown as that text alone.
    #[error("{0}")]
    Thrown(String),
    /// The host failed around the call (database, compilation); worth retrying.
    #[error("host: {0}")]
    Host(String),
}

impl Failure {
    /// The machine name of the kind: `timeout`, `out-of-fuel`, `memory-limit`, `trap`, `denied`,
    /// `error` or `host`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::OutOfFuel => "out-of-fuel",
            Failure::MemoryLimit(_) => "memory-limit",
            Failure::Trap(_) => "trap",
            Failure::Denied(_) => "denied",
            Failure::Plugin { .. } | Failure::Thrown(_) => "error",
            Failure::Host(_) => "host",
        }
    }

    /// Transient failures (the host's own) are retried with backoff; the plugin's faults,
    /// running out of time included, are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Host(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert!(Limits::DEFAULT.validate().is_ok());
        assert!(Limits { timeout_ms: 0, ..Limits::DEFAULT }.validate().is_err());
        assert!(Limits { memory_mb: 4096, ..Limits::DEFAULT }.validate().is_err());
        assert!(Limits { fuel: Some(0), ..Limits::DEFAULT }.validate().is_err());
        let parsed: Limits = serde_json::from_str(r#"{"timeout_ms":50}"#).unwrap();
        assert_eq!(parsed.memory_mb, 64);
    }

    #[test]
    fn only_host_faults_are_retried() {
        assert!(!Failure::Timeout(5).is_transient());
        assert!(Failure::Host("database".into()).is_transient());
        assert!(!Failure::Trap("x".into()).is_transient());
        assert_eq!(Failure::Denied("kv".into()).kind(), "denied");
    }

    #[test]
    fn a_plugin_error_reads_as_the_plugin_wrote_it() {
        let record = Failure::Plugin { code: "no-phone".into(), message: "customer has no phone".into() };
        assert_eq!(record.to_string(), "no-phone: customer has no phone");
        assert_eq!(Failure::Thrown("customer has no phone".into()).to_string(), "customer has no phone");
        assert_eq!(Failure::Thrown(String::new()).kind(), "error");
    }
}
