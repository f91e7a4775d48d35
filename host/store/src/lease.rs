//! The lease queue: rows of work (robot runs, process advances, webhook deliveries) that a
//! host claims for a while, works, and releases. A claim takes the rows that are due and those
//! whose lease ran out (their host stopped); PostgreSQL hosts pass over rows another host is
//! claiming. Each table says once what its rows look like ([`LeaseQueue`]); claiming, renewing,
//! ending leases and the next due time are written here, for all of them.
//!
//! A queue's conditions may name the row `q` (claims and the due time read the table under
//! that name) and write the current time as `{now}`; `held` names no row, as an `UPDATE`
//! reads it too.

use crate::{Dialect, Reader, Row, Statement, StoreResult, Tx};
use voronka_model::time::Micros;

/// A table worked under leases: its rows have `id` and `lease_until` (microseconds) columns.
#[derive(Debug, Clone, Copy)]
pub struct LeaseQueue {
    /// Name of the table, e.g. `jobs`.
    pub table: &'static str,
    /// A row waiting for its time.
    pub waiting: &'static str,
    /// When a waiting row is due.
    pub due: &'static str,
    /// The order waiting rows are claimed in.
    pub order: &'static str,
    /// A row being worked, under a lease; one whose lease ran out is taken over.
    pub held: &'static str,
    /// What a held row whose lease ran out must also satisfy to be taken over (`1 = 1`: none).
    pub takeover: &'static str,
    /// What a claim sets besides the lease (`, status = 'running'`...), or nothing.
    pub on_claim: &'static str,
}

impl LeaseQueue {
    /// The statement claiming up to `limit` due rows and up to `limit` held ones whose lease ran
    /// out, leasing them until `until` and answering `returning` of each. Each part walks its
    /// index in order and stops at `limit`, however long the queue.
    pub fn claim_statement(
        &self,
        dialect: Dialect,
        now: Micros,
        until: Micros,
        limit: i64,
        returning: &str,
    ) -> Statement {
        let LeaseQueue { table, waiting, due, order, held, takeover, on_claim } = *self;
        let lock = dialect.skip_locked();
        let sql = format!(
            "UPDATE {table} SET lease_until = $1{on_claim}
             WHERE id IN (
                 SELECT q.id FROM {table} q WHERE {waiting} AND {due} <= {{now}} ORDER BY {order}
                 LIMIT CAST($3 AS BIGINT) {lock})
                OR id IN (
                 SELECT q.id FROM {table} q WHERE {held} AND q.lease_until < {{now}} AND {takeover} ORDER BY q.id
                 LIMIT CAST($3 AS BIGINT) {lock})
             RETURNING {returning}"
        );
        Statement::new(sql.replace("{now}", "$2")).bind(until).bind(now).bind(limit)
    }

    /// Claims as [`LeaseQueue::claim_statement`] does, in `tx`; answers the claimed rows by id.
    pub async fn claim(
        &self,
        tx: &mut Tx,
        now: Micros,
        until: Micros,
        limit: i64,
        returning: &str,
    ) -> StoreResult<Vec<Row>> {
        let statement = self.claim_statement(tx.dialect(), now, until, limit, returning);
        Ok(by_id(tx.write_returning(statement).await?))
    }

    /// Claims in a transaction of its own and commits it with the claim; answers the claimed
    /// rows by id.
    pub async fn claim_and_commit(
        &self,
        tx: Tx,
        now: Micros,
        until: Micros,
        limit: i64,
        returning: &str,
    ) -> StoreResult<Vec<Row>> {
        let statement = self.claim_statement(tx.dialect(), now, until, limit, returning);
        Ok(by_id(tx.commit_returning(statement).await?))
    }

    /// Extends to `until` the lease of the claimed rows (`(id, attempts)`: a claim is known by
    /// its attempt, as finishing it checks) still held under that claim, and commits; returns
    /// how many it extended. Rows finished, put back or taken over meanwhile are left alone.
    pub async fn renew(&self, tx: Tx, claimed: &[(i64, i64)], until: Micros) -> StoreResult<usize> {
        if claimed.is_empty() {
            return Ok(0);
        }
        let ids = claimed.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>().join(",");
        let attempts = claimed.iter().map(|(id, n)| format!("(id = {id} AND attempts = {n})")).collect::<Vec<_>>();
        let sql = format!(
            "UPDATE {} SET lease_until = $1 WHERE {} AND id IN ({ids}) AND ({}) RETURNING id",
            self.table,
            self.held,
            attempts.join(" OR ")
        );
        let rows = tx.commit_returning(Statement::new(sql).bind(until).transient()).await?;
        Ok(rows.len())
    }

    /// Ends every lease, so the rows are taken over at once; returns how many. For a host that
    /// is its database's only one (SQLite) as it starts: a row still held was being worked when
    /// the host's last stop cut the work short, and none of that work was stored.
    pub async fn end_leases(&self, tx: &mut Tx) -> StoreResult<usize> {
        let sql =
            format!("UPDATE {} SET lease_until = 0 WHERE {} AND lease_until > 0 RETURNING id", self.table, self.held);
        Ok(tx.write_returning(Statement::new(sql)).await?.len())
    }

