//! Reading the domain event stream (audit and debugging).

use super::{Caller, Service, ServiceResult, require_admin};
use voronka_store::outbox::{self, StoredEvent};

impl Service {
    /// Events after `after`, oldest first, optionally of one item: `(events, next cursor)`.
    /// Administrators only: events carry data of every type.
    pub async fn list_events(
        &self,
        caller: &Caller,
        after: i64,
        item: Option<i64>,
        limit: i64,
    ) -> ServiceResult<(Vec<StoredEvent>, Option<i64>)> {
        require_admin(caller)?;
        let mut events = outbox::list(self.store.reader(), after, item, limit).await?;
        let next = super::items::page_cursor(&mut events, limit, |e| e.id);
        Ok((events, next))
    }
}
