//! Statements run on a rusqlite connection, their rows answered as the engine's [`Row`]s, so
//! a row of the SQLite write connection or of a read connection (`read_connections`) reads as
//! one of a sqlx pool does.

use std::path::Path;

use rusqlite::types::ValueRef;

use crate::{Arg, Columns, DbError, DbResult, Row, Statement, Value};

/// Opens a connection of the engine's own to `file` with `flags`, applies `pragmas`, and keeps
/// up to `statements` prepared statements.
pub(crate) fn open(
    file: &Path,
    flags: rusqlite::OpenFlags,
    pragmas: &str,
    statements: usize,
) -> DbResult<rusqlite::Connection> {
    let connection = rusqlite::Connection::open_with_flags(file, flags).map_err(DbError::Sqlite)?;
    connection.execute_batch(pragmas).map_err(DbError::Sqlite)?;
    connection.set_prepared_statement_cache_capacity(statements);
    Ok(connection)
}

/// Runs `statement` on `connection` (prepared once and cached by its text, unless transient)
/// and appends its rows to `rows`; fails with [`DbError::CheckFailed`] when the statement
/// must change one row and did not.
pub(crate) fn run_statement(
    connection: &rusqlite::Connection,
    statement: &Statement,
    rows: &mut Vec<Row>,
) -> DbResult<()> {
    let ran = if statement.is_transient() {
        let mut prepared = connection.prepare(statement.sql()).map_err(DbError::Sqlite)?;
        step(&mut prepared, statement.args(), rows)
    } else {
        let mut prepared = connection.prepare_cached(statement.sql()).map_err(DbError::Sqlite)?;
        step(&mut prepared, statement.args(), rows)
    };
    ran.map_err(DbError::Sqlite)?;
    if statement.must_change_one_row() && connection.changes() != 1 {
        return Err(DbError::CheckFailed);
    }
    Ok(())
}

fn step(prepared: &mut rusqlite::Statement<'_>, args: &[Arg], rows: &mut Vec<Row>) -> rusqlite::Result<()> {
    bind(prepared, args)?;
    let count = prepared.column_count();
    let columns = Columns::new(prepared.column_names().into_iter().map(str::to_string));
    let mut result = prepared.raw_query();
    while let Some(row) = result.next()? {
        let mut values = Vec::with_capacity(count);
        for ordinal in 0..count {
            values.push(value(row.get_ref(ordinal)?, ordinal)?);
        }
        rows.push(Row::new(columns.clone(), values));
    }
    Ok(())
}

/// Binds `$n` parameters to `args[n - 1]` (SQLite sees `$n` as a named parameter).
fn bind(prepared: &mut rusqlite::Statement<'_>, args: &[Arg]) -> rusqlite::Result<()> {
    for i in 1..=prepared.parameter_count() {
        let arg = prepared
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.wrapping_sub(1)))
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(prepared.parameter_name(i).unwrap_or("?").into()))?;
        match arg {
            Arg::Int(v) => prepared.raw_bind_parameter(i, v)?,
            Arg::Text(v) => prepared.raw_bind_parameter(i, v.as_deref())?,
            Arg::Real(v) => prepared.raw_bind_parameter(i, v)?,
            Arg::Bool(v) => prepared.raw_bind_parameter(i, v)?,
            Arg::Blob(v) => prepared.raw_bind_parameter(i, v.as_deref())?,
        }
    }
    Ok(())
}

/// A value by its stored type.
fn value(value: ValueRef<'_>, ordinal: usize) -> rusqlite::Result<Value> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Real(v) => Value::Real(v),
        ValueRef::Text(bytes) => Value::Text(
            std::str::from_utf8(bytes)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(ordinal, rusqlite::types::Type::Text, e.into()))?
                .to_string(),
        ),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    })
}
