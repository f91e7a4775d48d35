//! Users, departments, roles and API tokens.

use std::collections::HashMap;

use crate::{Reader, Row, Statement, StoreResult, Tx};
use voronka_model::access::{Access, Permission, Principal};
use voronka_model::people::{Department, Role, User};
use voronka_model::time::{now_micros, to_rfc3339};

const USER_COLUMNS: &str = "id, name, email, department_id, active, is_admin, created_at";

fn user_from_row(row: &Row, roles: Vec<String>) -> StoreResult<User> {
    Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        department: row.get("department_id")?,
        active: row.get::<i64>("active")? != 0,
        admin: row.get::<i64>("is_admin")? != 0,
        roles,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Role keys of each listed user.
async fn role_keys(pool: &Reader, user_ids: &[i64]) -> StoreResult<HashMap<i64, Vec<String>>> {
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    if user_ids.is_empty() {
        return Ok(map);
    }
    let list = user_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT ur.user_id, r.key FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE ur.user_id IN ({list}) ORDER BY r.key"
    );
    for row in pool.fetch_all(Statement::new(sql)).await? {
        map.entry(row.get("user_id")?).or_default().push(row.get("key")?);
    }
    Ok(map)
}

/// Lists users by id, after `after`, at most `limit`.
pub async fn list_users(pool: &Reader, after: i64, limit: i64) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT CAST($2 AS BIGINT)");
    let rows = pool.fetch_all(Statement::new(sql).bind(after).bind(limit)).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect::<Result<_, _>>()?;
    let mut roles = role_keys(pool, &ids).await?;
    rows.iter().map(|r| user_from_row(r, roles.remove(&r.get("id")?).unwrap_or_default())).collect()
}

/// A user by id.
pub async fn get_user(pool: &Reader, id: i64) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let Some(row) = pool.fetch_optional(Statement::new(sql).bind(id)).await? else {
        return Ok(None);
    };
    let mut roles = role_keys(pool, &[id]).await?;
    Ok(Some(user_from_row(&row, roles.remove(&id).unwrap_or_default())?))
}

/// Whether a user with this e-mail exists (other than `except`).
pub async fn email_taken(tx: &mut Tx, email: &str, except: i64) -> StoreResult<bool> {
    let n: i64 = tx
        .fetch_one(
            Statement::new("SELECT COUNT(*) FROM users WHERE lower(email) = lower($1) AND id <> $2")
                .bind(email)
                .bind(except),
        )
        .await?
        .get(0)?;
    Ok(n > 0)
}

/// New user's data.
pub struct NewUser<'a> {
    /// Display name, already checked (1 to 200 characters) and trimmed.
    pub name: &'a str,
    /// E-mail address; the caller checks it is unique regardless of case ([`email_taken`]).
    pub email: &'a str,
    /// Id of an existing department, if any.
    pub department: Option<i64>,
    /// Whether the user is a system administrator.
    pub admin: bool,
}

/// Inserts a user and returns its id.
pub async fn insert_user(tx: &mut Tx, user: &NewUser<'_>) -> StoreResult<i64> {
    Ok(tx
        .fetch_one(
            Statement::new(
                "INSERT INTO users (name, email, department_id, active, is_admin, created_at)
         VALUES ($1, $2, $3, 1, $4, $5) RETURNING id",
            )
            .bind(user.name)
            .bind(user.email)
            .bind(user.department)
            .bind(user.admin as i64)
            .bind(now_micros()),
        )
        .await?
        .get(0)?)
}

/// Updates a user's editable columns.
pub async fn update_user(tx: &mut Tx, user: &User) -> StoreResult<()> {
    tx.execute(
        Statement::new(
            "UPDATE users SET name = $1, email = $2, department_id = $3, active = $4, is_admin = $5 WHERE id = $6",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.department)
        .bind(user.active as i64)
        .bind(user.admin as i64)
        .bind(user.id),
    )
    .await?;
    Ok(())
}

