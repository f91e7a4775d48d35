//! Idempotency keys: the first response to a POST with an `Idempotency-Key` is kept and
//! replayed for repeats of the same key by the same user.

use crate::{Statement, Store, StoreError, StoreResult};
use voronka_model::time::now_micros;

/// What the store knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// First use: the key is now reserved for this request.
    Reserved,
    /// A request with this key is still running.
    InProgress {
        /// Fingerprint of the running request.
        fingerprint: String,
    },
    /// A response was recorded.
    Done {
        /// Fingerprint of the first request.
        fingerprint: String,
        /// HTTP status code of the recorded response.
        status: u16,
        /// Body of the recorded response, replayed as is.
        body: String,
    },
}

/// Reserves `key` for `user_id`, or reports what is already recorded.
pub async fn reserve(store: &Store, user_id: i64, key: &str, fingerprint: &str) -> StoreResult<KeyState> {
    let mut tx = store.begin();
    let inserted = tx
        .write_returning(
            Statement::new(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, key) DO NOTHING RETURNING user_id",
            )
            .bind(user_id)
            .bind(key)
            .bind(fingerprint)
            .bind(now_micros()),
        )
        .await?;
    let state = if inserted.len() == 1 {
        KeyState::Reserved
    } else {
        let select =
            Statement::new("SELECT fingerprint, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2")
                .bind(user_id)
                .bind(key);
        let Some(row) = tx.fetch_optional(select).await? else {
            return Err(StoreError::Corrupt { table: "idempotency_keys", message: format!("key {key} vanished") });
        };
        let fingerprint: String = row.get("fingerprint")?;
        match (row.get::<Option<i64>>("status")?, row.get::<Option<String>>("body")?) {
            (Some(status), Some(body)) => KeyState::Done { fingerprint, status: status as u16, body },
            _ => KeyState::InProgress { fingerprint },
        }
    };
    tx.commit().await?;
    Ok(state)
}

/// Records the response of a reserved key.
pub async fn complete(store: &Store, user_id: i64, key: &str, status: u16, body: &str) -> StoreResult<()> {
    let mut tx = store.begin();
    tx.defer(
        Statement::new("UPDATE idempotency_keys SET status = $1, body = $2 WHERE user_id = $3 AND key = $4")
            .bind(i64::from(status))
            .bind(body)
            .bind(user_id)
            .bind(key),
    );
    tx.commit().await?;
    Ok(())
}

/// Releases a reserved key whose request failed on the server's side, so it can be retried.
pub async fn release(store: &Store, user_id: i64, key: &str) -> StoreResult<()> {
    let mut tx = store.begin();
    tx.defer(
        Statement::new("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status IS NULL")
            .bind(user_id)
            .bind(key),
    );
    tx.commit().await?;
    Ok(())
}
