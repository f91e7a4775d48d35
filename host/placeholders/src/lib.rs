//! Placeholders in texts that automation writes — a robot's comment, a process's task title or
//! notification: `{{item.title}}`, `{{item.id}}`, `{{item.stage}}`, `{{item.funnel}}`,
//! `{{item.type}}`, `{{item.fields.KEY}}` and, in business processes, `{{vars.NAME}}`.
//!
//! The one renderer of Voronka: the plugin SDK renders with it inside a plugin, the host renders
//! process texts with it and checks texts with it when a template is saved. It depends on
//! nothing of Voronka's (only `serde_json`), so it builds for WebAssembly too.

use serde_json::Value;

/// A placeholder a text may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// `{{item.title}}`.
    Title,
    /// `{{item.id}}`.
    Id,
    /// `{{item.stage}}`: the stage's key, empty for a type without stages.
    Stage,
    /// `{{item.funnel}}`: the funnel's key, empty for a type without stages.
    Funnel,
    /// `{{item.type}}`: the item's type key.
    Type,
    /// `{{item.fields.KEY}}`: a custom field's value, empty when it has none.
    Field(&'a str),
    /// `{{vars.NAME}}`: a business process's variable, empty when it has none.
    Var(&'a str),
}

impl<'a> Placeholder<'a> {
    /// Reads the name between the braces (trimmed); `None` when it names nothing known.
    pub fn parse(name: &'a str) -> Option<Placeholder<'a>> {
        Some(match name {
            "item.title" => Placeholder::Title,
            "item.id" => Placeholder::Id,
            "item.stage" => Placeholder::Stage,
            "item.funnel" => Placeholder::Funnel,
            "item.type" => Placeholder::Type,
            _ => {
                if let Some(key) = name.strip_prefix("item.fields.").filter(|k| is_name(k)) {
                    Placeholder::Field(key)
                } else if let Some(var) = name.strip_prefix("vars.").filter(|k| is_name(k)) {
                    Placeholder::Var(var)
                } else {
                    return None;
                }
            }
        })
    }
}

/// What a text's placeholders are filled from.
pub trait Source {
    /// The item's value of a placeholder (`None`: empty).
    fn value(&self, placeholder: &Placeholder<'_>) -> Option<Value>;
}

/// An item as texts name it, and a process's variables: the one [`Source`] of the host and the
/// plugin SDK, each filling it from its own item type.
pub struct ItemView<'a> {
    /// `{{item.title}}`.
    pub title: &'a str,
    /// `{{item.id}}`.
    pub id: i64,
    /// `{{item.stage}}`.
    pub stage: Option<&'a str>,
    /// `{{item.funnel}}`.
    pub funnel: Option<&'a str>,
    /// `{{item.type}}`.
    pub type_key: &'a str,
    /// `{{item.fields.KEY}}`.
    pub fields: &'a serde_json::Map<String, Value>,
    /// `{{vars.NAME}}`: a process's variables (`None` outside processes).
    pub variables: Option<&'a serde_json::Map<String, Value>>,
}

impl Source for ItemView<'_> {
    fn value(&self, placeholder: &Placeholder<'_>) -> Option<Value> {
        match placeholder {
            Placeholder::Title => Some(self.title.into()),
            Placeholder::Id => Some(self.id.into()),
            Placeholder::Stage => self.stage.map(Into::into),
            Placeholder::Funnel => self.funnel.map(Into::into),
            Placeholder::Type => Some(self.type_key.into()),
            Placeholder::Field(key) => self.fields.get(*key).cloned(),
            Placeholder::Var(name) => self.variables?.get(*name).cloned(),
        }
    }
}

/// The names between `{{` and `}}` in a text, trimmed, in order (an unclosed `{{` is text).
pub fn names(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        found.push(rest[start + 2..start + len].trim());
        rest = &rest[start + len + 2..];
    }
    found
}

/// Checks a text's placeholders: each must be known, with fields among `fields` (the item
/// type's custom field keys) and variables only where `vars` allows them. The error names the
/// first unknown one and what may be used.
pub fn check(text: &str, fields: &[&str], vars: bool) -> Result<(), String> {
    for name in names(text) {
        let known = match Placeholder::parse(name) {
            Some(Placeholder::Field(key)) => fields.contains(&key),
            Some(Placeholder::Var(_)) => vars,
            Some(_) => true,
            None => false,
        };
        if !known {
            let vars = if vars { ", {{vars.NAME}}" } else { "" };
            return Err(format!(
                "unknown placeholder `{{{{{name}}}}}`; use {{{{item.title}}}}, {{{{item.id}}}}, {{{{item.stage}}}}, \
                 {{{{item.funnel}}}}, {{{{item.type}}}}, {{{{item.fields.KEY}}}} of a field of the type{vars}"
            ));
        }
    }
    Ok(())
}

/// Fills a text's placeholders from `source`: strings as they are, other values as JSON,
/// missing values and unknown placeholders as nothing.
pub fn render(text: &str, source: &dyn Source) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = rest[start + 2..start + len].trim();
        match Placeholder::parse(name).and_then(|p| source.value(&p)) {
            Some(Value::String(s)) => out.push_str(&s),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether a field key or variable name is well formed: letters, digits, `-` and `_`.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Deal;

    impl Source for Deal {
        fn value(&self, placeholder: &Placeholder<'_>) -> Option<Value> {
            match placeholder {
                Placeholder::Title => Some(json!("Kitchen")),
                Placeholder::Id => Some(json!(7)),
                Placeholder::Field("floor") => Some(json!(3)),
                Placeholder::Field("size") => Some(json!("2400x600")),
                Placeholder::Var("approve") => Some(json!("approved")),
                _ => None,
            }
        }
    }

    #[test]
    fn renders_item_fields_and_variables() {
        let text = "{{item.title}} #{{ item.id }} floor {{item.fields.floor}}, {{item.fields.size}}: {{vars.approve}}";
        assert_eq!(render(text, &Deal), "Kitchen #7 floor 3, 2400x600: approved");
        assert_eq!(render("{{item.fields.none}}|{{vars.x}}|{{oops}}|{{open", &Deal), "|||{{open");
    }

    #[test]
    fn checks_names_against_the_type_and_the_place() {
        assert_eq!(check("{{item.title}} {{item.fields.floor}} {{vars.a}}", &["floor"], true), Ok(()));
        let missing = check("{{item.fields.flor}}", &["floor"], true).unwrap_err();
        assert!(missing.starts_with("unknown placeholder `{{item.fields.flor}}`"), "{missing}");
        assert!(check("{{vars.a}}", &[], false).is_err());
        assert!(check("{{item.titel}}", &[], true).is_err());
        assert!(check("{{}}", &[], true).is_err());
        assert_eq!(check("no placeholders {{ at all", &[], true), Ok(()));
    }
}
