//! Items and their parent links, with filtered keyset-paginated listing.

use std::collections::HashMap;

use crate::{Fetch, Reader, Row, Statement, StoreResult, Tx, parse_json};
use voronka_model::item::{Item, ItemRef};
use voronka_model::money::Money;
use voronka_model::time::{Micros, to_rfc3339};

const COLUMNS: &str = "id, type_key, funnel_key, stage_key, title, amount_value, amount_currency, \
    responsible_id, contact_id, company_id, fields, version, created_by, created_at, updated_by, updated_at";

/// The columns of an item row that a write sets.
#[derive(Debug, Clone)]
pub struct ItemWrite {
    /// Funnel key; `None` for types without stages.
    pub funnel: Option<String>,
    /// Stage key in that funnel; `None` for types without stages.
    pub stage: Option<String>,
    /// Title, already checked and trimmed by the caller.
    pub title: String,
    /// Amount, stored as decimal text and currency code; `None` when not set.
    pub amount: Option<Money>,
    /// Id of the responsible user, if any.
    pub responsible: Option<i64>,
    /// Id of the linked `contact` item, if any.
    pub contact: Option<i64>,
    /// Id of the linked `company` item, if any.
    pub company: Option<i64>,
    /// Validated custom field values by key, stored as one JSON object.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

fn item_from_row(row: &mut Row) -> StoreResult<Item> {
    let amount_value: Option<String> = row.take("amount_value")?;
    let amount_currency: Option<String> = row.take("amount_currency")?;
    Ok(Item {
        id: row.get("id")?,
        type_key: row.take("type_key")?,
        funnel: row.take("funnel_key")?,
        stage: row.take("stage_key")?,
        title: row.take("title")?,
        amount: amount_value.zip(amount_currency).map(|(value, currency)| Money { value, currency }),
        responsible: row.get("responsible_id")?,
        contact: row.get("contact_id")?,
        company: row.get("company_id")?,
        parents: Vec::new(),
        fields: parse_json("items", &row.take::<String>("fields")?)?,
        version: row.get("version")?,
        created_by: row.get("created_by")?,
        created_at: to_rfc3339(row.get("created_at")?),
        updated_by: row.get("updated_by")?,
        updated_at: to_rfc3339(row.get("updated_at")?),
    })
}

/// The items lent to a transaction by its caller (see [`lend`]).
#[derive(Default)]
struct Lent(Vec<Item>);

/// Lends `tx` an item as its caller knows it: read just before (a robot's run reads its item
/// once and acts on that copy) or as a write of this transaction left it. Reading the item in
/// this transaction then takes this copy instead of a request ([`lent`]). That is safe because
/// every write of an item checks the version it was read at: a copy older than the row fails
/// the write, and the use case runs again on a fresh read. Writes of the item through this
/// module forget the copy first.
pub fn lend(tx: &mut Tx, item: Item) {
    forget(tx, item.id);
    tx.extension::<Lent>().0.push(item);
}

/// The copy of an item lent to `tx`, if any.
pub fn lent<'a>(tx: &'a Tx, type_key: &str, id: i64) -> Option<&'a Item> {
    tx.extension_ref::<Lent>()?.0.iter().find(|item| item.id == id && item.type_key == type_key)
}

/// Drops the lent copy of an item (it is being written), and those of its children (a deleted
/// item takes its links along).
fn forget(tx: &mut Tx, id: i64) {
    if tx.extension_ref::<Lent>().is_some() {
        tx.extension::<Lent>().0.retain(|item| item.id != id && !item.parents.iter().any(|parent| parent.id == id));
    }
}

/// Inserts an item and its parent links; returns the new id.
pub async fn insert(
    tx: &mut Tx,
    type_key: &str,
    write: &ItemWrite,
    parents: &[ItemRef],
    actor_user: Option<i64>,
    now: Micros,
) -> StoreResult<i64> {
    let id = tx.allocate_id("items").await?;
    let insert = Statement::new(
        "INSERT INTO items (id, type_key, funnel_key, stage_key, title, amount_value, amount_currency,
            responsible_id, contact_id, company_id, fields, version, created_by, created_at, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $12, $13)",
    )
    .bind(id)
    .bind(type_key)
    .bind(&write.funnel)
    .bind(&write.stage)
    .bind(&write.title)
    .bind(write.amount.as_ref().map(|m| m.value.clone()))
    .bind(write.amount.as_ref().map(|m| m.currency.clone()))
    .bind(write.responsible)
    .bind(write.contact)
    .bind(write.company)
    .bind(serde_json::Value::Object(write.fields.clone()).to_string())
    .bind(actor_user)
    .bind(now);
    tx.defer(insert);
    insert_parents(tx, id, parents);
    Ok(id)
}

