//! The file store's metadata (the bytes are kept under the data dir, named by their SHA-256).

use crate::{Reader, Row, Statement, StoreResult, Tx};
use voronka_model::file::StoredFile;
use voronka_model::item::ItemRef;
use voronka_model::time::{Micros, to_rfc3339};

const COLUMNS: &str = "id, sha256, size, name, content_type, type_key, item_id, created_by, created_at";

fn file_from_row(row: &Row) -> StoreResult<StoredFile> {
    let type_key: Option<String> = row.get("type_key")?;
    let item_id: Option<i64> = row.get("item_id")?;
    Ok(StoredFile {
        id: row.get("id")?,
        sha256: row.get("sha256")?,
        size: row.get("size")?,
        name: row.get("name")?,
        content_type: row.get("content_type")?,
        item: type_key.zip(item_id).map(|(type_key, id)| ItemRef { type_key, id }),
        created_by: row.get("created_by")?,
        created_at: to_rfc3339(row.get("created_at")?),
    })
}

/// Records a stored file; returns its id.
pub async fn insert(tx: &mut Tx, file: &StoredFile, now: Micros) -> StoreResult<i64> {
    let rows = tx
        .write_returning(
            Statement::new(
                "INSERT INTO files (sha256, size, name, content_type, type_key, item_id, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(file.sha256.as_str())
            .bind(file.size)
            .bind(file.name.as_str())
            .bind(file.content_type.as_str())
            .bind(file.item.as_ref().map(|i| i.type_key.clone()))
            .bind(file.item.as_ref().map(|i| i.id))
            .bind(file.created_by)
            .bind(now),
        )
        .await?;
    Ok(rows.first().map(|r| r.get("id")).transpose()?.unwrap_or_default())
}

/// One file's metadata.
pub async fn get(pool: &Reader, id: i64) -> StoreResult<Option<StoredFile>> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE id = $1");
    let row = pool.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(file_from_row).transpose()
}

/// One file's metadata, seeing the transaction's own writes.
pub async fn get_in(tx: &mut Tx, id: i64) -> StoreResult<Option<StoredFile>> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE id = $1");
    let row = tx.fetch_optional(Statement::new(sql).bind(id)).await?;
    row.as_ref().map(file_from_row).transpose()
}

/// The files attached to an item, oldest first.
pub async fn of_item(pool: &Reader, item: &ItemRef) -> StoreResult<Vec<StoredFile>> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE type_key = $1 AND item_id = $2 ORDER BY id");
    let rows = pool.fetch_all(Statement::new(sql).bind(&item.type_key).bind(item.id)).await?;
    rows.iter().map(file_from_row).collect()
}

/// Attaches files not yet attached to an item (deferred with the transaction's next statement).
pub fn attach(tx: &mut Tx, ids: &[i64], item: &ItemRef) {
    for id in ids {
        tx.defer(
            Statement::new("UPDATE files SET type_key = $1, item_id = $2 WHERE id = $3 AND item_id IS NULL")
                .bind(item.type_key.as_str())
                .bind(item.id)
                .bind(*id),
        );
    }
}
