//! Request info: asks one person — the step's assignee resolved against the item, the least
//! busy of several — to fill in a form. The answers go to the item's fields or to the process's
//! variables, and the step's variable becomes `answered` once the form is filled in.

use serde_json::Value;
use voronka_model::assignee::Assignee;
use voronka_model::process::{FormField, Wait, WriteTo};
use voronka_store::Tx;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;

impl Run<'_> {
    /// Opens the request: an assignment with the form for its person; the thread waits for the
    /// answers (no deadline).
    pub(super) async fn open_request(
        &mut self,
        tx: &mut Tx,
        id: &str,
        assignee: &Value,
        form: &[FormField],
        title: Option<&str>,
    ) -> ServiceResult<Next> {
        let assignee = Assignee::from_json("assignee", assignee)?;
        let user = self.core.people().resolve_one_assignee("assignee", &assignee, Some(&self.item)).await?;
        let title = title.map_or_else(|| format!("Fill in: {}", self.item.title), |t| self.render(t));
        self.assign(tx, id, "request-info", user, &title, form.to_vec(), None).await?;
        Ok(Next::Wait(Wait::Assignments { until: None }))
    }

    /// Whether the request is answered; if so, the answers written to variables are merged into
    /// them, the step's variable becomes `answered`, and answers written to fields are reloaded
    /// with the item.
    pub(super) async fn request_answered(&mut self, tx: &mut Tx, step: &str, write_to: WriteTo) -> ServiceResult<bool> {
        let assignments = self.assignments(tx, step).await?;
        let Some(done) = assignments.iter().find(|a| a.status == "done") else { return Ok(false) };
        if write_to == WriteTo::Vars
            && let Some(Value::Object(answers)) = &done.answers
        {
            for (key, value) in answers {
                self.instance.variables.insert(key.clone(), value.clone());
            }
        }
        self.instance.variables.insert(step.to_string(), Value::String("answered".into()));
        // The answers may have changed the item's fields.
        if write_to == WriteTo::Fields {
            self.item = self.core.items().load_in(tx, &self.caller, &self.item.type_key, self.item.id).await?;
        }
        Ok(true)
    }
}
