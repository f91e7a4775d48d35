//! Users, departments and roles: the [`super::People`] aggregate (`core.people()`), with tokens
//! and authentication (`auth.rs`) and assignee resolution (`assignees.rs`).

use serde::Deserialize;

use super::{Caller, People, ServiceError, ServiceResult, require_admin};
use voronka_model::access::Permission;
use voronka_model::people::{Department, Role, User};
use voronka_model::{FieldError, is_valid_key};
use voronka_store::people::{self as repo, NewUser, PeopleTable};

/// `POST /users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Display name, 1 to 200 characters (trimmed).
    pub name: String,
    /// E-mail address, at most 254 bytes, `local@domain` without spaces; no other user may have
    /// it (409 otherwise).
    pub email: String,
    /// Id of an existing department; absent or `null` for none.
    pub department: Option<i64>,
    /// Keys of existing roles to give the user (default none).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A system administrator, who may do everything (default `false`).
    #[serde(default)]
    pub admin: bool,
}

/// `PATCH /users/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New display name, 1 to 200 characters (trimmed). Absent or `null` keeps it.
    pub name: Option<String>,
    /// New e-mail address, checked as on creation and unique. Absent or `null` keeps it.
    pub email: Option<String>,
    /// Id of an existing department, or `0` to remove the user's. Absent or `null` keeps it.
    pub department: Option<i64>,
    /// Keys of existing roles, replacing the current ones (`[]` removes all). Absent or `null`
    /// keeps them.
    pub roles: Option<Vec<String>>,
    /// `false` deactivates the user (their tokens stop working), `true` reactivates. Absent or
    /// `null` keeps it.
    pub active: Option<bool>,
    /// `true` makes the user a system administrator, `false` takes it back. Absent or `null`
    /// keeps it.
    pub admin: Option<bool>,
}

/// `POST /departments` and `PATCH /departments/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentRequest {
    /// Name, 1 to 200 characters (trimmed): required on `POST`; on `PATCH`, absent or `null`
    /// keeps it.
    pub name: Option<String>,
    /// Id of an existing department it belongs under, never itself or one below it. Absent or
    /// `null`: none on `POST`, unchanged on `PATCH`.
    pub parent: Option<i64>,
    /// Id of an existing user heading the department. Absent or `null`: none on `POST`,
    /// unchanged on `PATCH`.
    pub head: Option<i64>,
}

/// `POST /roles` and `PATCH /roles/{key}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// Key, required on `POST`: a lower-case letter, then lower-case letters, digits, `-` or `_`,
    /// at most 64 characters. On `PATCH` it cannot change (omit it or repeat the path's key).
    pub key: Option<String>,
    /// Display title; blank or absent gives the key on `POST` and keeps the title on `PATCH`.
    pub title: Option<String>,
    /// The role's grants, replacing the current ones (absent means none, on `PATCH` too): at most
    /// one per type and funnel, each of an existing type and funnel.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

fn check_email(errors: &mut Vec<FieldError>, email: &str) {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !email.contains(char::is_whitespace));
    if !ok {
        errors.push(FieldError::new("email", format!("`{email}` is not an e-mail address")));
    }
}

fn check_name(errors: &mut Vec<FieldError>, name: &str) {
    if name.trim().is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "a name of 1 to 200 characters is required"));
    }
}

