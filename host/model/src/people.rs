//! Users, departments and roles.

use serde::Serialize;

use super::access::Permission;

/// A person who signs in with API tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Unique e-mail address.
    pub email: String,
    /// Department id.
    pub department: Option<i64>,
    /// Inactive users cannot sign in.
    pub active: bool,
    /// System administrator.
    pub admin: bool,
    /// Role keys.
    pub roles: Vec<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// A node of the department tree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Department {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Parent department id.
    pub parent: Option<i64>,
    /// Head of the department (a user id).
    pub head: Option<i64>,
}

/// A named set of permissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Role {
    /// Id.
    pub id: i64,
    /// Unique key.
    pub key: String,
    /// Title.
    pub title: String,
    /// Grants.
    pub permissions: Vec<Permission>,
}
