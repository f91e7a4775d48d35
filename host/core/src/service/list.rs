//! Listing items: filters, sorting and keyset pagination that never duplicates or skips a row
//! while others insert, restricted to what the caller may read.
//!
//! Part of the [`super::Items`] aggregate (`core.items()`).

use serde::{Deserialize, Serialize};

use super::{Caller, Items, ServiceError, ServiceResult};
use voronka_model::FieldError;
use voronka_model::access::Access;
use voronka_model::entity_type::TypeSchema;
use voronka_model::field::FieldKind;
use voronka_model::item::Item;
use voronka_model::time::parse_rfc3339;
use voronka_store::catalog::Catalog;
use voronka_store::items::{self as repo, After, Bind, Condition, ListQuery, SortColumn};
use voronka_store::{Dialect, JsonCast};

/// Page size of a list when the request gives no `limit`.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest `limit` a list accepts; more is a validation error, not a cap.
pub const MAX_LIMIT: i64 = 500;

/// One page of an item list: the items the caller may read that match, in the sort asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemPage {
    /// At most `limit` items (default 50), sorted by `sort` (default `id`), ties by id.
    pub items: Vec<Item>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The opaque cursor: where the last page ended under which sort.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    s: String,
    v: serde_json::Value,
    id: i64,
}

fn encode_cursor(sort: &str, item: &Item, column: SortColumn) -> String {
    let v = match column {
        SortColumn::Id => serde_json::json!(item.id),
        SortColumn::CreatedAt => serde_json::json!(parse_rfc3339(&item.created_at).unwrap_or(0)),
        SortColumn::UpdatedAt => serde_json::json!(parse_rfc3339(&item.updated_at).unwrap_or(0)),
        SortColumn::Title => serde_json::json!(item.title),
    };
    let cursor = Cursor { s: sort.to_string(), v, id: item.id };
    hex::encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(text: &str, sort: &str, column: SortColumn) -> Result<After, String> {
    let bytes = hex::decode(text).map_err(|_| "not a cursor returned by this API".to_string())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| "not a cursor returned by this API".to_string())?;
    if cursor.s != sort {
        return Err(format!("this cursor belongs to sort `{}`, not `{sort}`", cursor.s));
    }
    match column {
        SortColumn::Title => cursor.v.as_str().map(|v| After::Text(v.to_string(), cursor.id)),
        _ => cursor.v.as_i64().map(|v| After::Int(v, cursor.id)),
    }
    .ok_or_else(|| "not a cursor returned by this API".to_string())
}

/// Which rows of a type the caller may read, as a condition; `None` when none.
fn readable(caller: &Caller, schema: &TypeSchema) -> Option<Condition> {
    let key = &schema.def.key;
    if !schema.def.has_stages {
        return (caller.principal.access(key, None) >= Access::Read)
            .then(|| Condition { sql: "type_key = ?".into(), binds: vec![Bind::Text(key.clone())] });
    }
    let funnels: Vec<&str> = schema
        .funnels
        .iter()
        .filter(|f| caller.principal.access(key, Some(&f.key)) >= Access::Read)
        .map(|f| f.key.as_str())
        .collect();
    if funnels.is_empty() {
        return None;
    }
    if funnels.len() == schema.funnels.len() {
        return Some(Condition { sql: "type_key = ?".into(), binds: vec![Bind::Text(key.clone())] });
    }
    let marks = vec!["?"; funnels.len()].join(", ");
    let mut binds = vec![Bind::Text(key.clone())];
    binds.extend(funnels.iter().map(|f| Bind::Text(f.to_string())));
    Some(Condition { sql: format!("(type_key = ? AND funnel_key IN ({marks}))"), binds })
}

