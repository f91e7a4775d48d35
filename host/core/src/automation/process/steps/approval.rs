//! Approval: several people decide on the item — everyone its assignees name gets an
//! assignment to approve or reject — and the step's variable becomes `approved` or `rejected`.
//! In mode `all` every approver must approve (one rejection rejects), in `any` one approval is
//! enough (rejection needs everyone), and in `vote` a share of approvals (`min_percent`)
//! decides. The outcome is settled as soon as it can no longer change; if the deadline passes
//! first, the step's default outcome applies. The item's responsible is told the outcome.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use voronka_model::assignee::Assignee;
use voronka_model::process::{ApprovalMode, Outcome, Wait};
use voronka_model::time::Micros;
use voronka_store::Tx;
use voronka_store::processes as repo;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;
use crate::service::notifications::NewNotification;

impl Run<'_> {
    /// Opens an approval: an assignment for each person its assignees name (each once), with
    /// the step's deadline; the thread waits for their decisions.
    pub(super) async fn open_approval(
        &mut self,
        tx: &mut Tx,
        id: &str,
        assignees: &[Value],
        deadline_s: Option<i64>,
        title: Option<&str>,
    ) -> ServiceResult<Next> {
        let mut users = BTreeSet::new();
        for (i, value) in assignees.iter().enumerate() {
            let field = format!("assignees[{i}]");
            let assignee = Assignee::from_json(&field, value)?;
            users.extend(self.core.people().resolve_assignee(&field, &assignee, Some(&self.item)).await?);
        }
        let until = deadline_s.map(|s| self.now + s * 1_000_000);
        let title = title.map_or_else(|| format!("Approve: {}", self.item.title), |t| self.render(t));
        for user in users {
            self.assign(tx, id, "approval", user, &title, Vec::new(), until).await?;
        }
        Ok(Next::Wait(Wait::Assignments { until }))
    }

    /// Whether an approval is decided, from its decisions so far or, past its deadline `until`,
    /// its default outcome. Once decided, the outcome goes to the step's variable and the log,
    /// the assignments still open are cancelled, and the item's responsible is notified.
    pub(super) async fn approval_over(
        &mut self,
        tx: &mut Tx,
        step: &str,
        mode: ApprovalMode,
        min_percent: Option<u32>,
        default: Option<Outcome>,
        until: Option<Micros>,
    ) -> ServiceResult<bool> {
        let assignments = self.assignments(tx, step).await?;
        let total = assignments.len();
        let approvals = assignments.iter().filter(|a| a.decision.as_deref() == Some("approve")).count();
        let rejections = assignments.iter().filter(|a| a.decision.as_deref() == Some("reject")).count();
        let mut outcome = decide(mode, min_percent.unwrap_or(100) as usize, total, approvals, rejections);
        let mut timed_out = false;
        if outcome.is_none() && until.is_some_and(|u| u <= self.now) {
            outcome = default;
            timed_out = true;
        }
        let Some(outcome) = outcome else { return Ok(false) };
        self.instance.variables.insert(step.to_string(), Value::String(outcome.as_str().into()));
        repo::cancel_open(tx, self.instance.id, step, self.now);
        let how = if timed_out { " (deadline passed: default outcome)" } else { "" };
        let text = format!("Outcome: {}{how}", outcome.as_str());
        self.log(tx, step, &text, json!({ "approvals": approvals, "rejections": rejections, "of": total }));
        if let Some(responsible) = self.item.responsible {
            let note = NewNotification {
                user: responsible,
                kind: "approval-outcome",
                text: format!("{}: {}", self.item.title, outcome.as_str()),
                about: Some(self.item_ref()),
                data: json!({ "process": self.instance.id, "step": step, "outcome": outcome.as_str() }),
            };
            self.core.notifications().notify_in(tx, &self.caller, note).await?;
        }
        Ok(true)
    }
}

/// An approval's outcome from its decisions so far, once it cannot change.
fn decide(
    mode: ApprovalMode,
    min_percent: usize,
    total: usize,
    approvals: usize,
    rejections: usize,
) -> Option<Outcome> {
    if total == 0 {
        return Some(Outcome::Approved);
    }
    match mode {
        ApprovalMode::All if rejections > 0 => Some(Outcome::Rejected),
        ApprovalMode::All if approvals == total => Some(Outcome::Approved),
        ApprovalMode::Any if approvals > 0 => Some(Outcome::Approved),
        ApprovalMode::Any if rejections == total => Some(Outcome::Rejected),
        ApprovalMode::Vote if approvals * 100 >= min_percent * total => Some(Outcome::Approved),
        ApprovalMode::Vote if (total - rejections) * 100 < min_percent * total => Some(Outcome::Rejected),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_decide_as_soon_as_the_outcome_is_certain() {
        use ApprovalMode::*;
        assert_eq!(decide(All, 100, 2, 1, 0), None);
        assert_eq!(decide(All, 100, 2, 2, 0), Some(Outcome::Approved));
        assert_eq!(decide(All, 100, 3, 2, 1), Some(Outcome::Rejected));
        assert_eq!(decide(All, 100, 3, 0, 1), Some(Outcome::Rejected));
        assert_eq!(decide(Any, 100, 3, 1, 0), Some(Outcome::Approved));
        assert_eq!(decide(Any, 100, 2, 0, 1), None);
        assert_eq!(decide(Any, 100, 2, 0, 2), Some(Outcome::Rejected));
        // 60 % of 5: three approvals approve; three rejections make it impossible.
        assert_eq!(decide(Vote, 60, 5, 2, 0), None);
        assert_eq!(decide(Vote, 60, 5, 3, 0), Some(Outcome::Approved));
        assert_eq!(decide(Vote, 60, 5, 1, 2), None);
        assert_eq!(decide(Vote, 60, 5, 1, 3), Some(Outcome::Rejected));
    }
}
