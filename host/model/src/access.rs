//! Role-based access: what a principal may do with items of a type in a funnel.

use serde::{Deserialize, Serialize};

/// Access level granted by a role, ordered from nothing to everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// No access: items are invisible.
    None,
    /// See items, their history and timeline, and comment on them.
    Read,
    /// Read, create, change, move items.
    Write,
    /// Also delete items and change the type's fields and funnels.
    Admin,
}

impl Access {
    /// The name in role grants and the API: `none`, `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Access> {
        match text {
            "none" => Some(Access::None),
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "admin" => Some(Access::Admin),
            _ => None,
        }
    }
}

/// One line of a role: access to a type, optionally narrowed to one funnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// Key of the entity type the grant applies to, e.g. `deal`.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Funnel key; absent means every funnel of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<String>,
    /// Access to the type's items (in `funnel` only, when given).
    pub access: Access,
}

/// An authenticated caller with the grants of all its roles.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's id.
    pub user_id: i64,
    /// System administrators may do everything.
    pub is_admin: bool,
    /// Grants, grouped by role (a role's funnel grant overrides its type-wide grant).
    pub roles: Vec<Vec<Permission>>,
}

impl Principal {
    /// Access to items of `type_key` in `funnel` (`None` for types without funnels, or for
    /// type-wide questions). Within a role a funnel grant overrides the type-wide grant; across
    /// roles the highest level wins.
    pub fn access(&self, type_key: &str, funnel: Option<&str>) -> Access {
        if self.is_admin {
            return Access::Admin;
        }
        self.roles
            .iter()
            .map(|grants| {
                let specific = funnel
                    .and_then(|f| grants.iter().find(|g| g.type_key == type_key && g.funnel.as_deref() == Some(f)));
                let general = grants.iter().find(|g| g.type_key == type_key && g.funnel.is_none());
                specific.or(general).map(|g| g.access).unwrap_or(Access::None)
            })
            .max()
            .unwrap_or(Access::None)
    }

    /// The highest access to a type in any funnel: enough to see the type exists.
    pub fn best_access(&self, type_key: &str) -> Access {
        if self.is_admin {
            return Access::Admin;
        }
        self.roles.iter().flatten().filter(|g| g.type_key == type_key).map(|g| g.access).max().unwrap_or(Access::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(t: &str, f: Option<&str>, a: Access) -> Permission {
        Permission { type_key: t.into(), funnel: f.map(Into::into), access: a }
    }

    #[test]
    fn funnel_grant_overrides_type_grant_within_a_role() {
        let p = Principal {
            user_id: 2,
            is_admin: false,
            roles: vec![vec![grant("deal", None, Access::Write), grant("deal", Some("claims"), Access::None)]],
        };
        assert_eq!(p.access("deal", Some("sales")), Access::Write);
        assert_eq!(p.access("deal", Some("claims")), Access::None);
        assert_eq!(p.access("contact", None), Access::None);
    }

    #[test]
    fn highest_role_wins() {
        let p = Principal {
            user_id: 2,
            is_admin: false,
            roles: vec![vec![grant("deal", Some("claims"), Access::Read)], vec![grant("deal", None, Access::Admin)]],
        };
        assert_eq!(p.access("deal", Some("claims")), Access::Admin);
        assert_eq!(p.best_access("deal"), Access::Admin);
    }
}
