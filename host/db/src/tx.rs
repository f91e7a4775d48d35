//! Write transactions: the one path every state change takes.
//!
//! A [`Tx`] is either a pooled PostgreSQL transaction or a member of the SQLite write group
//! (see [`crate::sqlite::group_commit`]), where many concurrent use cases share one database
//! transaction, each in its own savepoint, and one commit.
//!
//! Statements that return nothing a use case needs (history, timeline, outbox rows) are
//! *deferred*: queued on the transaction and sent with its next statement or at commit. On
//! SQLite the queue and that statement travel to the write thread as one request, so a create
//! or a move costs one or two hand-overs to it instead of five or six; PostgreSQL gets them
//! one by one.

use std::any::{Any as AnyType, TypeId};
use std::sync::Arc;

use sqlx::{Any, AnyPool};

use crate::sqlite::group_commit::{Member, WriteGroup};
use crate::{DbError, DbResult, Dialect, Fetch, Row, Statement};

impl Fetch for Tx {
    async fn fetch(&mut self, statement: Statement) -> DbResult<Vec<Row>> {
        self.fetch_all(statement).await
    }
}

/// Opens the nested savepoint of [`Tx::write_checked`].
const ATTEMPT: &str = "SAVEPOINT attempt";
/// Undoes a checked write whose condition failed, with what came with it.
const UNDO_ATTEMPT: [&str; 2] = ["ROLLBACK TO attempt", "RELEASE attempt"];

/// The PostgreSQL advisory lock every write transaction takes at its first statement and holds
/// until it ends. Two things rest on it. Ids commit in order: identity values are handed out
/// before commit, and holding the lock until commit means keyset pagination and readers of the
/// event stream never skip a row that commits late. And writers never wait for each other in a
/// circle: as every writer takes this lock before any row lock, one that holds a row's lock
/// never waits for one that waits for that row (a change that locked an item and then recorded
/// its event, against a trigger that recorded a note and then changed the same item, once
/// ended in a deadlock). SQLite has a single writer already.
const WRITERS_LOCK: i64 = 7001;

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
    /// What the layers above keep with the transaction, one value per type (see
    /// [`Tx::extension`]).
    extensions: Vec<(TypeId, Box<dyn AnyType + Send>)>,
}

impl Tx {
    pub(crate) fn pooled(pool: AnyPool) -> Tx {
        Tx { inner: Inner::Pooled { pool, tx: None }, deferred: Vec::new(), extensions: Vec::new() }
    }

    pub(crate) fn grouped(group: Arc<WriteGroup>) -> Tx {
        Tx { inner: Inner::Grouped { group, member: None }, deferred: Vec::new(), extensions: Vec::new() }
    }

