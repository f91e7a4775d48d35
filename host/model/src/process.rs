//! Business-process templates: a tree of steps (sequences, conditions, parallel branches),
//! validated as a whole and compiled into a flat program of operations that an instance's
//! threads walk. An instance stores only its threads' positions, so the template version it
//! started with fully determines what it does next.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::FieldError;
use super::event::EventKind;
use super::field::FieldKind;

/// How the decisions of several approvers make one outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    /// Every approver approves; one rejection rejects.
    #[default]
    All,
    /// One approval approves; rejection by all rejects.
    Any,
    /// Approved when at least `min_percent` of the approvers approve.
    Vote,
}

/// An approval's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The approvers approved: the step's variable becomes `approved`.
    Approved,
    /// The approvers rejected: the step's variable becomes `rejected`.
    Rejected,
}

impl Outcome {
    /// The value the step's variable takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Where a request's answers go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteTo {
    /// The item's custom fields of the same keys.
    Fields,
    /// Process variables of the same keys.
    #[default]
    Vars,
}

/// One field of a request-for-information form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    /// Key of the answer.
    pub key: String,
    /// Label shown to the person answering; empty when not given.
    #[serde(default)]
    pub title: String,
    /// A field kind (`string`, `number`, `money`, `date`, `file`, `enum`, ...) or `rows`.
    pub kind: String,
    /// An answer other than `null` must be given; a `rows` field needs at least one row.
    #[serde(default)]
    pub required: bool,
    /// Options of an `enum`.
    #[serde(default)]
    pub options: Vec<String>,
    /// The columns of each row of a `rows` field (repeatable rows).
    #[serde(default)]
    pub fields: Vec<FormField>,
}

