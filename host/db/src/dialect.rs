//! The database products and the few places where their SQL differs, kept here so the
//! repositories write SQL once.

/// The database product behind a [`crate::Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (one host).
    Sqlite,
    /// PostgreSQL (one or more hosts).
    Postgres,
}

/// How a value read out of a JSON column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonCast {
    /// As stored: text, or SQLite's own reading of a JSON number or boolean.
    Plain,
    /// As a floating-point number.
    Real,
    /// As an integer (ids).
    BigInt,
}

impl Dialect {
    /// What ends a `SELECT` of rows a worker claims: PostgreSQL locks them and passes over the
    /// rows other hosts hold; SQLite has one writer, which needs neither.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// What ends a `SELECT` of rows the transaction will change depending on what it read:
    /// PostgreSQL locks them until commit; SQLite's single writer needs no lock.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE",
        }
    }

    /// What ends a `SELECT` joining `table` to others, to lock only `table`'s rows (PostgreSQL
    /// refuses to lock the nullable side of an outer join).
    pub fn for_update_of(self, table: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!("FOR UPDATE OF {table}"),
        }
    }

    /// The case-insensitive `LIKE` (SQLite's `LIKE` ignores ASCII case already).
    pub fn like_any_case(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// `expr` (text holding a decimal) as a floating-point number.
    pub fn cast_real(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({expr} AS REAL)"),
            Dialect::Postgres => format!("{expr}::double precision"),
        }
    }

    /// A condition true when the JSON array under `key` of the JSON text column `column` holds
    /// an element whose text equals the next bound value (`?`).
    pub fn json_array_has_text(self, column: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each({column}, '$.\"{key}\"') WHERE CAST(value AS TEXT) = ?)")
            }
            Dialect::Postgres => {
                format!("EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}::jsonb -> '{key}') e WHERE e = ?)")
            }
        }
    }

    /// Whether a JSON boolean read by [`Dialect::json_value`] is the text `true`/`false`
    /// (PostgreSQL's `->>`) rather than the integer 1/0 (SQLite's `json_extract`).
    pub fn json_bool_is_text(self) -> bool {
        self == Dialect::Postgres
    }

    /// The SQL reading `path` (object keys, outermost first; keys are checked identifiers, never
    /// user text) out of the JSON text column `column`, compared as `cast`.
    pub fn json_value(self, column: &str, path: &[&str], cast: JsonCast) -> String {
        match self {
            Dialect::Sqlite => {
                let path: String = path.iter().map(|key| format!(".\"{key}\"")).collect();
                let read = format!("json_extract({column}, '${path}')");
                match cast {
                    JsonCast::Real => format!("CAST({read} AS REAL)"),
                    JsonCast::Plain | JsonCast::BigInt => read,
                }
            }
            Dialect::Postgres => {
                let (last, outer) = path.split_last().map(|(last, outer)| (*last, outer)).unwrap_or(("", &[]));
                let outer: String = outer.iter().map(|key| format!(" -> '{key}'")).collect();
                let read = format!("({column}::jsonb{outer} ->> '{last}')");
                match cast {
                    JsonCast::Plain => read,
                    JsonCast::Real => format!("{read}::double precision"),
                    JsonCast::BigInt => format!("{read}::bigint"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_read_the_same_path_in_both_dialects() {
        assert_eq!(
            Dialect::Sqlite.json_value("fields", &["budget"], JsonCast::Real),
            "CAST(json_extract(fields, '$.\"budget\"') AS REAL)"
        );
        assert_eq!(
            Dialect::Sqlite.json_value("fields", &["price", "value"], JsonCast::Plain),
            "json_extract(fields, '$.\"price\".\"value\"')"
        );
        assert_eq!(
            Dialect::Postgres.json_value("fields", &["price", "value"], JsonCast::Real),
            "(fields::jsonb -> 'price' ->> 'value')::double precision"
        );
        assert_eq!(
            Dialect::Postgres.json_value("fields", &["owner"], JsonCast::BigInt),
            "(fields::jsonb ->> 'owner')::bigint"
        );
    }
}
