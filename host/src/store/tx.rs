//! Write transactions: the one path every state change takes.
//!
//! A [`Tx`] is either a pooled PostgreSQL transaction or a member of the SQLite write group
//! (see [`super::group_commit`]), where many concurrent use cases share one database
//! transaction, each in its own savepoint, and one commit.
//!
//! Statements that return nothing a use case needs (history, timeline, outbox rows) are
//! *deferred*: queued on the transaction and sent with its next statement or at commit. On
//! SQLite the queue and that statement travel to the write thread as one request, so a create
//! or a move costs one or two hand-overs to it instead of five or six; PostgreSQL gets them
//! one by one.

use std::borrow::Cow;

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Row};

use super::group_commit::{Member, WriteGroup};
use super::{Dialect, StoreError, StoreResult};
use voronka_model::item::Item;

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// A 64-bit integer or NULL.
    Int(Option<i64>),
    /// Text or NULL.
    Text(Option<String>),
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

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(Some(v))
    }
}

/// One SQL statement with `$1..$n` placeholders and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// Not kept among a connection's prepared statements (its text changes with its values).
    transient: bool,
    /// Fails with [`StoreError::CheckFailed`] unless it changes exactly one row.
    changing_one_row: bool,
}

impl Statement {
    /// A statement without arguments yet.
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Statement {
        Statement { sql: sql.into(), args: Vec::new(), transient: false, changing_one_row: false }
    }

    /// Adds the next argument.
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Statement {
        self.args.push(value.into());
        self
    }

    /// Marks the statement as not worth keeping prepared: its text carries values (an id
    /// list), so it is seldom run twice.
    pub(crate) fn transient(mut self) -> Statement {
        self.transient = true;
        self
    }

    /// Makes the statement a check (SQLite write thread only): it fails with
    /// [`StoreError::CheckFailed`] unless it changes exactly one row, so a version-checked
    /// write can be queued without waiting for an answer.
    pub(super) fn changing_one_row(mut self) -> Statement {
        self.changing_one_row = true;
        self
    }

    /// See [`Statement::changing_one_row`].
    pub(super) fn must_change_one_row(&self) -> bool {
        self.changing_one_row
    }

    /// The text.
    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    /// The arguments, `$1` first.
    pub(super) fn args(&self) -> &[Arg] {
        &self.args
    }

    /// See [`Statement::transient`].
    pub(super) fn is_transient(&self) -> bool {
        self.transient
    }

    /// The same statement answering one row per row it changes (`RETURNING 1`).
    fn returning_one(mut self) -> Statement {
        self.sql = format!("{} RETURNING 1", self.sql).into();
        self
    }

    /// The statement as an sqlx query.
    fn into_query(self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.into_owned())).persistent(!self.transient);
        for arg in self.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Blob(v) => query.bind(v),
            };
        }
        query
    }
}

/// What repositories read rows through: a connection of a pool, or a write transaction (which
/// sees its own writes).
pub(crate) trait Fetch: Send {
    /// Runs a query that only reads and returns its rows.
    fn fetch(&mut self, statement: Statement) -> impl Future<Output = StoreResult<Vec<AnyRow>>> + Send;
}

impl Fetch for AnyConnection {
    async fn fetch(&mut self, statement: Statement) -> StoreResult<Vec<AnyRow>> {
        Ok(statement.into_query().fetch_all(self).await?)
    }
}

impl Fetch for sqlx::pool::PoolConnection<Any> {
    async fn fetch(&mut self, statement: Statement) -> StoreResult<Vec<AnyRow>> {
        Ok(statement.into_query().fetch_all(&mut **self).await?)
    }
}

impl Fetch for Tx {
    async fn fetch(&mut self, statement: Statement) -> StoreResult<Vec<AnyRow>> {
        self.fetch_all(statement).await
    }
}

/// Opens the nested savepoint of [`Tx::write_checked`].
const ATTEMPT: &str = "SAVEPOINT attempt";
/// Undoes a checked write whose condition failed, with what came with it.
const UNDO_ATTEMPT: [&str; 2] = ["ROLLBACK TO attempt", "RELEASE attempt"];