/// What a step does. Serialized back, it names every key the step takes (the save-time check of
/// unknown keys compares with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    /// Creates a task linked to the item; waits for its completion when `wait`.
    Task {
        /// Title of the task created, 1 to 500 characters.
        title: String,
        /// Description of the task, at most 20,000 characters; empty by default.
        #[serde(default)]
        description: String,
        /// The task's responsible, as `POST /tasks` takes it: a user id or an assignee, resolved
        /// against the item.
        assignee: Value,
        /// Wait for completion (default true).
        #[serde(default = "yes")]
        wait: bool,
        /// Deadline, seconds after the step starts.
        #[serde(default)]
        deadline_s: Option<i64>,
        /// Completion needs a result.
        #[serde(default)]
        require_result: bool,
        /// Tags of the task created (a `task-completed` trigger can match one).
        #[serde(default)]
        tags: Vec<String>,
    },
    /// Asks approvers for a decision; the step's variable becomes `approved` or `rejected`.
    Approval {
        /// Who decides (each assignee may name several people).
        assignees: Vec<Value>,
        /// How decisions combine: `all` (the default), `any` or `vote`.
        #[serde(default)]
        mode: ApprovalMode,
        /// For `vote`: the share of approvals needed, in percent.
        #[serde(default)]
        min_percent: Option<u32>,
        /// Seconds to decide; then `default` applies.
        #[serde(default)]
        deadline_s: Option<i64>,
        /// The outcome when the deadline passes.
        #[serde(default)]
        default: Option<Outcome>,
        /// Title of the approvers' assignments; `Approve: <item title>` when absent.
        #[serde(default)]
        title: Option<String>,
    },
    /// Asks one person to fill in a form; answers go to item fields or variables.
    RequestInfo {
        /// Who answers: an assignee resolved against the item; of several people, the least busy.
        assignee: Value,
        /// The fields to fill in, at least one; keys unique, `rows` not nested.
        form: Vec<FormField>,
        /// Where the answers go.
        #[serde(default)]
        write_to: WriteTo,
        /// Title of the assignment; `Fill in: <item title>` when absent.
        #[serde(default)]
        title: Option<String>,
    },
    /// Sets custom fields of the item, as a `PATCH` of `fields` would (`null` clears one).
    SetFields {
        /// Values by field key.
        fields: Map<String, Value>,
    },
    /// Takes `then` when the Rhai expression `when` (over `vars` and `item`) is true, else `else`.
    Condition {
        /// Rhai expression over `vars` and `item`, checked when the template is saved.
        when: String,
        /// Steps run when `when` is true; none by default.
        #[serde(default)]
        then: Vec<Value>,
        /// Steps run when `when` is false (`else` in JSON); none by default.
        #[serde(default, rename = "else")]
        otherwise: Vec<Value>,
    },
    /// Runs branches at once; the step ends when all of them have.
    Parallel {
        /// Each branch's steps.
        branches: Vec<Vec<Value>>,
    },
    /// Waits for a duration, until a time, or until a date field's time (plus an offset).
    Wait {
        /// Seconds to wait, 1 to ten years.
        #[serde(default)]
        duration_s: Option<i64>,
        /// A time to wait until (RFC 3339).
        #[serde(default)]
        until: Option<String>,
        /// A date or datetime field of the item.
        #[serde(default)]
        until_field: Option<String>,
        /// Seconds added to `until_field`'s time.
        #[serde(default)]
        offset_s: i64,
        /// An event of the item to wait for: `item.updated`, `item.stage_changed`,
        /// `item.funnel_changed` or `item.commented`.
        #[serde(default)]
        event: Option<String>,
        /// With `item.updated`: a field that must have changed.
        #[serde(default)]
        field: Option<String>,
        /// With `item.stage_changed` / `item.funnel_changed`: the stage entered.
        #[serde(default)]
        stage: Option<String>,
    },
    /// Sends a notification about the item to everyone `to` names.
    Notify {
        /// Who is notified: an assignee (`{"user": id}`, `{"role": key}` for every active holder,
        /// or `{"relation": ..}`), resolved against the item.
        to: Value,
        /// The message, 1 to 2,000 characters.
        text: String,
    },
    /// Starts another process on the same item; waits for it when `wait`.
    StartProcess {
        /// Key of the template to start, in its latest version; it must run on the same type.
        template: String,
        /// Wait for it to end (default false).
        #[serde(default)]
        wait: bool,
        /// Its parameters (initial variables).
        #[serde(default)]
        params: Map<String, Value>,
    },
    /// Moves the item to a stage (of another funnel when `funnel` is given), recorded as the
    /// process's move, which runs the stage's robots; or, with `return`, back to the funnel the
    /// item was in before its last change of funnel.
    Move {
        /// Key of the stage. With `return`: the stage of the funnel it returns to; absent, the
        /// stage it left there.
        #[serde(default)]
        stage: Option<String>,
        /// Key of the funnel; absent, the item's own. Not with `return`.
        #[serde(default)]
        funnel: Option<String>,
        /// Return to the funnel the item came from (`"return": true`).
        #[serde(default, rename = "return")]
        back: bool,
    },
    /// Runs a plugin of world `bp-step`; its variables merge into the process's.
    Plugin {
        /// Name of an installed plugin of world `bp-step`.
        plugin: String,
        /// `latest` or a semver requirement.
        #[serde(default = "latest")]
        version: String,
        /// Config handed to it.
        #[serde(default)]
        config: Value,
    },
}

fn yes() -> bool {
    true
}

fn latest() -> String {
    "latest".into()
}

/// A step: its id (unique in the template) and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Id, also the name of its variable.
    pub id: String,
    /// What it does: its `kind` and that kind's settings.
    pub kind: StepKind,
}

/// One operation of a compiled template.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Runs the action step `steps[i]`.
    Run(usize),
    /// Evaluates condition `steps[i]`: on to the next op when true, to `otherwise` when false.
    Branch {
        /// Index in `steps` of the condition step.
        step: usize,
        /// Where the `else` steps start.
        otherwise: usize,
    },
    /// Goes on at an op.
    Jump(usize),
    /// Splits the thread into one per branch start; they meet at `join`.
    Fork {
        /// Index in `steps` of the parallel step.
        step: usize,
        /// Where each branch starts.
        starts: Vec<usize>,
        /// Index of the `Join` op where the branches meet.
        join: usize,
    },
    /// Ends a branch at its join.
    EndBranch {
        /// Index of the `Join` op the branch arrives at.
        join: usize,
    },
    /// Where the branches of a parallel step meet; the last to arrive goes on.
    Join {
        /// How many branches arrive.
        branches: usize,
    },
    /// The end of the process.
    End,
}

/// A validated, compiled template.
#[derive(Debug, Clone)]
pub struct Program {
    /// Every step, in template order (nested ones included).
    pub steps: Vec<Step>,
    /// The operations; execution starts at 0.
    pub ops: Vec<Op>,
}