/// SQL for a custom field's value, by dialect and the way it is compared.
fn field_expr(dialect: Dialect, key: &str, kind: FieldKind) -> String {
    match kind {
        FieldKind::Number => dialect.json_value("fields", &[key], JsonCast::Real),
        FieldKind::Money => dialect.json_value("fields", &[key, "value"], JsonCast::Real),
        FieldKind::User | FieldKind::ItemLink => dialect.json_value("fields", &[key], JsonCast::BigInt),
        _ => dialect.json_value("fields", &[key], JsonCast::Plain),
    }
}

/// Parses a filter value for a field kind into a bound value.
fn field_bind(dialect: Dialect, kind: FieldKind, raw: &str) -> Result<Bind, String> {
    match kind {
        FieldKind::Number | FieldKind::Money => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Bind::Real)
            .ok_or_else(|| format!("`{raw}` is not a number")),
        FieldKind::User | FieldKind::ItemLink => {
            raw.parse::<i64>().map(Bind::Int).map_err(|_| format!("`{raw}` is not an id"))
        }
        FieldKind::Bool => match raw {
            "true" | "false" if dialect.json_bool_is_text() => Ok(Bind::Text(raw.to_string())),
            "true" | "false" => Ok(Bind::Int(i64::from(raw == "true"))),
            _ => Err("expected true or false".into()),
        },
        FieldKind::Datetime => parse_rfc3339(raw)
            .map(|t| Bind::Text(voronka_model::time::to_rfc3339(t)))
            .ok_or_else(|| format!("`{raw}` is not an RFC 3339 timestamp")),
        FieldKind::File | FieldKind::Booking => Err("fields of this kind cannot be filtered".into()),
        _ => Ok(Bind::Text(raw.to_string())),
    }
}

/// Comparison operators of range filters (`field.x.gte=...`).
fn operator(op: &str) -> Option<&'static str> {
    match op {
        "eq" => Some("="),
        "gt" => Some(">"),
        "gte" => Some(">="),
        "lt" => Some("<"),
        "lte" => Some("<="),
        _ => None,
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

struct Parsed {
    conditions: Vec<Condition>,
    sort_name: String,
    sort: SortColumn,
    descending: bool,
    cursor: Option<String>,
    limit: i64,
}

fn parse_params(
    dialect: Dialect,
    schema: Option<&TypeSchema>,
    params: &[(String, String)],
) -> Result<Parsed, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut parsed = Parsed {
        conditions: Vec::new(),
        sort_name: "id".into(),
        sort: SortColumn::Id,
        descending: false,
        cursor: None,
        limit: DEFAULT_LIMIT,
    };
    let mut conditions = Vec::new();
    for (name, value) in params {
        let cond = |sql: &str, bind: Bind| Condition { sql: sql.to_string(), binds: vec![bind] };
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => parsed.limit = n,
                _ => errors.push(FieldError::new("limit", format!("limit is a whole number from 1 to {MAX_LIMIT}"))),
            },
            "cursor" => parsed.cursor = Some(value.clone()),
            "sort" => {
                let (desc, key) = value.strip_prefix('-').map(|k| (true, k)).unwrap_or((false, value.as_str()));
                let column = match key {
                    "id" => SortColumn::Id,
                    "created_at" => SortColumn::CreatedAt,
                    "updated_at" => SortColumn::UpdatedAt,
                    "title" => SortColumn::Title,
                    _ => {
                        errors.push(FieldError::new(
                            "sort",
                            "sort by id, created_at, updated_at or title, `-` first for descending",
                        ));
                        continue;
                    }
                };
                parsed.sort_name = value.clone();
                parsed.sort = column;
                parsed.descending = desc;
            }
            "funnel" => conditions.push(cond("funnel_key = ?", Bind::Text(value.clone()))),
            "stage" => conditions.push(cond("stage_key = ?", Bind::Text(value.clone()))),
            "responsible" | "parent" | "contact" | "company" => match value.parse::<i64>() {
                Ok(id) => conditions.push(match name.as_str() {
                    "responsible" => cond("responsible_id = ?", Bind::Int(id)),
                    "contact" => cond("contact_id = ?", Bind::Int(id)),
                    "company" => cond("company_id = ?", Bind::Int(id)),
                    _ => cond("id IN (SELECT item_id FROM item_parents WHERE parent_id = ?)", Bind::Int(id)),
                }),
                Err(_) => errors.push(FieldError::new(name.clone(), format!("`{value}` is not an id"))),
            },
            "q" => {
                let like = dialect.like_any_case();
                conditions.push(cond(&format!("title {like} ? ESCAPE '\\'"), Bind::Text(like_pattern(value))));
            }
            "type" => conditions.push(cond("type_key = ?", Bind::Text(value.clone()))),
            other => {
                let mut parts = other.split('.');
                let head = parts.next().unwrap_or("");
                let rest: Vec<&str> = parts.collect();
                let result = match head {
                    "amount" | "created_at" | "updated_at" => builtin_range(dialect, head, &rest, value),
                    "field" => schema
                        .ok_or_else(|| "filter by fields within one type".to_string())
                        .and_then(|s| field_filter(dialect, s, &rest, value)),
                    _ => Err(format!("unknown filter `{other}`")),
                };
                match result {
                    Ok(c) => conditions.push(c),
                    Err(message) => errors.push(FieldError::new(other.to_string(), message)),
                }
            }
        }
    }
    parsed.conditions = conditions;
    if errors.is_empty() { Ok(parsed) } else { Err(errors) }
}

