//! Entity types, custom fields and funnels.

use std::collections::BTreeMap;

use crate::{Reader, Statement, StoreError, StoreResult, Tx, parse_json};
use voronka_model::entity_type::{EntityType, TypeSchema};
use voronka_model::field::{FieldDef, FieldKind};
use voronka_model::funnel::{Funnel, ManualMoves, Stage};
use voronka_model::time::now_micros;

/// Every type with its fields and funnels, keyed by type key.
pub type Catalog = BTreeMap<String, TypeSchema>;

/// Loads the whole catalog (it is small and cached by generation).
pub async fn load(pool: &Reader) -> StoreResult<Catalog> {
    let mut catalog = Catalog::new();
    let rows = pool.fetch_all(Statement::new("SELECT key, title, builtin, has_stages, has_funnels, has_amount, parents FROM entity_types ORDER BY created_at, key",))
    .await?;
    for row in rows {
        let def = EntityType {
            key: row.get("key")?,
            title: row.get("title")?,
            builtin: row.get::<i64>("builtin")? != 0,
            has_stages: row.get::<i64>("has_stages")? != 0,
            has_funnels: row.get::<i64>("has_funnels")? != 0,
            has_amount: row.get::<i64>("has_amount")? != 0,
            parents: parse_json("entity_types", &row.get::<String>("parents")?)?,
        };
        catalog.insert(def.key.clone(), TypeSchema { def, fields: Vec::new(), funnels: Vec::new() });
    }
    let rows = pool
        .fetch_all(Statement::new(
            "SELECT type_key, key, title, kind, required, multiple, settings FROM fields ORDER BY type_key, position",
        ))
        .await?;
    for row in rows {
        let type_key: String = row.get("type_key")?;
        let settings: FieldSettings = parse_json("fields", &row.get::<String>("settings")?)?;
        let kind: String = row.get("kind")?;
        let kind: FieldKind = serde_json::from_value(serde_json::Value::String(kind))
            .map_err(|e| StoreError::Corrupt { table: "fields", message: e.to_string() })?;
        let field = FieldDef {
            key: row.get("key")?,
            title: row.get("title")?,
            kind,
            required: row.get::<i64>("required")? != 0,
            multiple: row.get::<i64>("multiple")? != 0,
            options: settings.options,
            target: settings.target,
        };
        if let Some(schema) = catalog.get_mut(&type_key) {
            schema.fields.push(field);
        }
    }
    let rows = pool
        .fetch_all(Statement::new(
            "SELECT type_key, key, title, is_default, stages, manual_moves FROM funnels
             ORDER BY type_key, is_default DESC, position",
        ))
        .await?;
    for row in rows {
        let type_key: String = row.get("type_key")?;
        let funnel = Funnel {
            key: row.get("key")?,
            title: row.get("title")?,
            is_default: row.get::<i64>("is_default")? != 0,
            stages: parse_json("funnels", &row.get::<String>("stages")?)?,
            manual_moves: {
                let name: String = row.get("manual_moves")?;
                ManualMoves::parse(&name).ok_or_else(|| StoreError::Corrupt {
                    table: "funnels",
                    message: format!("unknown manual_moves `{name}`"),
                })?
            },
        };
        if let Some(schema) = catalog.get_mut(&type_key) {
            schema.funnels.push(funnel);
        }
    }
    Ok(catalog)
}

