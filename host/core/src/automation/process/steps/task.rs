//! Task: creates a task for a person — the step's assignee, resolved against the item — linked
//! to the item, with an optional deadline, tags and a required result. The step's variable
//! holds the task's id; when the step waits, the thread goes on once the task is completed (or
//! gone).

use serde_json::{Value, json};
use voronka_model::process::Wait;
use voronka_model::task::TaskRequest;
use voronka_store::Tx;
use voronka_store::processes as repo;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;

impl Run<'_> {
    /// The task a task step asks for: the step's title, description, assignee, deadline, result
    /// requirement and tags, linked to the item.
    pub(super) fn task_request(
        &self,
        title: &str,
        description: &str,
        assignee: &Value,
        deadline_s: Option<i64>,
        require_result: bool,
        tags: &[String],
    ) -> TaskRequest {
        TaskRequest {
            title: self.render(title),
            description: self.render(description),
            responsible: Some(assignee.clone()),
            deadline: None,
            deadline_in_s: deadline_s,
            links: vec![self.item_ref()],
            auditors: Vec::new(),
            checklist: Vec::new(),
            require_result,
            tags: tags.to_vec(),
        }
    }

    /// Creates a task step's task and notes its id in the step's variable; waits for its
    /// completion when `wait`, else goes on.
    pub(super) async fn create_task(
        &mut self,
        tx: &mut Tx,
        id: &str,
        pc: usize,
        request: TaskRequest,
        wait: bool,
    ) -> ServiceResult<Next> {
        let task = self.core.tasks().create_in(tx, &self.caller, request).await?;
        self.created_tasks = true;
        self.instance.variables.insert(id.to_string(), json!({ "task": task.id }));
        self.log(
            tx,
            id,
            &format!("Task {} created for user {}", task.id, task.responsible),
            json!({ "task": task.id }),
        );
        Ok(if wait {
            repo::link_task(tx, task.id, self.instance.id);
            Next::Wait(Wait::Task { task: task.id })
        } else {
            Next::Goto(pc + 1)
        })
    }
}
