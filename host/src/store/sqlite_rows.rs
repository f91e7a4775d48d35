//! Statements run on a rusqlite connection, their rows answered as sqlx [`AnyRow`]s, so the
//! repositories read a row of the SQLite write connection or of a read connection
//! (`read_connections`) as they read one of a sqlx pool. The rows are built from the fields
//! sqlx marks semver-exempt, which is why `sqlx-core` is pinned to one version.

use std::path::Path;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use sqlx::any::AnyRow;
use sqlx_core::any::{AnyColumn, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind};
use sqlx_core::ext::ustr::UStr;

use super::tx::{Arg, Statement};
use super::{StoreError, StoreResult};

/// Opens a connection of the store's own to `file` with `flags`, applies `pragmas`, and keeps
/// up to `statements` prepared statements.
pub(super) fn open(
    file: &Path,
    flags: rusqlite::OpenFlags,
    pragmas: &str,
    statements: usize,
) -> StoreResult<rusqlite::Connection> {
    let connection = rusqlite::Connection::open_with_flags(file, flags).map_err(StoreError::Sqlite)?;
    connection.execute_batch(pragmas).map_err(StoreError::Sqlite)?;
    connection.set_prepared_statement_cache_capacity(statements);
    Ok(connection)
}

/// Runs `statement` on `connection` (prepared once and cached by its text, unless transient)
/// and appends its rows to `rows`; fails with [`StoreError::CheckFailed`] when the statement
/// must change one row and did not.
pub(super) fn run_statement(
    connection: &rusqlite::Connection,
    statement: &Statement,
    rows: &mut Vec<AnyRow>,
) -> StoreResult<()> {
    let ran = if statement.is_transient() {
        let mut prepared = connection.prepare(statement.sql()).map_err(StoreError::Sqlite)?;
        step(&mut prepared, statement.args(), rows)
    } else {
        let mut prepared = connection.prepare_cached(statement.sql()).map_err(StoreError::Sqlite)?;
        step(&mut prepared, statement.args(), rows)
    };
    ran.map_err(StoreError::Sqlite)?;
    if statement.must_change_one_row() && connection.changes() != 1 {
        return Err(StoreError::CheckFailed);
    }
    Ok(())
}

fn step(prepared: &mut rusqlite::Statement<'_>, args: &[Arg], rows: &mut Vec<AnyRow>) -> rusqlite::Result<()> {
    bind(prepared, args)?;
    let names: Vec<UStr> = prepared.column_names().into_iter().map(|name| UStr::from(name.to_string())).collect();
    let index: Arc<sqlx_core::HashMap<UStr, usize>> =
        Arc::new(names.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect());
    let mut result = prepared.raw_query();
    while let Some(row) = result.next()? {
        let mut columns = Vec::with_capacity(names.len());
        let mut values = Vec::with_capacity(names.len());
        for (ordinal, name) in names.iter().enumerate() {
            let kind = any_value(row.get_ref(ordinal)?, ordinal)?;
            let type_info = AnyTypeInfo { kind: type_kind(&kind) };
            columns.push(AnyColumn { ordinal, name: name.clone(), type_info });
            values.push(AnyValue { kind });
        }
        rows.push(AnyRow { column_names: index.clone(), columns, values });
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
            Arg::Bool(v) => prepared.raw_bind_parameter(i, v)?,
            Arg::Blob(v) => prepared.raw_bind_parameter(i, v.as_deref())?,
        }
    }
    Ok(())
}

/// A value as sqlx's SQLite driver hands it to the `Any` driver: by its stored type.
fn any_value(value: ValueRef<'_>, ordinal: usize) -> rusqlite::Result<AnyValueKind> {
    Ok(match value {
        ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
        ValueRef::Integer(v) => AnyValueKind::BigInt(v),
        ValueRef::Real(v) => AnyValueKind::Double(v),
        ValueRef::Text(bytes) => AnyValueKind::Text(Arc::new(
            std::str::from_utf8(bytes)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(ordinal, rusqlite::types::Type::Text, e.into()))?
                .to_string(),
        )),
        ValueRef::Blob(bytes) => AnyValueKind::Blob(Arc::new(bytes.to_vec())),
    })
}

fn type_kind(value: &AnyValueKind) -> AnyTypeInfoKind {
    match value {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}