fn insert_parents(tx: &mut Tx, id: i64, parents: &[ItemRef]) {
    for parent in parents {
        tx.defer(parent_statement(id, parent));
    }
}

fn parent_statement(id: i64, parent: &ItemRef) -> Statement {
    Statement::new("INSERT INTO item_parents (item_id, parent_id, parent_type) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(parent.id)
        .bind(&parent.type_key)
}

/// Writes new column values if the row still has `version`, together with `then` (history,
/// timeline, events of the change); returns false, having written none of it, when another
/// writer got there first. Replaces the parent links when `parents` is given.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    tx: &mut Tx,
    id: i64,
    version: i64,
    write: &ItemWrite,
    parents: Option<&[ItemRef]>,
    actor_user: Option<i64>,
    now: Micros,
    then: Vec<Statement>,
) -> StoreResult<bool> {
    forget(tx, id);
    let update = Statement::new(
        "UPDATE items SET funnel_key = $1, stage_key = $2, title = $3, amount_value = $4, amount_currency = $5,
            responsible_id = $6, contact_id = $7, company_id = $8, fields = $9, version = version + 1,
            updated_by = $10, updated_at = $11
         WHERE id = $12 AND version = $13",
    )
    .bind(&write.funnel)
    .bind(&write.stage)
    .bind(&write.title)
    .bind(write.amount.as_ref().map(|m| m.value.clone()))
    .bind(write.amount.as_ref().map(|m| m.currency.clone()))
    .bind(write.responsible)
    .bind(write.contact)
    .bind(write.company)
    .bind(serde_json::Value::Object(write.fields.clone()).to_string())
    .bind(actor_user)
    .bind(now)
    .bind(id)
    .bind(version);
    let mut with = Vec::new();
    if let Some(parents) = parents {
        with.push(Statement::new("DELETE FROM item_parents WHERE item_id = $1").bind(id));
        with.extend(parents.iter().map(|parent| parent_statement(id, parent)));
    }
    with.extend(then);
    Ok(tx.write_checked(update, with).await?)
}

/// Deletes an item and every link to or from it if the row still has `version`; returns false
/// (having deleted nothing the caller may keep: roll back) when another writer got there first.
pub async fn delete(tx: &mut Tx, id: i64, version: i64) -> StoreResult<bool> {
    forget(tx, id);
    tx.defer(Statement::new("DELETE FROM item_parents WHERE item_id = $1 OR parent_id = $1").bind(id));
    let delete = Statement::new("DELETE FROM items WHERE id = $1 AND version = $2 RETURNING id").bind(id).bind(version);
    Ok(tx.write_returning(delete).await?.len() == 1)
}

/// The query of one item with its parent links: a row per parent (one with NULLs if none).
fn item_with_parents(type_key: &str, id: i64) -> Statement {
    Statement::new(ITEM_WITH_PARENTS).bind(id).bind(type_key)
}

const ITEM_WITH_PARENTS: &str = "SELECT items.id, type_key, funnel_key, stage_key, title, amount_value, \
    amount_currency, responsible_id, contact_id, company_id, fields, version, created_by, created_at, updated_by, \
    updated_at, p.parent_id, p.parent_type FROM items LEFT JOIN item_parents p ON p.item_id = items.id \
    WHERE items.id = $1 AND items.type_key = $2 ORDER BY p.parent_id";

/// Builds the item from the rows of [`item_with_parents`].
fn item_from_rows(mut rows: Vec<Row>) -> StoreResult<Option<Item>> {
    let Some(first) = rows.first_mut() else { return Ok(None) };
    let mut item = item_from_row(first)?;
    for row in &rows {
        if let Some(parent_id) = row.get::<Option<i64>>("parent_id")? {
            let type_key: Option<String> = row.get("parent_type")?;
            item.parents.push(ItemRef { type_key: type_key.unwrap_or_default(), id: parent_id });
        }
    }
    Ok(Some(item))
}

/// An item of a type by id, with its parents.
pub async fn get(conn: &mut impl Fetch, type_key: &str, id: i64) -> StoreResult<Option<Item>> {
    item_from_rows(conn.fetch(item_with_parents(type_key, id)).await?)
}

