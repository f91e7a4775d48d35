//! Notifications: written on task assignment, on process assignments and their outcomes, and by
//! robots through the `notify` host interface; read by each user from their own inbox. Each is
//! also a `notification.created` event, so webhooks can carry it outward.
//!
//! The [`super::Notifications`] aggregate (`core.notifications()`).

use serde_json::{Value, json};

use super::{Caller, Notifications, ServiceError, ServiceResult};
use voronka_model::event::EventKind;
use voronka_model::item::ItemRef;
use voronka_model::notification::{MAX_TEXT, Notification};
use voronka_model::time::{now_micros, to_rfc3339};
use voronka_store::Tx;
use voronka_store::notifications as repo;
use voronka_store::outbox::{self, NewEvent};

/// A notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Id of the user whose inbox it goes to; an inactive user gets nothing, an unknown id is
    /// an error.
    pub user: i64,
    /// Kind, e.g. `task-assigned`.
    pub kind: &'static str,
    /// The message, 1 to 2,000 characters after trimming.
    pub text: String,
    /// The item it is about.
    pub about: Option<ItemRef>,
    /// Machine-readable details for the kind, e.g. `{"task": 12}`; stored as given.
    pub data: Value,
}

impl Notifications<'_> {
    /// Writes a notification inside `tx`, with its event; returns its id, or `None` when the
    /// recipient is inactive (nothing is written). An unknown recipient is an error.
    pub async fn notify_in(&self, tx: &mut Tx, caller: &Caller, new: NewNotification) -> ServiceResult<Option<i64>> {
        let text = new.text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT {
            return Err(ServiceError::invalid(
                "text",
                format!("a notification of 1 to {MAX_TEXT} characters is required"),
            ));
        }
        match voronka_store::people::get_user(self.core.store.reader(), new.user).await? {
            Some(user) if user.active => {}
            // Someone who left is not written to; the change that would notify them goes on.
            Some(_) => return Ok(None),
            None => return Err(ServiceError::invalid("user", format!("no user {}", new.user))),
        }
        let now = now_micros();
        let mut notification = Notification {
            id: 0,
            user: new.user,
            kind: new.kind.to_string(),
            text: text.to_string(),
            about: new.about,
            data: new.data,
            created_at: to_rfc3339(now),
            read_at: None,
        };
        notification.id = repo::insert(tx, &notification, now).await?;
        let event = NewEvent {
            kind: EventKind::NotificationCreated,
            type_key: notification.about.as_ref().map(|a| a.type_key.as_str()),
            item_id: notification.about.as_ref().map(|a| a.id),
            actor: &caller.actor,
            depth: caller.depth,
            payload: json!({ "notification": notification }),
        };
        outbox::record(tx, &event, now);
        Ok(Some(notification.id))
    }

    /// The caller's notifications, newest first; only unread ones when `unread`.
    pub async fn list(
        &self,
        caller: &Caller,
        unread: bool,
        before: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<Notification>, Option<i64>)> {
        let mut rows = repo::list(self.core.store.reader(), caller.principal.user_id, unread, before, limit).await?;
        let next = super::page_cursor(&mut rows, limit, |n| n.id);
        Ok((rows, next))
    }

    /// How many of the caller's notifications are unread.
    pub async fn unread(&self, caller: &Caller) -> ServiceResult<i64> {
        Ok(repo::unread_count(self.core.store.reader(), caller.principal.user_id).await?)
    }

    /// Marks one of the caller's notifications read (`Some(id)`) or all of them (`None`);
    /// returns how many were unread.
    pub async fn mark_read(&self, caller: &Caller, id: Option<i64>) -> ServiceResult<usize> {
        let user = caller.principal.user_id;
        if let Some(id) = id
            && !repo::owned_by(self.core.store.reader(), id, user).await?
        {
            return Err(ServiceError::NotFound(format!("no notification {id}")));
        }
        let mut tx = self.core.store.begin();
        let changed = repo::mark_read(&mut tx, user, id.as_slice(), now_micros()).await?;
        tx.commit().await?;
        Ok(changed)
    }
}
