//! Reading the domain event stream (audit and debugging): the [`super::Events`] aggregate
//! (`core.events()`).

use super::{Caller, Events, ServiceResult, require_admin};
use voronka_store::outbox::{self, StoredEvent};

impl Events<'_> {
    /// Events after `after`, oldest first, optionally of one item: `(events, next cursor)`.
    /// Administrators only: events carry data of every type.
    pub async fn list(
        &self,
        caller: &Caller,
        after: i64,
        item: Option<i64>,
        limit: i64,
    ) -> ServiceResult<(Vec<StoredEvent>, Option<i64>)> {
        require_admin(caller)?;
        let mut events = outbox::list(self.core.store.reader(), after, item, limit).await?;
        let next = super::page_cursor(&mut events, limit, |e| e.id);
        Ok((events, next))
    }
}