impl Program {
    /// The step an op belongs to, for logs.
    pub fn step_of(&self, pc: usize) -> Option<&Step> {
        match self.ops.get(pc)? {
            Op::Run(i) | Op::Branch { step: i, .. } | Op::Fork { step: i, .. } => self.steps.get(*i),
            _ => None,
        }
    }
}

/// The events of its item a process can wait for.
pub const WAITABLE_EVENTS: [EventKind; 4] =
    [EventKind::ItemUpdated, EventKind::ItemStageChanged, EventKind::ItemFunnelChanged, EventKind::ItemCommented];

/// Most steps of one template.
pub const MAX_STEPS: usize = 500;

/// Form field kinds besides the custom-field kinds.
const ROWS: &str = "rows";

/// Validates a template's steps (every problem named by its path, e.g. `steps[2].form[0].kind`)
/// and compiles them. Expressions are checked by `check_expression`.
pub fn compile(
    steps: &[Value],
    check_expression: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Program, Vec<FieldError>> {
    let mut compiler = Compiler { steps: Vec::new(), ops: Vec::new(), errors: Vec::new(), check_expression };
    if steps.is_empty() {
        compiler.errors.push(FieldError::new("steps", "a process needs at least one step"));
    }
    compiler.sequence("steps", steps);
    compiler.ops.push(Op::End);
    if compiler.steps.len() > MAX_STEPS {
        compiler.errors.push(FieldError::new("steps", format!("at most {MAX_STEPS} steps")));
    }
    let mut seen = std::collections::HashSet::new();
    for step in &compiler.steps {
        if !seen.insert(step.id.clone()) {
            compiler.errors.push(FieldError::new("steps", format!("step id `{}` is used twice", step.id)));
        }
    }
    if compiler.errors.is_empty() {
        Ok(Program { steps: compiler.steps, ops: compiler.ops })
    } else {
        Err(compiler.errors)
    }
}

struct Compiler<'a> {
    steps: Vec<Step>,
    ops: Vec<Op>,
    errors: Vec<FieldError>,
    check_expression: &'a dyn Fn(&str) -> Result<(), String>,
}