fn builtin_range(dialect: Dialect, name: &str, rest: &[&str], value: &str) -> Result<Condition, String> {
    let op = match rest {
        [op] => operator(op).ok_or_else(|| format!("unknown operator `{op}`: use eq, gt, gte, lt, lte"))?,
        [] => "=",
        _ => return Err("use NAME.OP, e.g. amount.gte".into()),
    };
    if name == "amount" {
        let number: f64 = value.parse().map_err(|_| format!("`{value}` is not a number"))?;
        let expr = dialect.cast_real("amount_value");
        return Ok(Condition { sql: format!("{expr} {op} ?"), binds: vec![Bind::Real(number)] });
    }
    let micros = parse_rfc3339(value).ok_or_else(|| format!("`{value}` is not an RFC 3339 timestamp"))?;
    Ok(Condition { sql: format!("{name} {op} ?"), binds: vec![Bind::Int(micros)] })
}

fn field_filter(dialect: Dialect, schema: &TypeSchema, rest: &[&str], value: &str) -> Result<Condition, String> {
    let (key, op) = match rest {
        [key] => (*key, "="),
        [key, op] => (*key, operator(op).ok_or_else(|| format!("unknown operator `{op}`: use eq, gt, gte, lt, lte"))?),
        _ => return Err("use field.KEY=VALUE or field.KEY.OP=VALUE".into()),
    };
    let def = schema.field(key).ok_or_else(|| format!("type `{}` has no field `{key}`", schema.def.key))?;
    let bind = field_bind(dialect, def.kind, value)?;
    if def.multiple {
        if op != "=" {
            return Err("fields with several values take equality filters only".into());
        }
        let sql = dialect.json_array_has_text("items.fields", key);
        let text = match bind {
            Bind::Int(v) => v.to_string(),
            Bind::Real(v) => v.to_string(),
            Bind::Text(v) => v,
        };
        return Ok(Condition { sql, binds: vec![Bind::Text(text)] });
    }
    Ok(Condition { sql: format!("{} {op} ?", field_expr(dialect, key, def.kind)), binds: vec![bind] })
}

