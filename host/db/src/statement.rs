//! Statements: SQL written once with `$1..$n` placeholders for both databases, with their
//! arguments.

use std::borrow::Cow;

use sqlx::Any;

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A 64-bit integer or NULL.
    Int(Option<i64>),
    /// Text or NULL.
    Text(Option<String>),
    /// A floating-point number or NULL.
    Real(Option<f64>),
    /// A boolean or NULL.
    Bool(Option<bool>),
    /// Bytes or NULL.
    Blob(Option<Vec<u8>>),
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::Blob(Some(v))
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_string))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}

impl From<f64> for Arg {
    fn from(v: f64) -> Arg {
        Arg::Real(Some(v))
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(Some(v))
    }
}

/// One SQL statement with `$1..$n` placeholders and its arguments.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// Not kept among a connection's prepared statements (its text changes with its values).
    transient: bool,
    /// Fails with [`crate::DbError::CheckFailed`] unless it changes exactly one row.
    changing_one_row: bool,
}

impl Statement {
    /// A statement without arguments yet.
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Statement {
        Statement { sql: sql.into(), args: Vec::new(), transient: false, changing_one_row: false }
    }

    /// Adds the next argument.
    pub fn bind(mut self, value: impl Into<Arg>) -> Statement {
        self.args.push(value.into());
        self
    }

    /// Marks the statement as not worth keeping prepared: its text carries values (an id
    /// list), so it is seldom run twice.
    pub fn transient(mut self) -> Statement {
        self.transient = true;
        self
    }

    /// Makes the statement a check (SQLite write thread only): it fails with
    /// [`crate::DbError::CheckFailed`] unless it changes exactly one row, so a version-checked
    /// write can be queued without waiting for an answer.
    pub(crate) fn changing_one_row(mut self) -> Statement {
        self.changing_one_row = true;
        self
    }

    /// See [`Statement::changing_one_row`].
    pub(crate) fn must_change_one_row(&self) -> bool {
        self.changing_one_row
    }

    /// The SQL text, with `$1`, `$2`, ... for the arguments.
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The arguments, `$1` first.
    pub(crate) fn args(&self) -> &[Arg] {
        &self.args
    }

    /// See [`Statement::transient`].
    pub(crate) fn is_transient(&self) -> bool {
        self.transient
    }

    /// The same statement answering one row per row it changes (`RETURNING 1`).
    pub(crate) fn returning_one(mut self) -> Statement {
        self.sql = format!("{} RETURNING 1", self.sql).into();
        self
    }

    /// The statement as an sqlx query.
    pub(crate) fn into_query(self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.into_owned())).persistent(!self.transient);
        for arg in self.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Real(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Blob(v) => query.bind(v),
            };
        }
        query
    }
}