/// Where the transaction's statements go once it has its turn.
enum Inner {
    /// PostgreSQL: a transaction on a pooled connection, begun at the first statement.
    Pooled { pool: AnyPool, tx: Option<sqlx::Transaction<'static, Any>> },
    /// SQLite: a member of the write group, which joins at the first statement.
    Grouped { group: Arc<WriteGroup>, member: Option<Member> },
}

/// A write transaction. Every state change runs in one, together with its history and its
/// outbox events; dropping it without [`Tx::commit`] undoes everything it wrote.
///
/// It takes its turn on the database (a pooled connection, or the SQLite write connection) at
/// its first statement, so a use case can read and validate from the read pool before that and
/// hold the writer only for its writes.
pub struct Tx {
    inner: Inner,
    deferred: Vec<Statement>,
    /// Items as this transaction sees them, lent by its caller (see [`Tx::lend`]).
    lent: Vec<Item>,
}

impl Tx {
    pub(super) fn pooled(pool: AnyPool) -> Tx {
        Tx { inner: Inner::Pooled { pool, tx: None }, deferred: Vec::new(), lent: Vec::new() }
    }

    pub(super) fn grouped(group: Arc<WriteGroup>) -> Tx {
        Tx { inner: Inner::Grouped { group, member: None }, deferred: Vec::new(), lent: Vec::new() }
    }

