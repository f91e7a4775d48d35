//! Move: moves the item to a stage — of its own funnel, of another one named, or, with
//! `return`, of the funnel it was in before its last change of funnel — as the process, through
//! the same path as every move: the stage history names the process, and the stage's robots
//! run. A return for an item that never changed funnel fails the step (and so the process).

use serde_json::json;
use voronka_model::item::MoveRequest;
use voronka_store::Tx;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;

impl Run<'_> {
    /// Moves the item and goes on with the item as it now is.
    pub(super) async fn move_item(
        &mut self,
        tx: &mut Tx,
        id: &str,
        pc: usize,
        (stage, funnel, back): (Option<&str>, Option<&str>, bool),
    ) -> ServiceResult<Next> {
        let (type_key, item) = (self.item.type_key.clone(), self.item.id);
        self.item = if back {
            self.core.items().return_to_funnel_in(tx, &self.caller, &type_key, item, stage).await?
        } else {
            let request =
                MoveRequest { stage: stage.unwrap_or_default().to_string(), funnel: funnel.map(str::to_string) };
            self.core.items().move_to_in(tx, &self.caller, &type_key, item, request, None).await?
        };
        let (to_funnel, to_stage) = (self.item.funnel.clone(), self.item.stage.clone());
        let text = format!("Moved to {} / {}", to_funnel.as_deref().unwrap_or(""), to_stage.as_deref().unwrap_or(""));
        self.log(tx, id, &text, json!({ "funnel": to_funnel, "stage": to_stage, "return": back }));
        Ok(Next::Goto(pc + 1))
    }
}