impl People<'_> {
    /// Users by id (any signed-in user may list them, to pick a responsible).
    pub async fn list_users(&self, after: i64, limit: i64) -> ServiceResult<Vec<User>> {
        Ok(repo::list_users(self.core.store.reader(), after, limit + 1).await?)
    }

    /// The user with this id, active or not; `NotFound` when there is none.
    pub async fn get_user(&self, id: i64) -> ServiceResult<User> {
        repo::get_user(self.core.store.reader(), id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user {id}")))
    }

    /// Creates a user. Administrators only.
    pub async fn create_user(&self, caller: &Caller, input: NewUserRequest) -> ServiceResult<User> {
        require_admin(caller)?;
        let mut errors = Vec::new();
        check_name(&mut errors, &input.name);
        check_email(&mut errors, &input.email);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let mut tx = self.core.begin_config().await?;
        if repo::email_taken(&mut tx, &input.email, 0).await? {
            return Err(ServiceError::Conflict(format!("a user with e-mail `{}` exists", input.email)));
        }
        if let Some(d) = input.department
            && !repo::exists(&mut tx, PeopleTable::Departments, d).await?
        {
            return Err(ServiceError::invalid("department", format!("no department {d}")));
        }
        let role_ids = repo::role_ids(&mut tx, &input.roles)
            .await?
            .map_err(|k| ServiceError::invalid("roles", format!("no role `{k}`")))?;
        let user = NewUser {
            name: input.name.trim(),
            email: input.email.trim(),
            department: input.department,
            admin: input.admin,
        };
        let id = repo::insert_user(&mut tx, &user).await?;
        repo::set_user_roles(&mut tx, id, &role_ids).await?;
        self.core.commit_config(tx).await?;
        self.get_user(id).await
    }

    /// Changes a user. Administrators only.
    pub async fn update_user(&self, caller: &Caller, id: i64, patch: UserPatch) -> ServiceResult<User> {
        require_admin(caller)?;
        let mut user = self.get_user(id).await?;
        let mut errors = Vec::new();
        if let Some(name) = &patch.name {
            check_name(&mut errors, name);
            user.name = name.trim().to_string();
        }
        if let Some(email) = &patch.email {
            check_email(&mut errors, email);
            user.email = email.trim().to_string();
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        if let Some(active) = patch.active {
            user.active = active;
        }
        if let Some(admin) = patch.admin {
            user.admin = admin;
        }
        let mut tx = self.core.begin_config().await?;
        if repo::email_taken(&mut tx, &user.email, id).await? {
            return Err(ServiceError::Conflict(format!("a user with e-mail `{}` exists", user.email)));
        }
        match patch.department {
            Some(0) => user.department = None,
            Some(d) if !repo::exists(&mut tx, PeopleTable::Departments, d).await? => {
                return Err(ServiceError::invalid("department", format!("no department {d}")));
            }
            Some(d) => user.department = Some(d),
            None => {}
        }
        repo::update_user(&mut tx, &user).await?;
        if let Some(roles) = &patch.roles {
            let ids = repo::role_ids(&mut tx, roles)
                .await?
                .map_err(|k| ServiceError::invalid("roles", format!("no role `{k}`")))?;
            repo::set_user_roles(&mut tx, id, &ids).await?;
        }
        self.core.commit_config(tx).await?;
        self.get_user(id).await
    }

    /// Every department, by id.
    pub async fn list_departments(&self) -> ServiceResult<Vec<Department>> {
        Ok(repo::list_departments(self.core.store.reader()).await?)
    }

    /// Creates a department. Administrators only.
    pub async fn create_department(&self, caller: &Caller, input: DepartmentRequest) -> ServiceResult<Department> {
        require_admin(caller)?;
        let name = input.name.clone().unwrap_or_default();
        let mut errors = Vec::new();
        check_name(&mut errors, &name);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let mut tx = self.core.begin_config().await?;
        self.check_department_links(&mut tx, &input, None).await?;
        let id = repo::insert_department(&mut tx, name.trim(), input.parent, input.head).await?;
        self.core.commit_config(tx).await?;
        Ok(Department { id, name: name.trim().to_string(), parent: input.parent, head: input.head })
    }

    /// Changes a department's name, parent or head. Administrators only.
    pub async fn update_department(
        &self,
        caller: &Caller,
        id: i64,
        input: DepartmentRequest,
    ) -> ServiceResult<Department> {
        require_admin(caller)?;
        let all = self.list_departments().await?;
        let mut department = all
            .iter()
            .find(|d| d.id == id)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("no department {id}")))?;
        if let Some(name) = &input.name {
            let mut errors = Vec::new();
            check_name(&mut errors, name);
            if !errors.is_empty() {
                return Err(ServiceError::Validation(errors));
            }
            department.name = name.trim().to_string();
        }
        if let Some(parent) = input.parent {
            // Walk up from the new parent: reaching this department would make a cycle.
            let mut cursor = Some(parent);
            while let Some(p) = cursor {
                if p == id {
                    return Err(ServiceError::invalid("parent", "a department cannot be inside itself"));
                }
                cursor = all.iter().find(|d| d.id == p).and_then(|d| d.parent);
            }
            department.parent = Some(parent);
        }
        if input.head.is_some() {
            department.head = input.head;
        }
        let mut tx = self.core.begin_config().await?;
        self.check_department_links(&mut tx, &input, Some(id)).await?;
        repo::update_department(&mut tx, &department).await?;
        self.core.commit_config(tx).await?;
        Ok(department)
    }

    async fn check_department_links(
        &self,
        tx: &mut voronka_store::Tx,
        input: &DepartmentRequest,
        own: Option<i64>,
    ) -> ServiceResult<()> {
        if let Some(p) = input.parent
            && (Some(p) == own || !repo::exists(tx, PeopleTable::Departments, p).await?)
        {
            return Err(ServiceError::invalid("parent", format!("no department {p}")));
        }
        if let Some(h) = input.head
            && !repo::exists(tx, PeopleTable::Users, h).await?
        {
            return Err(ServiceError::invalid("head", format!("no user {h}")));
        }
        Ok(())
    }

    /// Every role with its permissions, by key.
    pub async fn list_roles(&self) -> ServiceResult<Vec<Role>> {
        Ok(repo::list_roles(self.core.store.reader()).await?)
    }

    fn check_permissions(
        &self,
        permissions: &[Permission],
        catalog: &voronka_store::catalog::Catalog,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, p) in permissions.iter().enumerate() {
            match catalog.get(&p.type_key) {
                None => errors
                    .push(FieldError::new(format!("permissions[{i}].type"), format!("unknown type `{}`", p.type_key))),
                Some(schema) => {
                    if let Some(f) = &p.funnel
                        && schema.funnel(f).is_none()
                    {
                        errors.push(FieldError::new(
                            format!("permissions[{i}].funnel"),
                            format!("no funnel `{f}` in `{}`", p.type_key),
                        ));
                    }
                }
            }
            if permissions[..i].iter().any(|q| q.type_key == p.type_key && q.funnel == p.funnel) {
                errors.push(FieldError::new(format!("permissions[{i}]"), "duplicate grant for this type and funnel"));
            }
        }
        errors
    }

    /// Creates a role. Administrators only.
    pub async fn create_role(&self, caller: &Caller, input: RoleRequest) -> ServiceResult<Role> {
        require_admin(caller)?;
        let catalog = self.core.catalog().await?;
        let key = input.key.clone().unwrap_or_default();
        let mut errors = Vec::new();
        if !is_valid_key(&key) {
            errors.push(FieldError::new(
                "key",
                "a key is lower-case letters, digits, `-` or `_`, starting with a letter",
            ));
        }
        errors.extend(self.check_permissions(&input.permissions, &catalog));
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let title = input.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| key.clone());
        let mut tx = self.core.begin_config().await?;
        let id = repo::insert_role(&mut tx, &key, &title, &input.permissions)
            .await?
            .ok_or_else(|| ServiceError::Conflict(format!("role `{key}` already exists")))?;
        self.core.commit_config(tx).await?;
        Ok(Role { id, key, title, permissions: input.permissions })
    }

    /// Replaces a role's title and permissions. Administrators only.
    pub async fn update_role(&self, caller: &Caller, key: &str, input: RoleRequest) -> ServiceResult<Role> {
        require_admin(caller)?;
        let catalog = self.core.catalog().await?;
        let mut role = self
            .list_roles()
            .await?
            .into_iter()
            .find(|r| r.key == key)
            .ok_or_else(|| ServiceError::NotFound(format!("no role `{key}`")))?;
        if input.key.as_deref().is_some_and(|k| k != key) {
            return Err(ServiceError::invalid("key", "a role's key cannot change"));
        }
        let errors = self.check_permissions(&input.permissions, &catalog);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        if let Some(t) = input.title.filter(|t| !t.trim().is_empty()) {
            role.title = t;
        }
        role.permissions = input.permissions;
        let mut tx = self.core.begin_config().await?;
        repo::update_role(&mut tx, role.id, &role.title, &role.permissions).await?;
        self.core.commit_config(tx).await?;
        Ok(role)
    }
}
