//! Rows as the engine answers them, from either database: a column's value is one of the five
//! SQLite storage classes (PostgreSQL's values map onto them), read by name or position into
//! plain Rust types.

use std::sync::Arc;

use sqlx::any::AnyTypeInfoKind;
use sqlx::{Column, Row as _, ValueRef};

use crate::{DbError, DbResult};

/// One column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer (booleans of PostgreSQL read as 0 and 1 too).
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// UTF-8 text (also readable as its bytes).
    Text(String),
    /// Raw bytes (SQLite `BLOB`, PostgreSQL `BYTEA`).
    Blob(Vec<u8>),
}

/// A row: its values, and the column names it shares with the other rows of its answer.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<Columns>,
    values: Vec<Value>,
}

/// The column names of an answer, in order. A lookup by name scans them: answers have a few
/// dozen columns at most, and comparing short names is cheaper than hashing them.
#[derive(Debug, Default)]
pub struct Columns {
    names: Vec<String>,
}

impl Columns {
    /// The columns of an answer, in order.
    pub fn new(names: impl IntoIterator<Item = String>) -> Arc<Columns> {
        Arc::new(Columns { names: names.into_iter().collect() })
    }
}

impl Row {
    /// A row of `values` under `columns`.
    pub fn new(columns: Arc<Columns>, values: Vec<Value>) -> Row {
        Row { names: columns, values }
    }

    /// The value of a column, by name or position, as `T`.
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> DbResult<T> {
        let position = column.position(self)?;
        let value = self.values.get(position).ok_or_else(|| column.missing())?;
        T::from_value(value).map_err(|expected| DbError::Decode {
            column: column.name(),
            message: format!("expected {expected}, found {}", value.kind()),
        })
    }

    /// The value of a column, by name or position, as `T`, moved out of the row: text and bytes
    /// are not copied. The column reads as `NULL` afterwards.
    pub fn take<T: FromValue>(&mut self, column: impl ColumnIndex) -> DbResult<T> {
        let position = column.position(self)?;
        let slot = self.values.get_mut(position).ok_or_else(|| column.missing())?;
        let value = std::mem::replace(slot, Value::Null);
        let found = value.kind();
        T::from_owned(value).map_err(|expected| DbError::Decode {
            column: column.name(),
            message: format!("expected {expected}, found {found}"),
        })
    }

    /// A row of sqlx's `Any` driver, read by the type of each value.
    pub(crate) fn from_any(row: &sqlx::any::AnyRow, columns: &Arc<Columns>) -> DbResult<Row> {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let raw = row.try_get_raw(i)?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                match raw.type_info().kind() {
                    AnyTypeInfoKind::Bool => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
                    AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                        Value::Int(row.try_get(i)?)
                    }
                    AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Value::Real(row.try_get(i)?),
                    AnyTypeInfoKind::Blob => Value::Blob(row.try_get(i)?),
                    AnyTypeInfoKind::Text | AnyTypeInfoKind::Null => Value::Text(row.try_get(i)?),
                }
            };
            values.push(value);
        }
        Ok(Row { names: columns.clone(), values })
    }

    /// The rows of sqlx's `Any` driver.
    pub(crate) fn all_from_any(rows: &[sqlx::any::AnyRow]) -> DbResult<Vec<Row>> {
        let Some(first) = rows.first() else { return Ok(Vec::new()) };
        let columns = Columns::new(first.columns().iter().map(|c| c.name().to_string()));
        rows.iter().map(|row| Row::from_any(row, &columns)).collect()
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real number",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// A column named by its name or its position.
pub trait ColumnIndex: Copy {
    /// The column's position in `row`.
    fn position(self, row: &Row) -> DbResult<usize>;
    /// The column as errors name it: its name, or `#<position>`.
    fn name(self) -> String;
    /// The error of a column the row lacks.
    fn missing(self) -> DbError {
        DbError::Decode { column: self.name(), message: "no such column".into() }
    }
}

impl ColumnIndex for &str {
    fn position(self, row: &Row) -> DbResult<usize> {
        row.names.names.iter().position(|name| name == self).ok_or_else(|| self.missing())
    }

    fn name(self) -> String {
        self.to_string()
    }
}

impl ColumnIndex for usize {
    fn position(self, _: &Row) -> DbResult<usize> {
        Ok(self)
    }

    fn name(self) -> String {
        format!("#{self}")
    }
}

/// A Rust type a column's value reads into; the error names what was expected.
pub trait FromValue: Sized {
    /// Converts `value`, or answers what was expected instead, e.g. `an integer`.
    fn from_value(value: &Value) -> Result<Self, &'static str>;

    /// Converts an owned `value`, moving text and bytes instead of copying them.
    fn from_owned(value: Value) -> Result<Self, &'static str> {
        Self::from_value(&value)
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Int(v) => Ok(*v),
            _ => Err("an integer"),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            _ => Err("a number"),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Int(v) => Ok(*v != 0),
            _ => Err("a boolean"),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            _ => Err("text"),
        }
    }

    fn from_owned(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(v) => Ok(v),
            _ => Err("text"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            Value::Text(v) => Ok(v.clone().into_bytes()),
            _ => Err("bytes"),
        }
    }

    fn from_owned(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Blob(v) => Ok(v),
            Value::Text(v) => Ok(v.into_bytes()),
            _ => Err("bytes"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }

    fn from_owned(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::from_owned(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        let columns = Columns::new(["id".to_string(), "title".to_string(), "gone".to_string()]);
        Row::new(columns, vec![Value::Int(7), Value::Text("Kitchen".into()), Value::Null])
    }

    #[test]
    fn values_read_by_name_or_position() {
        let row = row();
        assert_eq!(row.get::<i64>("id").ok(), Some(7));
        assert_eq!(row.get::<String>(1).ok().as_deref(), Some("Kitchen"));
        assert_eq!(row.get::<Option<i64>>("gone").ok(), Some(None));
        assert_eq!(row.get::<bool>("id").ok(), Some(true));
    }

    #[test]
    fn a_wrong_type_or_column_is_a_clear_error() {
        let row = row();
        let wrong = row.get::<i64>("title").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(wrong.contains("title") && wrong.contains("expected an integer, found text"), "{wrong}");
        let missing = row.get::<i64>("nope").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("nope") && missing.contains("no such column"), "{missing}");
        assert!(row.get::<String>("gone").is_err(), "NULL is not text");
    }

    #[test]
    fn a_taken_value_moves_out_and_leaves_null() {
        let mut row = row();
        assert_eq!(row.take::<String>("title").ok().as_deref(), Some("Kitchen"));
        assert_eq!(row.get::<Option<String>>("title").ok(), Some(None));
        assert_eq!(row.take::<Option<Vec<u8>>>("gone").ok(), Some(None));
        let wrong = row.take::<String>("id").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(wrong.contains("expected text, found an integer"), "{wrong}");
        assert!(row.take::<i64>("nope").is_err());
    }
}
