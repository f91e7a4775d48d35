//! Notify: sends a notification about the item, with the step's text, to everyone the step's
//! `to` names (a user, every active holder of a role, or a relation of the item), then goes on.

use serde_json::{Value, json};
use voronka_model::assignee::Assignee;
use voronka_store::Tx;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;
use crate::service::notifications::NewNotification;

impl Run<'_> {
    /// Notifies each person `to` resolves to, against the item.
    pub(super) async fn notify(
        &mut self,
        tx: &mut Tx,
        id: &str,
        pc: usize,
        to: &Value,
        text: &str,
    ) -> ServiceResult<Next> {
        let assignee = Assignee::from_json("to", to)?;
        for user in self.core.people().resolve_assignee("to", &assignee, Some(&self.item)).await? {
            let note = NewNotification {
                user,
                kind: "process",
                text: self.render(text),
                about: Some(self.item_ref()),
                data: json!({ "process": self.instance.id, "step": id }),
            };
            self.core.notifications().notify_in(tx, &self.caller, note).await?;
        }
        Ok(Next::Goto(pc + 1))
    }
}