impl Compiler<'_> {
    fn sequence(&mut self, path: &str, steps: &[Value]) {
        for (i, value) in steps.iter().enumerate() {
            self.step(&format!("{path}[{i}]"), value);
        }
    }

    fn error(&mut self, path: String, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn step(&mut self, path: &str, value: &Value) {
        let id = value.get("id").and_then(Value::as_str).unwrap_or("").to_string();
        if !super::is_valid_key(&id) {
            self.error(format!("{path}.id"), "a step id is a key: lower-case letters, digits, - and _");
        }
        let kind: StepKind = match serde_json::from_value(value.clone()) {
            Ok(kind) => kind,
            Err(e) => {
                let field = if value.get("kind").is_none() { format!("{path}.kind") } else { path.to_string() };
                self.error(field, format!("not a valid step: {e}"));
                return;
            }
        };
        self.check(path, &kind);
        let index = self.steps.len();
        self.steps.push(Step { id, kind: kind.clone() });
        match kind {
            StepKind::Condition { then, otherwise, .. } => {
                let branch = self.ops.len();
                self.ops.push(Op::Branch { step: index, otherwise: 0 });
                self.sequence(&format!("{path}.then"), &then);
                let jump = self.ops.len();
                self.ops.push(Op::Jump(0));
                let else_start = self.ops.len();
                self.sequence(&format!("{path}.else"), &otherwise);
                let end = self.ops.len();
                self.ops[branch] = Op::Branch { step: index, otherwise: else_start };
                self.ops[jump] = Op::Jump(end);
            }
            StepKind::Parallel { branches } => {
                let fork = self.ops.len();
                self.ops.push(Op::Fork { step: index, starts: Vec::new(), join: 0 });
                let mut starts = Vec::new();
                let mut ends = Vec::new();
                for (b, branch) in branches.iter().enumerate() {
                    starts.push(self.ops.len());
                    self.sequence(&format!("{path}.branches[{b}]"), branch);
                    ends.push(self.ops.len());
                    self.ops.push(Op::EndBranch { join: 0 });
                }
                let join = self.ops.len();
                self.ops.push(Op::Join { branches: branches.len() });
                for end in ends {
                    self.ops[end] = Op::EndBranch { join };
                }
                self.ops[fork] = Op::Fork { step: index, starts, join };
            }
            _ => self.ops.push(Op::Run(index)),
        }
    }

    fn check(&mut self, path: &str, kind: &StepKind) {
        let positive = |s: &Option<i64>| s.is_none_or(|s| (1..=10 * 365 * 86_400).contains(&s));
        match kind {
            StepKind::Task { title, deadline_s, .. } => {
                if title.trim().is_empty() {
                    self.error(format!("{path}.title"), "a task needs a title");
                }
                if !positive(deadline_s) {
                    self.error(format!("{path}.deadline_s"), "seconds from 1 to ten years");
                }
            }
            StepKind::Approval { assignees, mode, min_percent, deadline_s, default, .. } => {
                if assignees.is_empty() {
                    self.error(format!("{path}.assignees"), "an approval needs at least one approver");
                }
                if *mode == ApprovalMode::Vote && !min_percent.is_some_and(|p| (1..=100).contains(&p)) {
                    self.error(format!("{path}.min_percent"), "a vote needs min_percent from 1 to 100");
                }
                if !positive(deadline_s) {
                    self.error(format!("{path}.deadline_s"), "seconds from 1 to ten years");
                }
                if deadline_s.is_some() != default.is_some() {
                    self.error(format!("{path}.default"), "a deadline and its default outcome go together");
                }
            }
            StepKind::RequestInfo { form, .. } => {
                if form.is_empty() {
                    self.error(format!("{path}.form"), "a form needs at least one field");
                }
                self.form(&format!("{path}.form"), form, true);
            }
            StepKind::Condition { when, .. } => {
                if let Err(e) = (self.check_expression)(when) {
                    self.error(format!("{path}.when"), e);
                }
            }
            StepKind::Parallel { branches } => {
                if branches.len() < 2 {
                    self.error(format!("{path}.branches"), "parallel steps need at least two branches");
                }
            }
            StepKind::Wait { duration_s, until, until_field, event, offset_s, .. } => {
                let given = [duration_s.is_some(), until.is_some(), until_field.is_some(), event.is_some()]
                    .iter()
                    .filter(|g| **g)
                    .count();
                if given != 1 {
                    self.error(path.to_string(), "a wait needs exactly one of duration_s, until, until_field, event");
                }
                if event.as_deref().is_some_and(|e| !EventKind::parse(e).is_some_and(|k| WAITABLE_EVENTS.contains(&k)))
                {
                    let names: Vec<&str> = WAITABLE_EVENTS.iter().map(|k| k.as_str()).collect();
                    self.error(format!("{path}.event"), format!("one of {}", names.join(", ")));
                }
                if !positive(duration_s) {
                    self.error(format!("{path}.duration_s"), "seconds from 1 to ten years");
                }
                if !(-10 * 365 * 86_400..=10 * 365 * 86_400).contains(offset_s) {
                    self.error(format!("{path}.offset_s"), "seconds within ten years either way");
                }
                if until.as_deref().is_some_and(|u| super::time::parse_rfc3339(u).is_none()) {
                    self.error(format!("{path}.until"), "an RFC 3339 time");
                }
            }
            StepKind::Notify { text, .. } => {
                if text.trim().is_empty() {
                    self.error(format!("{path}.text"), "a notification needs a text");
                }
            }
            StepKind::StartProcess { template, .. } => {
                if !super::is_valid_key(template) {
                    self.error(format!("{path}.template"), "a template key");
                }
            }
            StepKind::Move { stage, funnel, back } => {
                if !back && stage.is_none() {
                    self.error(format!("{path}.stage"), "a move needs a stage (or \"return\": true)");
                }
                if *back && funnel.is_some() {
                    self.error(
                        format!("{path}.funnel"),
                        "a return goes back to the funnel the item came from; name no funnel",
                    );
                }
            }
            StepKind::SetFields { .. } | StepKind::Plugin { .. } => {}
        }
    }

    fn form(&mut self, path: &str, form: &[FormField], rows_allowed: bool) {
        let mut keys = std::collections::HashSet::new();
        for (i, field) in form.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if !super::is_valid_key(&field.key) || !keys.insert(field.key.clone()) {
                self.error(format!("{at}.key"), "a unique key: lower-case letters, digits, - and _");
            }
            if field.kind == ROWS {
                if !rows_allowed {
                    self.error(format!("{at}.kind"), "rows cannot be nested");
                } else if field.fields.is_empty() {
                    self.error(format!("{at}.fields"), "rows need their columns");
                } else {
                    self.form(&format!("{at}.fields"), &field.fields, false);
                }
            } else if FieldKind::parse(&field.kind).is_none() {
                self.error(format!("{at}.kind"), format!("unknown kind `{}`", field.kind));
            } else if field.kind == "enum" && field.options.is_empty() {
                self.error(format!("{at}.options"), "an enum needs options");
            }
        }
    }
}