/// Several items by id (any types), with their parents; missing ones are left out.
pub async fn get_many(pool: &Reader, ids: &[i64]) -> StoreResult<HashMap<i64, Item>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT items.id, type_key, funnel_key, stage_key, title, amount_value, amount_currency, responsible_id, \
         contact_id, company_id, fields, version, created_by, created_at, updated_by, updated_at FROM items \
         WHERE items.id IN ({list})"
    );
    // The text changes with the list: not kept among the connections' prepared statements.
    let rows = pool.fetch_all(Statement::new(sql).transient()).await?;
    for mut row in rows {
        let item = item_from_row(&mut row)?;
        out.insert(item.id, item);
    }
    let found: Vec<i64> = out.keys().copied().collect();
    for (id, parents) in parents_of(&mut pool.clone(), &found).await? {
        if let Some(item) = out.get_mut(&id) {
            item.parents = parents;
        }
    }
    Ok(out)
}

/// The same inside `tx`, seeing its own writes.
pub async fn get_in(tx: &mut Tx, type_key: &str, id: i64) -> StoreResult<Option<Item>> {
    item_from_rows(tx.fetch_all(item_with_parents(type_key, id)).await?)
}

/// The same, locking the item's row until `tx` ends, for a change that must not lose a race to
/// another writer (see `Tx::hold_turn`).
pub async fn get_for_change(tx: &mut Tx, type_key: &str, id: i64) -> StoreResult<Option<Item>> {
    let lock = tx.dialect().for_update_of("items");
    let statement = Statement::new(format!("{ITEM_WITH_PARENTS} {lock}")).bind(id).bind(type_key);
    item_from_rows(tx.fetch_all(statement).await?)
}

/// Parent links of each listed item.
async fn parents_of(conn: &mut impl Fetch, ids: &[i64]) -> StoreResult<HashMap<i64, Vec<ItemRef>>> {
    let mut map: HashMap<i64, Vec<ItemRef>> = HashMap::new();
    if ids.is_empty() {
        return Ok(map);
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT item_id, parent_id, parent_type FROM item_parents WHERE item_id IN ({list}) ORDER BY item_id, parent_id"
    );
    for mut row in conn.fetch(Statement::new(sql).transient()).await? {
        map.entry(row.get("item_id")?)
            .or_default()
            .push(ItemRef { type_key: row.take("parent_type")?, id: row.get("parent_id")? });
    }
    Ok(map)
}

/// The items linking to `parent` as their parent.
pub async fn children_of(pool: &Reader, parent: i64) -> StoreResult<Vec<ItemRef>> {
    let rows = pool.fetch_all(Statement::new("SELECT i.type_key, i.id FROM item_parents p JOIN items i ON i.id = p.item_id WHERE p.parent_id = $1 ORDER BY i.id",).bind(parent))
    .await?;
    rows.iter().map(|r| Ok(ItemRef { type_key: r.get("type_key")?, id: r.get("id")? })).collect()
}

/// The type of the item with this id, if it exists.
pub async fn type_of(tx: &mut Tx, id: i64) -> StoreResult<Option<String>> {
    let row = tx.fetch_optional(Statement::new("SELECT type_key FROM items WHERE id = $1").bind(id)).await?;
    Ok(row.map(|r| r.get(0)).transpose()?)
}

/// A value bound into a dynamically built query.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// A 64-bit integer: ids, times in microseconds, booleans as 0 or 1.
    Int(i64),
    /// A floating-point number, compared with numeric field values.
    Real(f64),
    /// Text: keys, field values, RFC 3339 times, `LIKE` patterns.
    Text(String),
}

/// A `WHERE` fragment with its bound values; `?` in the text marks each value in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// SQL with `?` for each bound value.
    pub sql: String,
    /// Values, in order.
    pub binds: Vec<Bind>,
}

/// Columns a list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// By id, which is creation order.
    Id,
    /// By creation time, then id.
    CreatedAt,
    /// By time of the last change or move, then id.
    UpdatedAt,
    /// By title as the database compares text, then id.
    Title,
}

impl SortColumn {
    /// The `items` column sorted by.
    pub fn column(self) -> &'static str {
        match self {
            SortColumn::Id => "id",
            SortColumn::CreatedAt => "created_at",
            SortColumn::UpdatedAt => "updated_at",
            SortColumn::Title => "title",
        }
    }
}

/// Where the previous page ended: the sort value and id of its last row.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// Integer sort value (id, times).
    Int(i64, i64),
    /// Text sort value (title).
    Text(String, i64),
}

