//! Funnels and their stages.

use serde::{Deserialize, Serialize};

use super::{FieldError, is_valid_key};

/// What reaching a stage means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// The item is still being worked on; these stages come before success and failure ones.
    Process,
    /// Closed as a success.
    Success,
    /// Closed as a failure.
    Failure,
}

/// One stage of a funnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Key, unique in the funnel.
    pub key: String,
    /// Display title; must not be blank.
    pub title: String,
    /// Process, success or failure.
    #[serde(default = "default_semantics")]
    pub semantics: Semantics,
}

fn default_semantics() -> Semantics {
    Semantics::Process
}

/// Who may move an item between the stages of a funnel by hand (a `move` request through the
/// API); robots, triggers and business processes always may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManualMoves {
    /// Anyone with write access to the item.
    #[default]
    Allowed,
    /// System administrators only.
    Admins,
    /// Nobody: only automation moves items.
    None,
}

impl ManualMoves {
    /// The setting's name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualMoves::Allowed => "allowed",
            ManualMoves::Admins => "admins",
            ManualMoves::None => "none",
        }
    }

    /// The setting named `name`, if any.
    pub fn parse(name: &str) -> Option<ManualMoves> {
        [ManualMoves::Allowed, ManualMoves::Admins, ManualMoves::None].into_iter().find(|m| m.as_str() == name)
    }

    /// Whether a person moves items by hand under this setting (`admin`: a system
    /// administrator).
    pub fn permits(self, admin: bool) -> bool {
        match self {
            ManualMoves::Allowed => true,
            ManualMoves::Admins => admin,
            ManualMoves::None => false,
        }
    }
}

/// An ordered list of stages of one entity type.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Funnel {
    /// Key, unique in the type.
    pub key: String,
    /// Display title, 1 to 200 characters.
    pub title: String,
    /// Items created without a funnel land in the default one.
    #[serde(rename = "default")]
    pub is_default: bool,
    /// Stages in order, 1 to 100: process stages first, then success and failure stages.
    pub stages: Vec<Stage>,
    /// Who may move its items by hand.
    pub manual_moves: ManualMoves,
}

impl Funnel {
    /// A stage by key.
    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key == key)
    }

    /// Position of a stage in the funnel.
    pub fn stage_index(&self, key: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.key == key)
    }
}

/// Checks a list of stages: at least one, keys valid and unique, titles present, process stages
/// first and success/failure stages last.
pub fn validate_stages(stages: &[Stage]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if stages.is_empty() {
        errors.push(FieldError::new("stages", "a funnel needs at least one stage"));
    }
    if stages.len() > 100 {
        errors.push(FieldError::new("stages", "a funnel has at most 100 stages"));
    }
    if stages.first().is_some_and(|s| s.semantics != Semantics::Process) {
        errors.push(FieldError::new("stages[0].semantics", "the first stage must be a process stage"));
    }
    let mut closing_seen = false;
    for (i, stage) in stages.iter().enumerate() {
        if !is_valid_key(&stage.key) {
            errors.push(FieldError::new(
                format!("stages[{i}].key"),
                format!("`{}` is not a valid key (lower-case letters, digits, `-`, `_`)", stage.key),
            ));
        }
        if stages[..i].iter().any(|s| s.key == stage.key) {
            errors.push(FieldError::new(format!("stages[{i}].key"), format!("duplicate stage `{}`", stage.key)));
        }
        if stage.title.trim().is_empty() {
            errors.push(FieldError::new(format!("stages[{i}].title"), "a stage needs a title"));
        }
        match stage.semantics {
            Semantics::Process if closing_seen => errors.push(FieldError::new(
                format!("stages[{i}].semantics"),
                "success and failure stages must come after every process stage",
            )),
            Semantics::Process => {}
            Semantics::Success | Semantics::Failure => closing_seen = true,
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The stages a new type with stages starts with in its default funnel.
pub fn default_stages() -> Vec<Stage> {
    let stage = |key: &str, title: &str, semantics| Stage { key: key.into(), title: title.into(), semantics };
    vec![
        stage("new", "New", Semantics::Process),
        stage("in-progress", "In progress", Semantics::Process),
        stage("done", "Done", Semantics::Success),
        stage("failed", "Failed", Semantics::Failure),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_moves_name_who_moves_by_hand() {
        assert!(ManualMoves::Allowed.permits(false));
        assert!(!ManualMoves::Admins.permits(false) && ManualMoves::Admins.permits(true));
        assert!(!ManualMoves::None.permits(true));
        for m in [ManualMoves::Allowed, ManualMoves::Admins, ManualMoves::None] {
            assert_eq!(ManualMoves::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).ok(), Some(serde_json::Value::from(m.as_str())));
        }
        assert_eq!(ManualMoves::parse("sometimes"), None);
    }

    fn s(key: &str, semantics: Semantics) -> Stage {
        Stage { key: key.into(), title: key.into(), semantics }
    }

    #[test]
    fn closing_stages_come_last() {
        assert!(validate_stages(&default_stages()).is_ok());
        let bad = vec![s("new", Semantics::Process), s("won", Semantics::Success), s("late", Semantics::Process)];
        let errors = validate_stages(&bad).unwrap_err();
        assert_eq!(errors[0].field, "stages[2].semantics");
    }

    #[test]
    fn keys_unique_and_valid() {
        let bad = vec![s("new", Semantics::Process), s("new", Semantics::Process), s("Bad Key", Semantics::Failure)];
        let fields: Vec<_> = validate_stages(&bad).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["stages[1].key", "stages[2].key"]);
        assert!(validate_stages(&[]).is_err());
        assert!(validate_stages(&[s("won", Semantics::Success)]).is_err());
    }
}