impl Items<'_> {
    /// Lists items of a type the caller may read, filtered, sorted and paginated.
    pub async fn list(&self, caller: &Caller, type_key: &str, params: &[(String, String)]) -> ServiceResult<ItemPage> {
        let catalog = self.core.catalog().await?;
        let schema =
            catalog.get(type_key).ok_or_else(|| ServiceError::NotFound(format!("no entity type `{type_key}`")))?;
        let visible = readable(caller, schema)
            .ok_or_else(|| ServiceError::Forbidden(format!("your roles give no read access to `{type_key}` items")))?;
        let params: Vec<(String, String)> = params.iter().filter(|(k, _)| k != "type").cloned().collect();
        self.run_list(Some(schema), vec![visible], &params).await
    }

    /// Lists the children of an item (items linking to it as a parent), of every type the caller
    /// may read, or of one type with `type=...`.
    pub async fn list_children(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        params: &[(String, String)],
    ) -> ServiceResult<ItemPage> {
        self.get(caller, type_key, id).await?;
        let catalog = self.core.catalog().await?;
        let only_type = params.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone());
        if let Some(t) = &only_type
            && !catalog.contains_key(t)
        {
            return Err(ServiceError::invalid("type", format!("no entity type `{t}`")));
        }
        let visible = readable_any(caller, &catalog, only_type.as_deref());
        let Some(visible) = visible else {
            return Ok(ItemPage { items: Vec::new(), next_cursor: None });
        };
        let schema = only_type.as_deref().and_then(|t| catalog.get(t));
        let mut params: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != "type" && k != "parent").cloned().collect();
        params.push(("parent".into(), id.to_string()));
        self.run_list(schema, vec![visible], &params).await
    }

    async fn run_list(
        &self,
        schema: Option<&TypeSchema>,
        mut conditions: Vec<Condition>,
        params: &[(String, String)],
    ) -> ServiceResult<ItemPage> {
        let parsed = parse_params(self.core.store.dialect(), schema, params).map_err(ServiceError::Validation)?;
        conditions.extend(parsed.conditions);
        let after = match &parsed.cursor {
            Some(c) => {
                Some(decode_cursor(c, &parsed.sort_name, parsed.sort).map_err(|m| ServiceError::invalid("cursor", m))?)
            }
            None => None,
        };
        let query =
            ListQuery { conditions, sort: parsed.sort, descending: parsed.descending, after, limit: parsed.limit };
        let mut items = repo::list(self.core.store.reader(), &query).await?;
        let next_cursor = if items.len() as i64 > parsed.limit {
            items.truncate(parsed.limit as usize);
            items.last().map(|last| encode_cursor(&parsed.sort_name, last, parsed.sort))
        } else {
            None
        };
        Ok(ItemPage { items, next_cursor })
    }
}

/// Readable rows across types (or of one type), as one OR-ed condition.
fn readable_any(caller: &Caller, catalog: &Catalog, only: Option<&str>) -> Option<Condition> {
    let parts: Vec<Condition> =
        catalog.values().filter(|s| only.is_none_or(|t| t == s.def.key)).filter_map(|s| readable(caller, s)).collect();
    if parts.is_empty() {
        return None;
    }
    let sql = format!("({})", parts.iter().map(|c| c.sql.as_str()).collect::<Vec<_>>().join(" OR "));
    Some(Condition { sql, binds: parts.into_iter().flat_map(|c| c.binds).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn cursor_round_trip_and_sort_mismatch() {
        let item: Item = Item {
            id: 7,
            type_key: "deal".into(),
            funnel: None,
            stage: None,
            title: "T".into(),
            amount: None,
            responsible: None,
            contact: None,
            company: None,
            parents: vec![],
            fields: Default::default(),
            version: 1,
            created_by: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_by: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        let c = encode_cursor("-title", &item, SortColumn::Title);
        assert_eq!(decode_cursor(&c, "-title", SortColumn::Title).unwrap(), After::Text("T".into(), 7));
        assert!(decode_cursor(&c, "id", SortColumn::Id).is_err());
        assert!(decode_cursor("zz", "id", SortColumn::Id).is_err());
    }

    #[test]
    fn unknown_filters_and_limits_are_named() {
        let params = vec![("limit".to_string(), "501".to_string()), ("colour".to_string(), "red".to_string())];
        let errors = parse_params(Dialect::Sqlite, None, &params).err().unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["limit", "colour"]);
    }
}