    /// The database product.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Pooled { .. } => Dialect::Postgres,
            Inner::Grouped { .. } => Dialect::Sqlite,
        }
    }

    /// True until the transaction has sent or queued a statement: what it reads from the read
    /// pool now is what its first write will find, unless another writer changes it first
    /// (writes that depend on a read check a version).
    pub(crate) fn is_fresh(&self) -> bool {
        self.deferred.is_empty()
            && match &self.inner {
                Inner::Pooled { tx, .. } => tx.is_none(),
                Inner::Grouped { member, .. } => member.is_none(),
            }
    }

    /// Lends the transaction an item as its caller knows it: read just before (a robot's run
    /// reads its item once and acts on that copy) or as a write of this transaction left it.
    /// Reading the item in this transaction then takes this copy instead of a request.
    /// That is safe because every write of an item checks the version it was read at: a copy
    /// older than the row fails the write, and the use case runs again on a fresh read.
    /// Writes of the item through [`super::items`] forget the copy first.
    pub(crate) fn lend(&mut self, item: Item) {
        self.forget(item.id);
        self.lent.push(item);
    }

    /// The lent copy of an item, if any.
    pub(crate) fn lent(&self, type_key: &str, id: i64) -> Option<&Item> {
        self.lent.iter().find(|item| item.id == id && item.type_key == type_key)
    }

    /// Drops the lent copy of an item (it is being written), and those of its children (a
    /// deleted item takes its links along).
    pub(crate) fn forget(&mut self, id: i64) {
        self.lent.retain(|item| item.id != id && !item.parents.iter().any(|parent| parent.id == id));
    }

    /// Whether the transaction holds its turn on the database (a pooled connection, or a place
    /// in the SQLite write group's batch, which waits for it): then it should not wait for
    /// anything slow before it commits.
    pub(crate) fn holds_turn(&self) -> bool {
        match &self.inner {
            Inner::Pooled { tx, .. } => tx.is_some(),
            Inner::Grouped { member, .. } => member.is_some(),
        }
    }

    /// Queues a statement whose result nobody needs; it runs before the next statement of this
    /// transaction or at commit, and its failure fails that statement or the commit.
    pub(crate) fn defer(&mut self, statement: Statement) {
        self.deferred.push(statement);
    }

    /// Takes the turn now, so every later read sees what this transaction will write over
    /// (used when a change that read outside the turn found its item changed).
    pub(crate) async fn hold_turn(&mut self) -> StoreResult<()> {
        self.take_turn().await
    }

    /// Takes this transaction's turn on the database if it has none yet.
    async fn take_turn(&mut self) -> StoreResult<()> {
        match &mut self.inner {
            Inner::Pooled { pool, tx } if tx.is_none() => *tx = Some(pool.begin().await?),
            Inner::Grouped { group, member } if member.is_none() => *member = Some(group.begin().await?),
            _ => {}
        }
        Ok(())
    }

    /// A new id for a row of `items`, handed out in commit order: on SQLite by the write
    /// connection's counter, on PostgreSQL by the sequence under the id-order lock.
    pub(crate) async fn allocate_item_id(&mut self) -> StoreResult<i64> {
        self.take_turn().await?;
        match &mut self.inner {
            Inner::Grouped { member: Some(member), .. } => member.allocate_item_id().await,
            _ => {
                super::lock_id_order(self).await?;
                let select = Statement::new("SELECT nextval(pg_get_serial_sequence('items', 'id'))");
                match self.fetch_optional(select).await? {
                    Some(row) => Ok(row.try_get(0)?),
                    None => {
                        Err(super::StoreError::Corrupt { table: "items", message: "no id from the sequence".into() })
                    }
                }
            }
        }
    }

    /// Runs the deferred statements and `last` (if any) in one request to the SQLite write
    /// thread, one by one on PostgreSQL. Returns the rows of `last` (on SQLite, of every
    /// statement sent: deferred ones return none). (Rows, not counts: a write that must know
    /// what it changed says `RETURNING`, on both databases.) On SQLite the member's savepoint
    /// is opened first, whatever `last` is, so a read that writes (`INSERT .. RETURNING` sent
    /// as a fetch) is undone with the member too.
    async fn run(&mut self, last: Option<Statement>) -> StoreResult<Vec<AnyRow>> {
        if last.is_none() && self.deferred.is_empty() {
            return Ok(Vec::new());
        }
        self.take_turn().await?;
        let deferred = std::mem::take(&mut self.deferred);
        match &mut self.inner {
            Inner::Pooled { tx: Some(tx), .. } => {
                for statement in deferred {
                    statement.into_query().execute(&mut **tx).await?;
                }
                match last {
                    Some(last) => Ok(last.into_query().fetch_all(&mut **tx).await?),
                    None => Ok(Vec::new()),
                }
            }
            Inner::Grouped { member: Some(member), .. } => {
                member.run(deferred.into_iter().chain(last).collect(), true).await
            }
            _ => Err(super::StoreError::Closed),
        }
    }

    /// Runs a write statement that returns rows (`RETURNING`).
    pub(crate) async fn write_returning(&mut self, statement: Statement) -> StoreResult<Vec<AnyRow>> {
        self.run(Some(statement)).await
    }

    /// Runs `checked`, a write (without `RETURNING`) that changes one row while its condition
    /// (typically a version) holds and none otherwise, and then `then`, the statements that
    /// belong with it. On SQLite all of it travels in one request, `then` inside a nested
    /// savepoint that is rolled back when `checked` returned nothing; on PostgreSQL `then` is
    /// deferred once `checked` has returned a row. Returns whether `checked` returned a row.
    ///
    /// On SQLite, before the transaction has taken its turn, nothing is sent: `checked` is
    /// queued as a check ([`Statement::changing_one_row`]), the answer is `true`, and a failed
    /// check surfaces later as [`StoreError::CheckFailed`] (from a later statement or the
    /// commit), after which the whole use case should run again.
    pub(crate) async fn write_checked(&mut self, checked: Statement, then: Vec<Statement>) -> StoreResult<bool> {
        if let Inner::Grouped { member: None, .. } = self.inner {
            self.deferred.push(checked.changing_one_row());
            self.deferred.extend(then);
            return Ok(true);
        }
        let checked = checked.returning_one();
        if matches!(self.inner, Inner::Pooled { .. }) || then.is_empty() {
            let applied = !self.write_returning(checked).await?.is_empty();
            if applied {
                self.deferred.extend(then);
            }
            return Ok(applied);
        }
        self.take_turn().await?;
        let mut statements = std::mem::take(&mut self.deferred);
        let Inner::Grouped { member: Some(member), .. } = &mut self.inner else {
            return Err(super::StoreError::Closed);
        };
        statements.push(Statement::new(ATTEMPT));
        statements.push(checked);
        statements.extend(then);
        let applied = !member.run(statements, true).await?.is_empty();
        if !applied {
            member.run(UNDO_ATTEMPT.into_iter().map(Statement::new).collect(), false).await?;
        }
        Ok(applied)
    }

    /// Runs a query that only reads, seeing this transaction's own writes.
    pub(crate) async fn fetch_all(&mut self, statement: Statement) -> StoreResult<Vec<AnyRow>> {
        self.run(Some(statement)).await
    }

    /// Runs a query that only reads and returns its first row, if any.
    pub(crate) async fn fetch_optional(&mut self, statement: Statement) -> StoreResult<Option<AnyRow>> {
        Ok(self.fetch_all(statement).await?.into_iter().next())
    }

    /// Runs a statement that returns one row (a read, or a write with `RETURNING`) and
    /// returns it; no row is an error.
    pub(crate) async fn fetch_one(&mut self, statement: Statement) -> StoreResult<AnyRow> {
        let rows = self.run(Some(statement)).await?;
        rows.into_iter().next().ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Runs a write now (not deferred), so its failure is this call's.
    pub(crate) async fn execute(&mut self, statement: Statement) -> StoreResult<()> {
        self.run(Some(statement)).await.map(drop)
    }

    /// Commits: runs the deferred statements, then commits (on SQLite: waits for the group's
    /// commit that includes this transaction). A transaction that never wrote has nothing to do.
    pub async fn commit(self) -> StoreResult<()> {
        self.commit_with(None).await.map(drop)
    }

    /// Runs `last` (a write with `RETURNING`) as the transaction's last statement, commits,
    /// and returns its rows. On SQLite a transaction that has not taken its turn does not take
    /// one: it waits for no other writer, and its statements run in the committer's next batch.
    pub(crate) async fn commit_returning(self, last: Statement) -> StoreResult<Vec<AnyRow>> {
        self.commit_with(Some(last)).await
    }

    async fn commit_with(mut self, last: Option<Statement>) -> StoreResult<Vec<AnyRow>> {
        if let Inner::Grouped { group, member: None } = &self.inner {
            // Never took a turn: what it queued runs as a program, without one.
            let statements: Vec<Statement> = std::mem::take(&mut self.deferred).into_iter().chain(last).collect();
            return if statements.is_empty() { Ok(Vec::new()) } else { group.submit(statements).await };
        }
        let rows = self.run(last).await?;
        match self.inner {
            Inner::Pooled { tx: Some(tx), .. } => tx.commit().await?,
            Inner::Grouped { member: Some(member), .. } => member.commit().await?,
            _ => {}
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use voronka_model::item::ItemRef;

    async fn scratch() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let mut tx = store.begin().await.expect("begin");
        tx.execute(Statement::new("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)")).await.expect("create");
        tx.commit().await.expect("commit");
        (dir, store)
    }

    async fn values(store: &Store) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(store.reader()).await.expect("select")
    }

    fn insert(x: i64) -> Statement {
        Statement::new("INSERT INTO t (x) VALUES ($1)").bind(x)
    }

    impl Statement {
        fn returning_x(mut self) -> Statement {
            self.sql = format!("{} RETURNING x", self.sql).into();
            self
        }
    }

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
        let (_dir, store) = scratch().await;
        let mut tx = store.begin().await.expect("begin");
        tx.lend(item(1, "deal", &[]));
        tx.lend(item(2, "production", &[1]));
        tx.lend(item(3, "production", &[]));
        assert_eq!(tx.lent("deal", 1).map(|i| i.title.as_str()), Some("item 1"));
        assert!(tx.lent("contact", 1).is_none(), "another type's id");
        let mut newer = item(1, "deal", &[]);
        newer.version = 2;
        tx.lend(newer);
        assert_eq!(tx.lent("deal", 1).map(|i| i.version), Some(2), "a new copy replaces the old");
        // Writing item 1 drops its copy and that of its child, whose links go with a delete.
        tx.forget(1);
        assert!(tx.lent("deal", 1).is_none() && tx.lent("production", 2).is_none());
        assert!(tx.lent("production", 3).is_some());
        assert!(!tx.holds_turn(), "lending sends nothing");
        drop(tx);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_member_leaves_the_rest_of_its_batch_intact() {
        let (_dir, store) = scratch().await;
        // The first writer holds the turn while the others queue, so all three share a batch.
        let mut first = store.begin().await.expect("begin");
        first.write_returning(insert(1)).await.expect("insert 1");
        let failing = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await?;
                tx.defer(insert(2));
                tx.write_returning(insert(1)).await?; // duplicate: fails after 2 went in
                tx.commit().await
            })
        };
        let third = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut tx = store.begin().await?;
                tx.defer(insert(3));
                tx.commit().await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        first.commit().await.expect("first commits");
        assert!(failing.await.expect("task").is_err(), "the duplicate fails");
        third.await.expect("task").expect("third commits");
        assert_eq!(values(&store).await, vec![1, 3]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checked_write_that_misses_undoes_only_what_came_with_it() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin().await.expect("begin");
        tx.hold_turn().await.expect("turn");
        tx.defer(insert(1));
        let missed = Statement::new("UPDATE t SET x = 5 WHERE x = 99");
        assert!(!tx.write_checked(missed, vec![insert(2)]).await.expect("checked write"));
        let hit = Statement::new("UPDATE t SET x = 10 WHERE x = 1");
        assert!(tx.write_checked(hit, vec![insert(4)]).await.expect("checked write"));
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![4, 10]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn programs_with_a_failed_check_or_statement_fail_alone() {
        let (_dir, store) = scratch().await;
        let mut setup = store.begin().await.expect("begin");
        setup.defer(insert(1));
        setup.commit().await.expect("commit");
        let submit = |checked: Option<&'static str>, then: Vec<Statement>| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await?;
                match checked {
                    Some(sql) => assert!(tx.write_checked(Statement::new(sql), then).await?),
                    None => then.into_iter().for_each(|s| tx.defer(s)),
                }
                tx.commit().await
            })
        };
        let missed = submit(Some("UPDATE t SET x = 5 WHERE x = 99"), vec![insert(2)]);
        let duplicate = submit(None, vec![insert(6), insert(6)]);
        let fine = submit(Some("UPDATE t SET x = 10 WHERE x = 1"), vec![insert(3)]);
        assert!(matches!(missed.await.expect("task"), Err(StoreError::CheckFailed)));
        assert!(matches!(duplicate.await.expect("task"), Err(StoreError::Sqlite(_))));
        fine.await.expect("task").expect("the good program commits");
        assert_eq!(values(&store).await, vec![3, 10]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_left_open_by_a_cancelled_begin_does_not_block_writes() {
        let (_dir, store) = scratch().await;
        let crate::store::Writes::Group(group) = &store.write else { panic!("SQLite uses the write group") };
        {
            // What a caller cancelled during `BEGIN` leaves: a transaction no batch owns.
            let writer = group.exclusive().await;
            writer.connection().expect("connection").execute("BEGIN").await.expect("begin");
        }
        let mut tx = store.begin().await.expect("begin");
        tx.write_returning(insert(1)).await.expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![1]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_returning_answers_its_rows_or_stores_nothing() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin().await.expect("begin");
        tx.defer(insert(1));
        let rows = tx.commit_returning(insert(2).returning_x()).await.expect("commit");
        let xs: Vec<i64> = rows.iter().map(|r| r.try_get(0).expect("x")).collect();
        assert_eq!(xs, [2], "the rows of the last statement");
        let mut tx = store.begin().await.expect("begin");
        tx.defer(insert(3));
        assert!(tx.commit_returning(insert(1).returning_x()).await.is_err(), "1 is taken");
        assert_eq!(values(&store).await, vec![1, 2], "the failed commit left nothing");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_sent_as_a_fetch_is_undone_with_its_transaction() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin().await.expect("begin");
        tx.fetch_optional(insert(1).returning_x()).await.expect("insert as a fetch");
        assert!(tx.execute(insert(1)).await.is_err(), "1 is taken");
        drop(tx);
        let mut tx = store.begin().await.expect("begin");
        tx.defer(insert(2));
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![2], "the dropped transaction's first write is gone too");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_transaction_writes_nothing() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin().await.expect("begin");
        tx.write_returning(insert(7)).await.expect("insert");
        drop(tx);
        let mut tx = store.begin().await.expect("begin");
        tx.defer(insert(8));
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![8]);
        store.close().await;
    }
}