/// A list request after permission checks and parsing.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Conditions, joined with AND (the type condition included).
    pub conditions: Vec<Condition>,
    /// Column to sort by; rows with equal values are ordered by id.
    pub sort: SortColumn,
    /// Largest first (a `-` before the API's `sort` value).
    pub descending: bool,
    /// Resume after this row.
    pub after: Option<After>,
    /// Most items on the page (1 to 500); one more row is read to tell whether more follow.
    pub limit: i64,
}

/// Runs a list query; returns at most `limit + 1` rows so the caller knows whether more follow.
pub async fn list(pool: &Reader, query: &ListQuery) -> StoreResult<Vec<Item>> {
    let mut sql = format!("SELECT {COLUMNS} FROM items WHERE ");
    let mut binds: Vec<Bind> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for condition in &query.conditions {
        parts.push(condition.sql.clone());
        binds.extend(condition.binds.iter().cloned());
    }
    let column = query.sort.column();
    let (cmp, dir) = if query.descending { ("<", "DESC") } else { (">", "ASC") };
    match &query.after {
        None => {}
        Some(After::Int(_, id)) if query.sort == SortColumn::Id => {
            parts.push(format!("id {cmp} ?"));
            binds.push(Bind::Int(*id));
        }
        Some(after) => {
            parts.push(format!("({column} {cmp} ? OR ({column} = ? AND id {cmp} ?))"));
            let (value, id) = match after {
                After::Int(v, id) => (Bind::Int(*v), *id),
                After::Text(v, id) => (Bind::Text(v.clone()), *id),
            };
            binds.extend([value.clone(), value, Bind::Int(id)]);
        }
    }
    sql.push_str(&if parts.is_empty() { "1 = 1".to_string() } else { parts.join(" AND ") });
    if query.sort == SortColumn::Id {
        sql.push_str(&format!(" ORDER BY id {dir}"));
    } else {
        sql.push_str(&format!(" ORDER BY {column} {dir}, id {dir}"));
    }
    sql.push_str(&format!(" LIMIT {}", query.limit + 1));
    let sql = number_placeholders(&sql);
    let mut statement = Statement::new(sql);
    for bind in binds {
        statement = match bind {
            Bind::Int(v) => statement.bind(v),
            Bind::Real(v) => statement.bind(v),
            Bind::Text(v) => statement.bind(v),
        };
    }
    let rows = pool.fetch_all(statement).await?;
    let mut items = rows.into_iter().map(|mut row| item_from_row(&mut row)).collect::<StoreResult<Vec<_>>>()?;
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let mut parents = parents_of(&mut pool.clone(), &ids).await?;
    for item in &mut items {
        item.parents = parents.remove(&item.id).unwrap_or_default();
    }
    Ok(items)
}

/// Replaces each `?` outside string literals with `$1`, `$2`, ... in order.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_literal = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '?' if !in_literal => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, type_key: &str, parents: &[i64]) -> Item {
        Item {
            id,
            type_key: type_key.into(),
            funnel: None,
            stage: None,
            title: format!("item {id}"),
            amount: None,
            responsible: None,
            contact: None,
            company: None,
            parents: parents.iter().map(|&id| ItemRef { type_key: "deal".into(), id }).collect(),
            fields: serde_json::Map::new(),
            version: 1,
            created_by: None,
            created_at: String::new(),
            updated_by: None,
            updated_at: String::new(),
        }
    }

    #[tokio::test]
    async fn lent_items_are_found_by_type_and_id_and_forgotten_with_their_parents() {
        let (_dir, store) = crate::scratch().await;
        let mut tx = store.begin();
        lend(&mut tx, item(1, "deal", &[]));
        lend(&mut tx, item(2, "production", &[1]));
        lend(&mut tx, item(3, "production", &[]));
        assert_eq!(lent(&tx, "deal", 1).map(|i| i.title.as_str()), Some("item 1"));
        assert!(lent(&tx, "contact", 1).is_none(), "another type's id");
        let mut newer = item(1, "deal", &[]);
        newer.version = 2;
        lend(&mut tx, newer);
        assert_eq!(lent(&tx, "deal", 1).map(|i| i.version), Some(2), "a new copy replaces the old");
        // Writing item 1 drops its copy and that of its child, whose links go with a delete.
        forget(&mut tx, 1);
        assert!(lent(&tx, "deal", 1).is_none() && lent(&tx, "production", 2).is_none());
        assert!(lent(&tx, "production", 3).is_some());
        assert!(!tx.holds_turn(), "lending sends nothing");
        drop(tx);
        store.close().await;
    }

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(number_placeholders("a = ? AND b LIKE '?x' AND c = ?"), "a = $1 AND b LIKE '?x' AND c = $2");
    }
}