/// Stored settings of a field that only some kinds use.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FieldSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// Inserts a new entity type. Returns false when the key is taken.
pub async fn insert_type(tx: &mut Tx, def: &EntityType) -> StoreResult<bool> {
    let parents = serde_json::to_string(&def.parents).unwrap_or_else(|_| "[]".into());
    let statement = Statement::new(
        "INSERT INTO entity_types (key, title, builtin, has_stages, has_funnels, has_amount, parents, created_at)
         VALUES ($1, $2, 0, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING 1",
    )
    .bind(&def.key)
    .bind(&def.title)
    .bind(def.has_stages as i64)
    .bind(def.has_funnels as i64)
    .bind(def.has_amount as i64)
    .bind(parents)
    .bind(now_micros());
    let done = tx.write_returning(statement).await?;
    Ok(!done.is_empty())
}

/// Updates a type's title and allowed parents.
pub async fn update_type(tx: &mut Tx, def: &EntityType) -> StoreResult<()> {
    let parents = serde_json::to_string(&def.parents).unwrap_or_else(|_| "[]".into());
    tx.execute(
        Statement::new("UPDATE entity_types SET title = $1, parents = $2 WHERE key = $3")
            .bind(&def.title)
            .bind(parents)
            .bind(&def.key),
    )
    .await?;
    Ok(())
}

/// Inserts a field at the end of the type's list. Returns false when the key is taken.
pub async fn insert_field(tx: &mut Tx, type_key: &str, field: &FieldDef) -> StoreResult<bool> {
    let settings = FieldSettings { options: field.options.clone(), target: field.target.clone() };
    let kind = serde_json::to_value(field.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let done = tx
        .write_returning(
            Statement::new(
                "INSERT INTO fields (type_key, key, title, kind, required, multiple, settings, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
                 (SELECT COALESCE(MAX(position), 0) + 1 FROM fields WHERE type_key = $1))
         ON CONFLICT (type_key, key) DO NOTHING RETURNING 1",
            )
            .bind(type_key)
            .bind(&field.key)
            .bind(&field.title)
            .bind(kind)
            .bind(field.required as i64)
            .bind(field.multiple as i64)
            .bind(serde_json::to_string(&settings).unwrap_or_else(|_| "{}".into())),
        )
        .await?;
    Ok(!done.is_empty())
}

/// Inserts a funnel. Returns false when the key is taken.
pub async fn insert_funnel(tx: &mut Tx, type_key: &str, funnel: &Funnel) -> StoreResult<bool> {
    let done = tx
        .write_returning(
            Statement::new(
                "INSERT INTO funnels (type_key, key, title, is_default, position, stages, manual_moves)
         VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM funnels WHERE type_key = $1), $5, $6)
         ON CONFLICT (type_key, key) DO NOTHING RETURNING 1",
            )
            .bind(type_key)
            .bind(&funnel.key)
            .bind(&funnel.title)
            .bind(funnel.is_default as i64)
            .bind(stages_json(&funnel.stages))
            .bind(funnel.manual_moves.as_str()),
        )
        .await?;
    Ok(!done.is_empty())
}

/// Replaces a funnel's title, stages, default flag and manual-moves setting (clearing the flag on the type's other
/// funnels when this one becomes the default).
pub async fn update_funnel(tx: &mut Tx, type_key: &str, funnel: &Funnel) -> StoreResult<()> {
    if funnel.is_default {
        tx.execute(
            Statement::new("UPDATE funnels SET is_default = 0 WHERE type_key = $1 AND key <> $2")
                .bind(type_key)
                .bind(&funnel.key),
        )
        .await?;
    }
    tx.execute(
        Statement::new(
            "UPDATE funnels SET title = $1, stages = $2, is_default = $3, manual_moves = $6 WHERE type_key = $4 AND key = $5",
        )
        .bind(&funnel.title)
        .bind(stages_json(&funnel.stages))
        .bind(funnel.is_default as i64)
            .bind(type_key)
            .bind(&funnel.key)
        .bind(funnel.manual_moves.as_str()),
    )
    .await?;
    Ok(())
}

/// How many items of a type stand in a stage of a funnel.
pub async fn count_in_stage(tx: &mut Tx, type_key: &str, funnel: &str, stage: &str) -> StoreResult<i64> {
    Ok(tx
        .fetch_one(
            Statement::new("SELECT COUNT(*) FROM items WHERE type_key = $1 AND funnel_key = $2 AND stage_key = $3")
                .bind(type_key)
                .bind(funnel)
                .bind(stage),
        )
        .await?
        .get(0)?)
}

fn stages_json(stages: &[Stage]) -> String {
    serde_json::to_string(stages).unwrap_or_else(|_| "[]".into())
}
