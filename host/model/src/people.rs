//! Users, departments and roles.

use serde::Serialize;

use super::access::Permission;

/// A person who signs in with API tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// User id, as used for responsibles, auditors and `created_by`.
    pub id: i64,
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// E-mail address, unique regardless of case.
    pub email: String,
    /// Id of the user's department; `null` when in none.
    pub department: Option<i64>,
    /// Inactive users cannot sign in.
    pub active: bool,
    /// System administrator: full access to every type and to the administrative calls.
    pub admin: bool,
    /// Keys of the user's roles, sorted; across roles the highest access wins.
    pub roles: Vec<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// A node of the department tree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Department {
    /// Department id, as used by users' `department` and departments' `parent`.
    pub id: i64,
    /// Name, 1 to 200 characters.
    pub name: String,
    /// Id of the department above; `null` at the top of the tree.
    pub parent: Option<i64>,
    /// Head of the department (a user id).
    pub head: Option<i64>,
}

/// A named set of permissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Role {
    /// Role id (the API names roles by `key`).
    pub id: i64,
    /// Unique key (lower-case letters, digits, `-`, `_`); fixed at creation.
    pub key: String,
    /// Display title; the key when none was given.
    pub title: String,
    /// Grants per type, optionally per funnel; a funnel grant overrides the type-wide one.
    pub permissions: Vec<Permission>,
}