    /// How many rows are being worked or are due at `now`: none when the queue is settled.
    pub async fn busy(&self, reader: &Reader, now: Micros) -> StoreResult<i64> {
        let LeaseQueue { table, waiting, due, held, .. } = *self;
        let sql = format!("SELECT COUNT(*) FROM {table} q WHERE ({held}) OR (({waiting}) AND {due} <= {{now}})");
        Ok(reader.scalar(Statement::new(sql.replace("{now}", "$1")).bind(now)).await?)
    }

    /// The earliest time a row needs a worker: when a waiting row is due, or when a held row's
    /// lease runs out (or, once it has, when it is due), to sleep until then.
    pub async fn next_due(&self, reader: &Reader, now: Micros) -> StoreResult<Option<Micros>> {
        let LeaseQueue { table, waiting, due, held, .. } = *self;
        let sql = format!(
            "SELECT MIN(CASE WHEN q.lease_until > {{now}} THEN q.lease_until ELSE {due} END) FROM {table} q
             WHERE ({waiting}) OR ({held})"
        );
        Ok(reader.scalar(Statement::new(sql.replace("{now}", "$1")).bind(now)).await?)
    }
}

/// Claimed rows in order of id (a row without one, which the claim statements never answer,
/// last).
fn by_id(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_cached_key(|row| row.get::<i64>("id").unwrap_or(i64::MAX));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue over a table of its own: rows wait until `due_at`, are held while `busy`.
    const QUEUE: LeaseQueue = LeaseQueue {
        table: "work",
        waiting: "q.busy = 0",
        due: "q.due_at",
        order: "q.due_at, q.id",
        held: "busy = 1",
        takeover: "1 = 1",
        on_claim: ", busy = 1, attempts = attempts + 1",
    };

    async fn queue() -> (tempfile::TempDir, crate::Store) {
        let (dir, store) = crate::scratch().await;
        let mut tx = store.begin();
        tx.execute(Statement::new(
            "CREATE TABLE work (id INTEGER PRIMARY KEY, due_at BIGINT NOT NULL, busy INTEGER NOT NULL DEFAULT 0,
                 attempts INTEGER NOT NULL DEFAULT 0, lease_until BIGINT)",
        ))
        .await
        .expect("create");
        for (id, due) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            tx.defer(Statement::new("INSERT INTO work (id, due_at) VALUES ($1, $2)").bind(id).bind(due));
        }
        tx.commit().await.expect("commit");
        (dir, store)
    }

    fn ids(rows: Vec<Row>) -> Vec<i64> {
        rows.iter().map(|row| row.get("id").expect("id")).collect()
    }

    #[tokio::test]
    async fn claims_take_due_rows_in_order_then_rows_whose_lease_ran_out() {
        let (_dir, store) = queue().await;
        let claim = |now, until, limit| QUEUE.claim_and_commit(store.begin(), now, until, limit, "id, attempts");
        assert_eq!(QUEUE.busy(store.reader(), 25).await.expect("busy"), 2, "rows 1 and 2 are due");
        assert_eq!(ids(claim(25, 100, 10).await.expect("claim")), [1, 2], "only rows due by 25");
        assert_eq!(QUEUE.busy(store.reader(), 25).await.expect("busy"), 2, "and now held");
        assert_eq!(QUEUE.busy(store.reader(), 5).await.expect("busy"), 2, "held rows are busy whatever the time");
        assert_eq!(ids(claim(35, 100, 1).await.expect("claim")), [3], "at most the limit, earliest first");
        assert_eq!(QUEUE.next_due(store.reader(), 35).await.expect("due"), Some(40), "row 4 is next");
        assert_eq!(ids(claim(50, 200, 10).await.expect("claim")), [4]);
        assert_eq!(QUEUE.next_due(store.reader(), 50).await.expect("due"), Some(100), "a lease runs out at 100");
        // Rows 1 to 3 held until 100: nothing to take over before, all of them after.
        assert!(claim(99, 300, 10).await.expect("claim").is_empty());
        let taken = claim(101, 300, 10).await.expect("claim");
        let attempts: Vec<i64> = taken.iter().map(|row| row.get("attempts").expect("attempts")).collect();
        assert_eq!((ids(taken), attempts), (vec![1, 2, 3], vec![2, 2, 2]), "a takeover is a new attempt");
        store.close().await;
    }

    #[tokio::test]
    async fn renewal_keeps_only_its_own_attempt_and_ended_leases_are_taken_over_at_once() {
        let (_dir, store) = queue().await;
        let claimed = QUEUE.claim_and_commit(store.begin(), 25, 100, 10, "id, attempts").await.expect("claim");
        assert_eq!(claimed.len(), 2);
        // Row 1's claim is renewed; row 2 is named with another attempt, as a claim taken over.
        let renewed = QUEUE.renew(store.begin(), &[(1, 1), (2, 7)], 500).await.expect("renew");
        assert_eq!(renewed, 1);
        let taken = QUEUE.claim_and_commit(store.begin(), 200, 600, 10, "id").await.expect("claim");
        assert_eq!(ids(taken), [2, 3, 4], "row 2's lease ran out, row 1's was renewed");
        let mut tx = store.begin();
        assert_eq!(QUEUE.end_leases(&mut tx).await.expect("end"), 4);
        tx.commit().await.expect("commit");
        let taken = QUEUE.claim_and_commit(store.begin(), 201, 700, 10, "id").await.expect("claim");
        assert_eq!(ids(taken), [1, 2, 3, 4], "ended leases are taken over before they would run out");
        store.close().await;
    }
}
