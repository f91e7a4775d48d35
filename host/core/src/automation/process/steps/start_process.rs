//! Start process: starts another process, from the latest version of a template, on the same
//! item with the step's parameters as its first variables. The step's variable holds the
//! child's id; when the step waits, the thread goes on once the child has ended, and the
//! variable then tells how it ended (so the parent may branch on it).

use serde_json::{Map, Value, json};
use voronka_model::process::{Thread, Wait};
use voronka_store::Tx;
use voronka_store::processes as repo;

use crate::automation::process::{Next, Run};
use crate::service::{Caller, ServiceResult};

impl Run<'_> {
    /// Starts the child process one chain step deeper than this one; waits for it when `wait`,
    /// else goes on.
    pub(super) async fn start_child(
        &mut self,
        tx: &mut Tx,
        id: &str,
        pc: usize,
        template: &str,
        wait: bool,
        params: &Map<String, Value>,
    ) -> ServiceResult<Next> {
        let child_caller = Caller { depth: self.caller.depth + 1, ..self.caller.clone() };
        let item = self.item_ref();
        let child = self
            .core
            .processes()
            .start_in(tx, &child_caller, template, &item, params.clone(), Some(self.instance.id))
            .await?;
        self.log(tx, id, &format!("Process {} started", child.id), json!({ "process": child.id }));
        self.instance.variables.insert(id.to_string(), json!({ "process": child.id }));
        Ok(if wait { Next::Wait(Wait::Child { instance: child.id }) } else { Next::Goto(pc + 1) })
    }

    /// Whether the child process a thread waits for has ended (a child that is gone counts as
    /// failed); if so, the step's variable records its id and how it ended.
    pub(super) async fn child_ended(&mut self, tx: &mut Tx, thread: &Thread, instance: i64) -> ServiceResult<bool> {
        let status = repo::instance_status(tx, instance).await?.unwrap_or_else(|| "failed".into());
        if status == "running" {
            return Ok(false);
        }
        // The parent learns how its child ended, and may branch on it.
        if let Some(step) = self.program.step_of(thread.pc) {
            let value = json!({ "process": instance, "status": status });
            self.instance.variables.insert(step.id.clone(), value);
        }
        Ok(true)
    }
}