/// Replaces a user's roles with the given role ids.
pub async fn set_user_roles(tx: &mut Tx, user_id: i64, role_ids: &[i64]) -> StoreResult<()> {
    tx.execute(Statement::new("DELETE FROM user_roles WHERE user_id = $1").bind(user_id)).await?;
    for role_id in role_ids {
        tx.execute(
            Statement::new("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)").bind(user_id).bind(*role_id),
        )
        .await?;
    }
    Ok(())
}

/// Finds the id of the first (lowest id) system administrator.
pub async fn first_admin(tx: &mut Tx) -> StoreResult<Option<i64>> {
    Ok(tx.fetch_one(Statement::new("SELECT MIN(id) FROM users WHERE is_admin = 1")).await?.get(0)?)
}

/// Stores a token hash for a user.
pub async fn insert_token(tx: &mut Tx, user_id: i64, hash: &str, name: &str) -> StoreResult<i64> {
    Ok(tx
        .fetch_one(
            Statement::new(
                "INSERT INTO api_tokens (user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id RETURNING id",
            )
            .bind(user_id)
            .bind(hash)
            .bind(name)
            .bind(now_micros()),
        )
        .await?
        .get(0)?)
}

/// The active principal a token hash belongs to, with its roles' grants.
pub async fn principal_by_token(pool: &Reader, hash: &str) -> StoreResult<Option<Principal>> {
    let row = pool
        .fetch_optional(
            Statement::new(
                "SELECT u.id, u.is_admin FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND u.active = 1",
            )
            .bind(hash),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let user_id: i64 = row.get("id")?;
    let rows = pool
        .fetch_all(
            Statement::new(
                "SELECT ur.role_id, p.type_key, p.funnel_key, p.access FROM user_roles ur
         JOIN role_permissions p ON p.role_id = ur.role_id WHERE ur.user_id = $1 ORDER BY ur.role_id",
            )
            .bind(user_id),
        )
        .await?;
    let mut roles: Vec<(i64, Vec<Permission>)> = Vec::new();
    for row in rows {
        let role_id: i64 = row.get("role_id")?;
        let permission = permission_from_row(&row)?;
        match roles.last_mut() {
            Some((id, grants)) if *id == role_id => grants.push(permission),
            _ => roles.push((role_id, vec![permission])),
        }
    }
    Ok(Some(Principal {
        user_id,
        is_admin: row.get::<i64>("is_admin")? != 0,
        roles: roles.into_iter().map(|(_, g)| g).collect(),
    }))
}

fn permission_from_row(row: &Row) -> StoreResult<Permission> {
    let funnel: String = row.get("funnel_key")?;
    let access: String = row.get("access")?;
    Ok(Permission {
        type_key: row.get("type_key")?,
        funnel: (!funnel.is_empty()).then_some(funnel),
        access: Access::parse(&access).unwrap_or(Access::None),
    })
}

/// All departments by id.
pub async fn list_departments(pool: &Reader) -> StoreResult<Vec<Department>> {
    let rows =
        pool.fetch_all(Statement::new("SELECT id, name, parent_id, head_id FROM departments ORDER BY id")).await?;
    rows.iter()
        .map(|r| {
            Ok(Department {
                id: r.get("id")?,
                name: r.get("name")?,
                parent: r.get("parent_id")?,
                head: r.get("head_id")?,
            })
        })
        .collect()
}

/// Inserts a department and returns its id.
pub async fn insert_department(tx: &mut Tx, name: &str, parent: Option<i64>, head: Option<i64>) -> StoreResult<i64> {
    Ok(tx
        .fetch_one(
            Statement::new(
                "INSERT INTO departments (name, parent_id, head_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(parent)
            .bind(head)
            .bind(now_micros()),
        )
        .await?
        .get(0)?)
}

/// Writes a department's name, parent and head.
pub async fn update_department(tx: &mut Tx, department: &Department) -> StoreResult<()> {
    tx.execute(
        Statement::new("UPDATE departments SET name = $1, parent_id = $2, head_id = $3 WHERE id = $4")
            .bind(&department.name)
            .bind(department.parent)
            .bind(department.head)
            .bind(department.id),
    )
    .await?;
    Ok(())
}

/// All roles with their permissions.
pub async fn list_roles(pool: &Reader) -> StoreResult<Vec<Role>> {
    let rows = pool.fetch_all(Statement::new("SELECT id, key, title FROM roles ORDER BY key")).await?;
    let grants = pool
        .fetch_all(Statement::new(
            "SELECT role_id, type_key, funnel_key, access FROM role_permissions ORDER BY type_key, funnel_key",
        ))
        .await?;
    let mut by_role: HashMap<i64, Vec<Permission>> = HashMap::new();
    for row in &grants {
        by_role.entry(row.get("role_id")?).or_default().push(permission_from_row(row)?);
    }
    rows.iter()
        .map(|r| {
            let id: i64 = r.get("id")?;
            Ok(Role {
                id,
                key: r.get("key")?,
                title: r.get("title")?,
                permissions: by_role.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Inserts a role with its permissions; returns `None` when the key is taken.
pub async fn insert_role(tx: &mut Tx, key: &str, title: &str, permissions: &[Permission]) -> StoreResult<Option<i64>> {
    let statement = Statement::new(
        "INSERT INTO roles (key, title, created_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING RETURNING id",
    )
    .bind(key)
    .bind(title)
    .bind(now_micros());
    let id: Option<i64> = tx.write_returning(statement).await?.first().map(|row| row.get(0)).transpose()?;
    let Some(id) = id else { return Ok(None) };
    replace_permissions(tx, id, permissions).await?;
    Ok(Some(id))
}

/// Replaces a role's title and permissions.
pub async fn update_role(tx: &mut Tx, id: i64, title: &str, permissions: &[Permission]) -> StoreResult<()> {
    tx.execute(Statement::new("UPDATE roles SET title = $1 WHERE id = $2").bind(title).bind(id)).await?;
    replace_permissions(tx, id, permissions).await
}

async fn replace_permissions(tx: &mut Tx, role_id: i64, permissions: &[Permission]) -> StoreResult<()> {
    tx.execute(Statement::new("DELETE FROM role_permissions WHERE role_id = $1").bind(role_id)).await?;
    for p in permissions {
        tx.execute(
            Statement::new(
                "INSERT INTO role_permissions (role_id, type_key, funnel_key, access) VALUES ($1, $2, $3, $4)",
            )
            .bind(role_id)
            .bind(&p.type_key)
            .bind(p.funnel.clone().unwrap_or_default())
            .bind(p.access.as_str()),
        )
        .await?;
    }
    Ok(())
}

/// Ids of roles by key, in the order given; `Err(key)` names the first unknown key.
pub async fn role_ids(tx: &mut Tx, keys: &[String]) -> StoreResult<Result<Vec<i64>, String>> {
    let mut ids = Vec::with_capacity(keys.len());
    for key in keys {
        let id: Option<i64> = tx
            .fetch_optional(Statement::new("SELECT id FROM roles WHERE key = $1").bind(key))
            .await?
            .map(|row| row.get(0))
            .transpose()?;
        match id {
            Some(id) => ids.push(id),
            None => return Ok(Err(key.clone())),
        }
    }
    Ok(Ok(ids))
}

/// Whether a row with this id exists in `users` or `departments`.
pub async fn exists(tx: &mut Tx, table: PeopleTable, id: i64) -> StoreResult<bool> {
    let sql = match table {
        PeopleTable::Users => "SELECT COUNT(*) FROM users WHERE id = $1",
        PeopleTable::Departments => "SELECT COUNT(*) FROM departments WHERE id = $1",
    };
    let n: i64 = tx.fetch_one(Statement::new(sql).bind(id)).await?.get(0)?;
    Ok(n > 0)
}

/// Tables [`exists`] can check.
#[derive(Debug, Clone, Copy)]
pub enum PeopleTable {
    /// `users`.
    Users,
    /// `departments`.
    Departments,
}

/// The active users holding the role `key`, by id.
pub async fn users_with_role(pool: &Reader, key: &str) -> StoreResult<Vec<i64>> {
    Ok(pool
        .scalars(
            Statement::new(
                "SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
         WHERE r.key = $1 AND u.active = 1 ORDER BY u.id",
            )
            .bind(key),
        )
        .await?)
}