/// A process text (a task's title, a notification) with its placeholders filled from the item
/// and the process's variables, by the renderer robots use.
pub fn render_text(text: &str, item: &super::item::Item, variables: &Map<String, Value>) -> String {
    let view = voronka_placeholders::ItemView {
        title: &item.title,
        id: item.id,
        stage: item.stage.as_deref(),
        funnel: item.funnel.as_deref(),
        type_key: &item.type_key,
        fields: &item.fields,
        variables: Some(variables),
    };
    voronka_placeholders::render(text, &view)
}

/// Whether a form field holds repeatable rows.
pub fn is_rows(field: &FormField) -> bool {
    field.kind == ROWS
}

/// What a thread waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "for", rename_all = "kebab-case")]
pub enum Wait {
    /// A task's completion.
    Task {
        /// Id of the task to complete; the wait also ends if the task is gone.
        task: i64,
    },
    /// The assignments of an approval or request step to resolve it (or its deadline).
    Assignments {
        /// Its deadline (microseconds), after which the default outcome applies.
        until: Option<i64>,
    },
    /// A time (microseconds).
    Timer {
        /// When the wait ends, in microseconds since the Unix epoch.
        at: i64,
    },
    /// A child process's end.
    Child {
        /// Id of the child process instance.
        instance: i64,
    },
    /// An event of the item after a position of the event stream.
    Event {
        /// Event kind to wait for, e.g. `item.stage_changed`.
        kind: String,
        /// A field that must have changed (`item.updated`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// The stage that must have been entered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        /// Events up to this id were there before the wait.
        after: i64,
    },
}

/// A thread of an instance: where it stands in the program and what it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Thread {
    /// Id, unique in the instance.
    pub id: u32,
    /// Index of the op it stands at in the compiled template.
    pub pc: usize,
    /// What it waits for; runnable when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
}

/// Where an instance stands: its threads and the branches arrived at each join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct State {
    /// Threads not yet at the end; none left once the process has completed.
    pub threads: Vec<Thread>,
    /// Branches arrived, by join op.
    #[serde(default)]
    pub joins: std::collections::BTreeMap<usize, usize>,
    /// The next thread id.
    #[serde(default)]
    pub next_thread: u32,
}

impl State {
    /// One thread at the start.
    pub fn start() -> State {
        State { threads: vec![Thread { id: 0, pc: 0, wait: None }], joins: Default::default(), next_thread: 1 }
    }

    /// Whether a thread waits for an event of the item.
    pub fn waits_for_event(&self) -> bool {
        self.threads.iter().any(|t| matches!(t.wait, Some(Wait::Event { .. })))
    }

    /// The earliest time a waiting thread needs a look (timers and deadlines).
    pub fn wake_at(&self) -> Option<i64> {
        self.threads
            .iter()
            .filter_map(|t| match &t.wait {
                Some(Wait::Timer { at }) => Some(*at),
                Some(Wait::Assignments { until }) => *until,
                _ => None,
            })
            .min()
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Going, or waiting for people, time or other processes.
    Running,
    /// Every thread reached the end.
    Completed,
    /// Stopped by a person.
    Terminated,
    /// Stopped by a step that failed.
    Failed,
}

impl InstanceStatus {
    /// The name in the database and the API: `running`, `completed`, `terminated` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Running => "running",
            InstanceStatus::Completed => "completed",
            InstanceStatus::Terminated => "terminated",
            InstanceStatus::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<InstanceStatus> {
        match text {
            "running" => Some(InstanceStatus::Running),
            "completed" => Some(InstanceStatus::Completed),
            "terminated" => Some(InstanceStatus::Terminated),
            "failed" => Some(InstanceStatus::Failed),
            _ => None,
        }
    }
}

/// A process instance as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Instance {
    /// Instance id, as in `/processes/{id}`.
    pub id: i64,
    /// Key of the template it runs.
    pub template: String,
    /// The template version it runs (fixed at start).
    pub template_version: i64,
    /// The item it runs on.
    pub item: super::item::ItemRef,
    /// Id of the process whose `start-process` step started it; `null` when none did.
    pub parent: Option<i64>,
    /// `running`, then `completed` when every thread ends, `terminated` by a person, or `failed`.
    pub status: InstanceStatus,
    /// Variables (parameters, step outcomes, answers).
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// The steps its threads stand at.
    pub current_steps: Vec<String>,
    /// Engine state: where each thread stands and what it waits for.
    pub state: State,
    /// Why it failed (`step <id>: <reason>` when a step did); `null` unless `failed`.
    pub error: Option<String>,
    /// Who started it: a user, or the robot, schedule or parent process that did.
    pub started_by: super::actor::Actor,
    /// Started (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// When it ended (RFC 3339); `null` while running.
    pub finished_at: Option<String>,
    /// Version, raised by every change.
    pub version: i64,
}