    /// The transaction's value of type `T`, made with `T::default()` at the first call: what a
    /// layer above keeps for the life of the transaction (the store keeps the items lent to
    /// it), without this crate knowing it.
    pub fn extension<T: Default + Send + 'static>(&mut self) -> &mut T {
        let id = TypeId::of::<T>();
        let position = match self.extensions.iter().position(|(t, _)| *t == id) {
            Some(position) => position,
            None => {
                self.extensions.push((id, Box::new(T::default())));
                self.extensions.len() - 1
            }
        };
        match self.extensions[position].1.downcast_mut::<T>() {
            Some(value) => value,
            None => unreachable!("extensions are stored under their own type id"),
        }
    }

    /// The transaction's value of type `T`, if a call of [`Tx::extension`] made one.
    pub fn extension_ref<T: 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.extensions.iter().find(|(t, _)| *t == id).and_then(|(_, value)| value.downcast_ref::<T>())
    }

    /// Which database the transaction runs on, for SQL that differs between them.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Pooled { .. } => Dialect::Postgres,
            Inner::Grouped { .. } => Dialect::Sqlite,
        }
    }

    /// True until the transaction has sent or queued a statement: what it reads from the read
    /// pool now is what its first write will find, unless another writer changes it first
    /// (writes that depend on a read check a version).
    pub fn is_fresh(&self) -> bool {
        self.deferred.is_empty()
            && match &self.inner {
                Inner::Pooled { tx, .. } => tx.is_none(),
                Inner::Grouped { member, .. } => member.is_none(),
            }
    }

    /// Whether the transaction holds its turn on the database (a pooled connection, or a place
    /// in the SQLite write group's batch, which waits for it): then it should not wait for
    /// anything slow before it commits.
    pub fn holds_turn(&self) -> bool {
        match &self.inner {
            Inner::Pooled { tx, .. } => tx.is_some(),
            Inner::Grouped { member, .. } => member.is_some(),
        }
    }

    /// Queues a statement whose result nobody needs; it runs before the next statement of this
    /// transaction or at commit, and its failure fails that statement or the commit.
    pub fn defer(&mut self, statement: Statement) {
        self.deferred.push(statement);
    }

    /// Takes the turn now, so every later read sees what this transaction will write over
    /// (used when a change that read outside the turn found its item changed).
    pub async fn hold_turn(&mut self) -> DbResult<()> {
        self.take_turn().await
    }

    /// Takes this transaction's turn on the database if it has none yet. On PostgreSQL the
    /// turn is a pooled transaction that first takes the writers' lock ([`WRITERS_LOCK`]).
    async fn take_turn(&mut self) -> DbResult<()> {
        match &mut self.inner {
            Inner::Pooled { pool, tx } if tx.is_none() => {
                let mut begun = pool.begin().await?;
                Statement::new("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITERS_LOCK)
                    .into_query()
                    .execute(&mut *begun)
                    .await?;
                *tx = Some(begun);
            }
            Inner::Grouped { group, member } if member.is_none() => *member = Some(group.begin().await?),
            _ => {}
        }
        Ok(())
    }

    /// A new id for a row of `table` (whose `id` column the database numbers), handed out in
    /// commit order: on SQLite by the write connection's counter of the table, on PostgreSQL
    /// by the table's sequence under the writers' lock the transaction holds.
    pub async fn allocate_id(&mut self, table: &'static str) -> DbResult<i64> {
        self.take_turn().await?;
        match &mut self.inner {
            Inner::Grouped { member: Some(member), .. } => member.allocate_id(table).await,
            _ => {
                let select = Statement::new(format!("SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"));
                self.fetch_one(select).await?.get(0)
            }
        }
    }

    /// Runs the deferred statements and `last` (if any) in one request to the SQLite write
    /// thread, one by one on PostgreSQL. Returns the rows of `last` (on SQLite, of every
    /// statement sent: deferred ones return none). (Rows, not counts: a write that must know
    /// what it changed says `RETURNING`, on both databases.) On SQLite the member's savepoint
    /// is opened first, whatever `last` is, so a read that writes (`INSERT .. RETURNING` sent
    /// as a fetch) is undone with the member too.
    async fn run(&mut self, last: Option<Statement>) -> DbResult<Vec<Row>> {
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
                    Some(last) => Row::all_from_any(&last.into_query().fetch_all(&mut **tx).await?),
                    None => Ok(Vec::new()),
                }
            }
            Inner::Grouped { member: Some(member), .. } => {
                member.run(deferred.into_iter().chain(last).collect(), true).await
            }
            _ => Err(DbError::Closed),
        }
    }

    /// Runs a write statement that returns rows (`RETURNING`).
    pub async fn write_returning(&mut self, statement: Statement) -> DbResult<Vec<Row>> {
        self.run(Some(statement)).await
    }

    /// Runs `checked`, a write (without `RETURNING`) that changes one row while its condition
    /// (typically a version) holds and none otherwise, and then `then`, the statements that
    /// belong with it. On SQLite all of it travels in one request, `then` inside a nested
    /// savepoint that is rolled back when `checked` returned nothing; on PostgreSQL `then` is
    /// deferred once `checked` has returned a row. Returns whether `checked` returned a row.
    ///
    /// On SQLite, before the transaction has taken its turn, nothing is sent: `checked` is
    /// queued as a check (it must change exactly one row), the answer is `true`, and a failed
    /// check surfaces later as [`DbError::CheckFailed`] (from a later statement or the
    /// commit), after which the whole use case should run again.
    pub async fn write_checked(&mut self, checked: Statement, then: Vec<Statement>) -> DbResult<bool> {
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
            return Err(DbError::Closed);
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
    pub async fn fetch_all(&mut self, statement: Statement) -> DbResult<Vec<Row>> {
        self.run(Some(statement)).await
    }

    /// Runs a query that only reads and returns its first row, if any.
    pub async fn fetch_optional(&mut self, statement: Statement) -> DbResult<Option<Row>> {
        Ok(self.fetch_all(statement).await?.into_iter().next())
    }

    /// Runs a statement that returns one row (a read, or a write with `RETURNING`) and
    /// returns it; no row is an error.
    pub async fn fetch_one(&mut self, statement: Statement) -> DbResult<Row> {
        let rows = self.run(Some(statement)).await?;
        rows.into_iter().next().ok_or(DbError::NoRow)
    }

    /// Runs a write now (not deferred), so its failure is this call's.
    pub async fn execute(&mut self, statement: Statement) -> DbResult<()> {
        self.run(Some(statement)).await.map(drop)
    }

    /// Commits: runs the deferred statements, then commits (on SQLite: waits for the group's
    /// commit that includes this transaction). A transaction that never wrote has nothing to do.
    pub async fn commit(self) -> DbResult<()> {
        self.commit_with(None).await.map(drop)
    }

    /// Runs `last` (a write with `RETURNING`) as the transaction's last statement, commits,
    /// and returns its rows. On SQLite a transaction that has not taken its turn does not take
    /// one: it waits for no other writer, and its statements run in the committer's next batch.
    pub async fn commit_returning(self, last: Statement) -> DbResult<Vec<Row>> {
        self.commit_with(Some(last)).await
    }

    async fn commit_with(mut self, last: Option<Statement>) -> DbResult<Vec<Row>> {
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
    use std::time::Duration;

    use super::*;
    use crate::Database;

    async fn scratch() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let database = Database::connect(&url).await.expect("connect");
        let mut tx = database.begin();
        tx.execute(Statement::new("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)")).await.expect("create");
        tx.commit().await.expect("commit");
        (dir, database)
    }

    async fn values(database: &Database) -> Vec<i64> {
        let rows = database.reader().fetch_all(Statement::new("SELECT x FROM t ORDER BY x")).await.expect("select");
        rows.iter().map(|row| row.get(0).expect("x")).collect()
    }

    fn insert(x: i64) -> Statement {
        Statement::new("INSERT INTO t (x) VALUES ($1)").bind(x)
    }

    trait ReturningX {
        fn returning_x(self) -> Statement;
    }

    impl ReturningX for Statement {
        fn returning_x(self) -> Statement {
            Statement::new(format!("{} RETURNING x", self.sql())).bind(self.args()[0].clone())
        }
    }

    #[derive(Default)]
    struct Notes(Vec<&'static str>);

    #[tokio::test]
    async fn extensions_live_with_the_transaction_and_send_nothing() {
        let (_dir, database) = scratch().await;
        let mut tx = database.begin();
        assert!(tx.extension_ref::<Notes>().is_none());
        tx.extension::<Notes>().0.push("first");
        tx.extension::<Notes>().0.push("second");
        *tx.extension::<u32>() += 3;
        assert_eq!(tx.extension_ref::<Notes>().map(|n| n.0.clone()), Some(vec!["first", "second"]));
        assert_eq!(tx.extension_ref::<u32>(), Some(&3));
        assert!(!tx.holds_turn() && tx.is_fresh(), "keeping values sends nothing");
        drop(tx);
        let mut tx = database.begin();
        assert!(tx.extension_ref::<Notes>().is_none(), "a new transaction starts without them");
        tx.defer(insert(1));
        tx.commit().await.expect("commit");
        database.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_member_leaves_the_rest_of_its_batch_intact() {
        let (_dir, store) = scratch().await;
        // The first writer holds the turn while the others queue, so all three share a batch.
        let mut first = store.begin();
        first.write_returning(insert(1)).await.expect("insert 1");
        let failing = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin();
                tx.defer(insert(2));
                tx.write_returning(insert(1)).await?; // duplicate: fails after 2 went in
                tx.commit().await
            })
        };
        let third = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut tx = store.begin();
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
        let mut tx = store.begin();
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
        let mut setup = store.begin();
        setup.defer(insert(1));
        setup.commit().await.expect("commit");
        let submit = |checked: Option<&'static str>, then: Vec<Statement>| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin();
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
        assert!(matches!(missed.await.expect("task"), Err(DbError::CheckFailed)));
        assert!(matches!(duplicate.await.expect("task"), Err(DbError::Sqlite(_))));
        fine.await.expect("task").expect("the good program commits");
        assert_eq!(values(&store).await, vec![3, 10]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_left_open_by_a_cancelled_begin_does_not_block_writes() {
        let (_dir, store) = scratch().await;
        let crate::Writes::Group(group) = &store.write else { panic!("SQLite uses the write group") };
        {
            // What a caller cancelled during `BEGIN` leaves: a transaction no batch owns.
            let writer = group.exclusive().await;
            writer.connection().expect("connection").execute("BEGIN").await.expect("begin");
        }
        let mut tx = store.begin();
        tx.write_returning(insert(1)).await.expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![1]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_returning_answers_its_rows_or_stores_nothing() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin();
        tx.defer(insert(1));
        let rows = tx.commit_returning(insert(2).returning_x()).await.expect("commit");
        let xs: Vec<i64> = rows.iter().map(|r| r.get(0).expect("x")).collect();
        assert_eq!(xs, [2], "the rows of the last statement");
        let mut tx = store.begin();
        tx.defer(insert(3));
        assert!(tx.commit_returning(insert(1).returning_x()).await.is_err(), "1 is taken");
        assert_eq!(values(&store).await, vec![1, 2], "the failed commit left nothing");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_sent_as_a_fetch_is_undone_with_its_transaction() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin();
        tx.fetch_optional(insert(1).returning_x()).await.expect("insert as a fetch");
        assert!(tx.execute(insert(1)).await.is_err(), "1 is taken");
        drop(tx);
        let mut tx = store.begin();
        tx.defer(insert(2));
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![2], "the dropped transaction's first write is gone too");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_transaction_writes_nothing() {
        let (_dir, store) = scratch().await;
        let mut tx = store.begin();
        tx.write_returning(insert(7)).await.expect("insert");
        drop(tx);
        let mut tx = store.begin();
        tx.defer(insert(8));
        tx.commit().await.expect("commit");
        assert_eq!(values(&store).await, vec![8]);
        store.close().await;
    }

    /// The PostgreSQL server of the tests, if one is given (VORONKA_TEST_POSTGRES_URL); a run
    /// that requires it (VORONKA_REQUIRE_POSTGRES=1, as in CI) fails without it.
    fn postgres_url() -> Option<String> {
        let url = std::env::var("VORONKA_TEST_POSTGRES_URL").ok();
        if url.is_none() && std::env::var("VORONKA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("VORONKA_TEST_POSTGRES_URL is not set but VORONKA_REQUIRE_POSTGRES=1");
        }
        url
    }

    /// One writer locks a row and then allocates an id (an item change recording its event);
    /// another allocates an id and then wants the same row (a trigger noting on the item's
    /// timeline, then changing it). Both must commit, one after the other, not deadlock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writers_never_wait_for_each_other_in_a_circle() {
        let Some(url) = postgres_url() else {
            eprintln!("skipping: VORONKA_TEST_POSTGRES_URL is not set");
            return;
        };
        let database = Database::connect(&url).await.expect("connect");
        let table = format!("circle_{}", std::process::id());
        let mut setup = database.begin();
        setup.execute(Statement::new(format!("DROP TABLE IF EXISTS {table}"))).await.expect("drop");
        setup
            .execute(Statement::new(format!("CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, x BIGINT NOT NULL)")))
            .await
            .expect("create");
        setup.execute(Statement::new(format!("INSERT INTO {table} (x) VALUES (0)"))).await.expect("row");
        setup.commit().await.expect("commit");
        let table: &'static str = Box::leak(table.into_boxed_str());
        let bump = move || Statement::new(format!("UPDATE {table} SET x = x + 1 WHERE id = 1"));

        let mut first = database.begin();
        first.execute(bump()).await.expect("first locks the row");
        let mut second = database.begin();
        let second = tokio::spawn(async move {
            second.allocate_id(table).await?;
            second.execute(bump()).await?;
            second.commit().await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.allocate_id(table).await.expect("first allocates an id");
        first.commit().await.expect("first commits");
        let second = tokio::time::timeout(Duration::from_secs(10), second).await.expect("second ends").expect("joins");
        second.expect("second commits");

        let x: i64 =
            database.reader().scalar(Statement::new(format!("SELECT x FROM {table} WHERE id = 1"))).await.expect("x");
        assert_eq!(x, 2, "both changes are stored");
        let mut cleanup = database.begin();
        cleanup.execute(Statement::new(format!("DROP TABLE {table}"))).await.expect("drop");
        cleanup.commit().await.expect("commit");
        database.close().await;
    }
}
