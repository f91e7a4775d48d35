//! Stored plugins (module bytes and manifest) and their key-value state.

use crate::{Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::capability::Capability;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};
use voronka_model::time::{now_micros, to_rfc3339};

/// A stored world name, which the upload checked.
fn parse_world(name: &str) -> StoreResult<World> {
    World::parse(name)
        .ok_or_else(|| super::StoreError::Corrupt { table: "plugins", message: format!("unknown world `{name}`") })
}

/// A stored plugin version, without its bytes.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PluginVersion {
    /// Plugin name (lower-case letters, digits, `-`, `_`), shared by all its versions.
    pub name: String,
    /// Semantic version, e.g. `1.0.1`; a name and version are uploaded once.
    pub version: String,
    /// `wasm` or `rhai`.
    pub kind: PluginKind,
    /// The world it implements.
    pub world: World,
    /// Capabilities granted at upload; a host call needing another fails as `denied`.
    pub capabilities: Vec<Capability>,
    /// Time, memory and fuel limits of each call.
    pub limits: Limits,
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Installed by the host itself.
    pub builtin: bool,
    /// Upload time (RFC 3339).
    pub created_at: String,
}

const COLUMNS: &str = "name, version, kind, world, capabilities, limits, sha256, builtin, created_at";

fn version_from_row(row: &Row) -> StoreResult<PluginVersion> {
    Ok(PluginVersion {
        name: row.get("name")?,
        version: row.get("version")?,
        kind: PluginKind::from_stored(&row.get::<String>("kind")?),
        world: parse_world(&row.get::<String>("world")?)?,
        capabilities: parse_json("plugins", &row.get::<String>("capabilities")?)?,
        limits: parse_json("plugins", &row.get::<String>("limits")?)?,
        sha256: row.get("sha256")?,
        builtin: row.get::<i64>("builtin")? != 0,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Stores a plugin version. Returns false when this name and version exist already.
pub async fn insert(tx: &mut Tx, plugin: &PluginVersion, module: &[u8]) -> StoreResult<bool> {
    let statement = Statement::new(
        "INSERT INTO plugins (name, version, kind, world, capabilities, limits, sha256, module, builtin, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name, version) DO NOTHING RETURNING 1",
    )
    .bind(&plugin.name)
    .bind(&plugin.version)
    .bind(plugin.kind.as_str())
    .bind(plugin.world.as_str())
    .bind(serde_json::to_string(&plugin.capabilities).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&plugin.limits).unwrap_or_else(|_| "{}".into()))
    .bind(&plugin.sha256)
    .bind(module.to_vec())
    .bind(plugin.builtin as i64)
    .bind(now_micros());
    let done = tx.write_returning(statement).await?;
    Ok(!done.is_empty())
}

/// Every version of every plugin, by name then upload order.
pub async fn list(pool: &Reader) -> StoreResult<Vec<PluginVersion>> {
    let sql = format!("SELECT {COLUMNS} FROM plugins ORDER BY name, created_at");
    pool.fetch_all(Statement::new(sql)).await?.iter().map(version_from_row).collect()
}

/// The versions of one plugin.
pub async fn versions(pool: &Reader, name: &str) -> StoreResult<Vec<PluginVersion>> {
    let sql = format!("SELECT {COLUMNS} FROM plugins WHERE name = $1 ORDER BY created_at");
    pool.fetch_all(Statement::new(sql).bind(name)).await?.iter().map(version_from_row).collect()
}

/// The module bytes of a plugin version.
pub async fn module(pool: &Reader, name: &str, version: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(pool
        .scalar_optional(
            Statement::new("SELECT module FROM plugins WHERE name = $1 AND version = $2").bind(name).bind(version),
        )
        .await?)
}

/// Deletes every version of a plugin and its state.
pub async fn delete(tx: &mut Tx, name: &str) -> StoreResult<u64> {
    tx.execute(Statement::new("DELETE FROM plugin_kv WHERE plugin = $1").bind(name)).await?;
    let deleted =
        tx.write_returning(Statement::new("DELETE FROM plugins WHERE name = $1 RETURNING 1").bind(name)).await?;
    Ok(deleted.len() as u64)
}

/// A plugin's stored value.
pub async fn kv_get(pool: &Reader, plugin: &str, key: &str) -> StoreResult<Option<String>> {
    Ok(pool
        .scalar_optional(
            Statement::new("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2").bind(plugin).bind(key),
        )
        .await?)
}

/// Sets (`Some`) or deletes (`None`) a plugin's stored value.
pub async fn kv_put(tx: &mut Tx, plugin: &str, key: &str, value: Option<&str>) -> StoreResult<()> {
    match value {
        Some(value) => {
            tx.execute(
                Statement::new(
                    "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                )
                .bind(plugin)
                .bind(key)
                .bind(value),
            )
            .await?;
        }
        None => {
            tx.execute(Statement::new("DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2").bind(plugin).bind(key))
                .await?;
        }
    }
    Ok(())
}