/// An assignment: a person's part in an approval or a request for information.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    /// Assignment id, as in `/assignments/{id}/complete`.
    pub id: i64,
    /// Id of the process instance it belongs to.
    pub process: i64,
    /// Id of the approval or request-info step it is part of.
    pub step: String,
    /// `approval` or `request-info`.
    pub kind: String,
    /// Id of the user who is to act (another one after a delegation).
    pub user: i64,
    /// `open`, `done`, `cancelled`.
    pub status: String,
    /// What it asks, as shown to the person; by default `Approve: <item title>` or
    /// `Fill in: <item title>`.
    pub title: String,
    /// The form to fill in (request-info).
    #[schema(value_type = Vec<Object>)]
    pub form: Vec<FormField>,
    /// The item the process runs on.
    pub item: super::item::ItemRef,
    /// `approve` / `reject` for approvals.
    pub decision: Option<String>,
    /// The person's comment on completion, at most 20,000 characters; `null` when none.
    pub comment: Option<String>,
    /// Answers to the form.
    #[schema(value_type = Option<Object>)]
    pub answers: Option<Value>,
    /// Deadline (RFC 3339), from the approval step's `deadline_s`; `null` when none.
    pub due_at: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// When it was done or cancelled (RFC 3339); `null` while open.
    pub completed_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(_: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn compiles_conditions_and_parallel_branches() {
        let steps = json!([
            {"id": "a", "kind": "set-fields", "fields": {"x": 1}},
            {"id": "c", "kind": "condition", "when": "true",
             "then": [{"id": "t", "kind": "notify", "to": {"user": 1}, "text": "yes"}],
             "else": [{"id": "e", "kind": "notify", "to": {"user": 1}, "text": "no"}]},
            {"id": "p", "kind": "parallel", "branches": [
                [{"id": "p1", "kind": "wait", "duration_s": 5}],
                [{"id": "p2", "kind": "wait", "duration_s": 5}]]}
        ]);
        let program =
            compile(steps.as_array().map(Vec::as_slice).unwrap_or_default(), &ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            program.ops,
            vec![
                Op::Run(0),
                Op::Branch { step: 1, otherwise: 4 },
                Op::Run(2),
                Op::Jump(5),
                Op::Run(3),
                Op::Fork { step: 4, starts: vec![6, 8], join: 10 },
                Op::Run(5),
                Op::EndBranch { join: 10 },
                Op::Run(6),
                Op::EndBranch { join: 10 },
                Op::Join { branches: 2 },
                Op::End,
            ]
        );
    }

    #[test]
    fn names_every_problem_by_path() {
        let steps = json!([
            {"id": "A", "kind": "notify", "to": {"user": 1}, "text": ""},
            {"id": "v", "kind": "approval", "assignees": [], "mode": "vote"},
            {"id": "f", "kind": "request-info", "assignee": {"user": 1},
             "form": [{"key": "size", "kind": "colour"}, {"key": "rows", "kind": "rows", "fields": []}]},
            {"id": "w", "kind": "wait"},
            {"id": "x", "kind": "teleport"},
            {"id": "f", "kind": "set-fields", "fields": {}}
        ]);
        let errors = compile(steps.as_array().map(Vec::as_slice).unwrap_or_default(), &ok).err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "steps[0].id",
            "steps[0].text",
            "steps[1].assignees",
            "steps[1].min_percent",
            "steps[2].form[0].kind",
            "steps[2].form[1].fields",
            "steps[3]",
            "steps[4]",
            "steps",
        ] {
            assert!(fields.contains(&expected), "{expected} missing from {fields:?}");
        }
    }
}
