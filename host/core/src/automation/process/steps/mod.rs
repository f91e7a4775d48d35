//! The steps of a process, one kind per file: [`Run::run_step`] hands an action step to its
//! kind, and [`Run::wait_over`] asks a waiting step's kind whether the wait is over. Conditions
//! and parallel blocks are the engine's own ops (branches and forks); their steps hold no action.

mod approval;
mod move_item;
mod notify;
pub(super) mod plugin;
mod request_info;
mod set_fields;
mod start_process;
mod task;
mod wait;

use serde_json::json;
use voronka_model::process::{Assignment, FormField, StepKind, Thread, Wait};
use voronka_model::time::Micros;
use voronka_store::Tx;
use voronka_store::processes as repo;

use super::{Next, Run};
use crate::service::ServiceResult;
use crate::service::notifications::NewNotification;

impl Run<'_> {
    /// Runs an action step, by its kind; `thread` and `pc` name where the thread stands.
    pub(super) async fn run_step(
        &mut self,
        tx: &mut Tx,
        id: &str,
        kind: &StepKind,
        (thread, pc): (u32, usize),
    ) -> ServiceResult<Next> {
        match kind {
            StepKind::Task { title, description, assignee, wait, deadline_s, require_result, tags } => {
                let request = self.task_request(title, description, assignee, *deadline_s, *require_result, tags);
                self.create_task(tx, id, pc, request, *wait).await
            }
            StepKind::Approval { assignees, deadline_s, title, .. } => {
                self.open_approval(tx, id, assignees, *deadline_s, title.as_deref()).await
            }
            StepKind::RequestInfo { assignee, form, title, .. } => {
                self.open_request(tx, id, assignee, form, title.as_deref()).await
            }
            StepKind::SetFields { fields } => self.set_fields(tx, id, pc, fields).await,
            StepKind::Wait { event: Some(kind), field, stage, .. } => {
                self.wait_for_event(tx, kind, field.as_deref(), stage.as_deref()).await
            }
            StepKind::Wait { duration_s, until, until_field, offset_s, .. } => {
                let at = self.timer_end(*duration_s, until.as_deref(), until_field.as_deref(), *offset_s);
                Ok(self.wait_for_time(tx, id, pc, at))
            }
            StepKind::Notify { to, text } => self.notify(tx, id, pc, to, text).await,
            StepKind::StartProcess { template, wait, params } => {
                self.start_child(tx, id, pc, template, *wait, params).await
            }
            StepKind::Move { stage, funnel, back } => {
                self.move_item(tx, id, pc, (stage.as_deref(), funnel.as_deref(), *back)).await
            }
            StepKind::Plugin { .. } => self.apply_plugin(tx, id, (thread, pc)).await,
            StepKind::Condition { .. } | StepKind::Parallel { .. } => Ok(Next::Goto(pc + 1)),
        }
    }

    /// Whether a waiting thread may go on, by the kind of its wait; an approval or request that
    /// resolves records its outcome first.
    pub(super) async fn wait_over(&mut self, tx: &mut Tx, thread: &Thread, wait: &Wait) -> ServiceResult<bool> {
        match wait {
            Wait::Event { kind, field, stage, after } => {
                self.event_seen(tx, thread, kind, field.as_deref(), stage.as_deref(), *after).await
            }
            Wait::Child { instance } => self.child_ended(tx, thread, *instance).await,
            Wait::Assignments { until } => {
                let Some(step) = self.program.step_of(thread.pc).cloned() else { return Ok(true) };
                match &step.kind {
                    StepKind::Approval { mode, min_percent, default, .. } => {
                        self.approval_over(tx, &step.id, *mode, *min_percent, *default, *until).await
                    }
                    StepKind::RequestInfo { write_to, .. } => self.request_answered(tx, &step.id, *write_to).await,
                    _ => Ok(true),
                }
            }
            // A task's completion or a time: the service tells, there is nothing to record.
            Wait::Task { .. } | Wait::Timer { .. } => self.core.processes().wait_is_over(tx, wait).await,
        }
    }

    /// Opens an assignment and notifies its person.
    #[allow(clippy::too_many_arguments)]
    async fn assign(
        &mut self,
        tx: &mut Tx,
        step: &str,
        kind: &str,
        user: i64,
        title: &str,
        form: Vec<FormField>,
        until: Option<Micros>,
    ) -> ServiceResult<()> {
        let mut assignment = Assignment {
            id: 0,
            process: self.instance.id,
            step: step.to_string(),
            kind: kind.to_string(),
            user,
            status: "open".into(),
            title: title.to_string(),
            form,
            item: self.item_ref(),
            decision: None,
            comment: None,
            answers: None,
            due_at: None,
            created_at: String::new(),
            completed_at: None,
        };
        assignment.id = repo::insert_assignment(tx, &assignment, until, self.now).await?;
        let note = NewNotification {
            user,
            kind: "assignment",
            text: title.to_string(),
            about: Some(assignment.item.clone()),
            data: json!({ "assignment": assignment.id, "process": self.instance.id, "step": step }),
        };
        self.core.notifications().notify_in(tx, &self.caller, note).await?;
        self.log(tx, step, &format!("Assigned to user {user}"), json!({ "assignment": assignment.id, "kind": kind }));
        Ok(())
    }

    /// A step's text with its placeholders filled from the item and the variables.
    fn render(&self, text: &str) -> String {
        voronka_model::process::render_text(text, &self.item, &self.instance.variables)
    }

    /// The assignments a step opened, leaving out the cancelled ones.
    async fn assignments(&self, tx: &mut Tx, step: &str) -> ServiceResult<Vec<Assignment>> {
        let all = repo::assignments_of_step(tx, self.instance.id, step).await?;
        Ok(all.into_iter().filter(|a| a.status != "cancelled").collect())
    }
}
