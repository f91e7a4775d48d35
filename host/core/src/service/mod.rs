//! Use cases: one function per thing a caller can do. Each checks access, validates, and makes
//! its change in one transaction together with stage history, timeline and outbox events, so a
//! person, a robot, a trigger or a process all change state the same way.
//!
//! [`Core`] is the shared context (the store, the plugin runtimes, the wake-ups of the
//! background loops, the caches of configuration) with the helpers every use case shares: the
//! one write path ([`Core::write`]), access checks and configuration transactions. The use
//! cases are grouped by aggregate, each a small view borrowing the context and reached through
//! an accessor: [`Core::items`], [`Core::types`], [`Core::people`], [`Core::tasks`],
//! [`Core::assignments`], [`Core::notifications`], [`Core::processes`], [`Core::plugins`],
//! [`Core::robots`], [`Core::triggers`], [`Core::schedules`], [`Core::webhooks`],
//! [`Core::files`] and [`Core::events`].

/// Defaults of request bodies, shared by every binding (`#[serde(default = "...")]`).
pub(crate) mod defaults {
    /// `true`: for flags that are on unless the body says otherwise (`active`, `has_stages`, ...).
    pub fn yes() -> bool {
        true
    }

    /// `latest`, the version requirement every plugin binding starts with.
    pub fn latest() -> String {
        "latest".into()
    }

    /// `{}`, an empty config.
    pub fn empty_object() -> serde_json::Value {
        serde_json::Value::Object(Default::default())
    }
}

pub mod assignees;
pub mod assignments;
pub mod auth;
pub mod builtins;
pub mod catalog;
pub mod events;
pub mod files;
pub mod items;
pub mod list;
pub mod notifications;
pub mod people;
pub mod plugin_host;
pub mod plugins;
pub mod processes;
pub mod robot_queue;
pub mod robots;
pub mod schedules;
pub mod tasks;
pub mod triggers;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use voronka_model::FieldError;
use voronka_model::access::{Access, Principal};
use voronka_model::actor::Actor;
use voronka_model::entity_type::TypeSchema;
use voronka_store::catalog::Catalog;
use voronka_store::{Store, StoreError, Tx};

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The named thing does not exist (or the caller may not know it exists).
    #[error("{0}")]
    NotFound(String),
    /// Input is invalid; each problem names its field.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// The caller's roles do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// A person tried to move an item by hand in a funnel whose items only automation (or only
    /// administrators) may move: its `manual_moves` setting.
    #[error("{0}")]
    AutomaticMovesOnly(String),
    /// The request conflicts with the current state (duplicate key, item in use, ...).
    #[error("{0}")]
    Conflict(String),
    /// The input is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// `If-Match` named another version than the current one.
    #[error("the item changed: version {current} is current")]
    PreconditionFailed {
        /// The current version.
        current: i64,
    },
    /// The store failed: the database, the file store, or a stored row that cannot be read back.
    /// Not the caller's fault (the API answers 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<voronka_store::DbError> for ServiceError {
    fn from(e: voronka_store::DbError) -> Self {
        ServiceError::Store(StoreError::Db(e))
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Validation(vec![e])
    }
}

impl ServiceError {
    /// The error in words, with every field of a validation error.
    pub fn describe(&self) -> String {
        match self {
            ServiceError::Validation(errors) => {
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            }
            other => other.to_string(),
        }
    }

    /// A validation error with one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Validation(vec![FieldError::new(field, message)])
    }
}

/// Result of use cases.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Who is calling: the principal whose access is checked and the actor recorded on changes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whose access is checked: a user's admin flag and role grants, or full access for
    /// automation.
    pub principal: Arc<Principal>,
    /// Recorded author of changes.
    pub actor: Actor,
    /// How many automation steps led to this call (0 for a person); bounds robot chains.
    pub depth: u32,
}

impl Caller {
    /// A user acting through the API.
    pub fn user(principal: Arc<Principal>) -> Caller {
        let actor = Actor::User { id: principal.user_id };
        Caller { principal, actor, depth: 0 }
    }

    /// Automation acting with full access to items (its plugin's capabilities are checked by
    /// the runtime), recorded as `actor`, `depth` steps into a chain.
    pub fn automation(actor: Actor, depth: u32) -> Caller {
        let principal = Arc::new(Principal { user_id: 0, is_admin: true, roles: Vec::new() });
        Caller { principal, actor, depth }
    }
}

/// The shared context of the use cases over one store: the plugin runtimes, the wake-ups of
/// the background loops, the data folder, and caches of the catalog, of principals and of
/// configuration that are reloaded whenever the configuration generation moves. The use cases
/// themselves are grouped by aggregate behind its accessors ([`Core::items`], ...).
pub struct Core {
    store: Store,
    runtime: Arc<voronka_runtime::Runtime>,
    signals: crate::automation::Signals,
    catalog: RwLock<Option<(i64, Arc<Catalog>)>>,
    principals: Mutex<HashMap<String, (i64, Arc<Principal>)>>,
    /// The host's data folder (the file store lives in `files/` under it).
    data_dir: std::path::PathBuf,
    /// Configuration read by every automation step, kept per configuration generation.
    caches: Caches,
    /// A transaction queued robot runs since the workers were last woken.
    jobs_queued: std::sync::atomic::AtomicBool,
}

/// Robot bindings for one configuration generation: whether any exists, and those of each
/// (type, funnel, stage) read so far.
#[derive(Default)]
struct StageRobots {
    generation: i64,
    any: Option<bool>,
    by_stage: HashMap<(String, String, String), Arc<Vec<voronka_store::robots::Robot>>>,
}

/// Caches of configuration, each valid for one configuration generation.
#[derive(Default)]
struct Caches {
    /// Stored versions of each plugin.
    plugin_versions: Mutex<(i64, HashMap<String, Vec<voronka_store::plugins::PluginVersion>>)>,
    /// Robot bindings by id (`None`: deleted).
    robots: Mutex<(i64, HashMap<i64, Option<voronka_store::robots::Robot>>)>,
    /// Robot bindings by (type, funnel, stage), in order.
    stage_robots: Mutex<StageRobots>,
    /// Compiled process templates by (key, version); versions never change.
    programs: Mutex<HashMap<(String, i64), Arc<voronka_model::process::Program>>>,
}

/// Items: create, read, change, move, delete; history, timeline, comments, listing.
#[derive(Clone, Copy)]
pub struct Items<'a> {
    core: &'a Core,
}

/// Entity types with their custom fields and funnels (the configuration of the catalog).
#[derive(Clone, Copy)]
pub struct Types<'a> {
    core: &'a Core,
}

/// People: users, departments, roles, API tokens, authentication, the first administrator, and
/// resolving assignees to users.
#[derive(Clone, Copy)]
pub struct People<'a> {
    core: &'a Core,
}

/// Tasks: create, read, list, change, complete; the overdue watch's marking.
#[derive(Clone, Copy)]
pub struct Tasks<'a> {
    core: &'a Core,
}

/// Assignments: people's parts in processes (approvals, requests for information).
#[derive(Clone, Copy)]
pub struct Assignments<'a> {
    core: &'a Core,
}

/// Notifications: writing them and each user's inbox.
#[derive(Clone, Copy)]
pub struct Notifications<'a> {
    core: &'a Core,
}

/// Business processes: templates and their compiled programs, and instances.
#[derive(Clone, Copy)]
pub struct Processes<'a> {
    core: &'a Core,
}

/// The plugin registry: uploads, versions, the built-in robots, resolving and loading plugins.
#[derive(Clone, Copy)]
pub struct Plugins<'a> {
    core: &'a Core,
}

/// Robots bound to stages, and the robot runs queued when items enter stages.
#[derive(Clone, Copy)]
pub struct Robots<'a> {
    core: &'a Core,
}

/// Triggers on stages: their configuration, which one moves an item, the inbound webhook.
#[derive(Clone, Copy)]
pub struct Triggers<'a> {
    core: &'a Core,
}

/// Schedules: robot plugins run on a timetable over the items of a scope.
#[derive(Clone, Copy)]
pub struct Schedules<'a> {
    core: &'a Core,
}

/// Outgoing webhooks: subscriptions and their delivery log.
#[derive(Clone, Copy)]
pub struct Webhooks<'a> {
    core: &'a Core,
}

/// The file store: uploads, metadata and bytes of files, files of an item.
#[derive(Clone, Copy)]
pub struct Files<'a> {
    core: &'a Core,
}

/// The domain event stream, read for audit and debugging.
#[derive(Clone, Copy)]
pub struct Events<'a> {
    core: &'a Core,
}

impl Core {
    /// Wraps a migrated store, the plugin runtimes and the data folder.
    pub fn new(store: Store, runtime: Arc<voronka_runtime::Runtime>, data_dir: std::path::PathBuf) -> Core {
        Core {
            data_dir,
            caches: Caches::default(),
            store,
            runtime,
            signals: Default::default(),
            catalog: RwLock::new(None),
            principals: Mutex::new(HashMap::new()),
            jobs_queued: Default::default(),
        }
    }

    /// Items: create, read, change, move, delete; history, timeline, comments, listing.
    pub fn items(&self) -> Items<'_> {
        Items { core: self }
    }

    /// Entity types, custom fields and funnels.
    pub fn types(&self) -> Types<'_> {
        Types { core: self }
    }

    /// Users, departments, roles, tokens and authentication; assignee resolution.
    pub fn people(&self) -> People<'_> {
        People { core: self }
    }

    /// Tasks: create, read, list, change, complete; the deadline watch marks overdue ones.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { core: self }
    }

    /// Assignments of processes.
    pub fn assignments(&self) -> Assignments<'_> {
        Assignments { core: self }
    }

    /// Notifications: written by changes and automation, listed and marked read by their
    /// recipient.
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { core: self }
    }

    /// Process templates and instances.
    pub fn processes(&self) -> Processes<'_> {
        Processes { core: self }
    }

    /// The plugin registry.
    pub fn plugins(&self) -> Plugins<'_> {
        Plugins { core: self }
    }

    /// Robots bound to stages and their queued runs.
    pub fn robots(&self) -> Robots<'_> {
        Robots { core: self }
    }

    /// Triggers on stages: list, create, change, delete; which trigger moves an item; inbound
    /// webhook calls.
    pub fn triggers(&self) -> Triggers<'_> {
        Triggers { core: self }
    }

    /// Schedules that run a robot plugin on a cron timetable over a scope of items
    /// (administrators).
    pub fn schedules(&self) -> Schedules<'_> {
        Schedules { core: self }
    }

    /// Outgoing webhook subscriptions and their delivery log (administrators).
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { core: self }
    }

    /// The file store: uploads, metadata, reading a file, the files of an item.
    pub fn files(&self) -> Files<'_> {
        Files { core: self }
    }

    /// The domain event stream.
    pub fn events(&self) -> Events<'_> {
        Events { core: self }
    }

    /// Wake-ups for the background loops.
    pub fn signals(&self) -> &crate::automation::Signals {
        &self.signals
    }

    /// Tells the readers of the event stream that events were committed.
    pub fn committed(&self) {
        self.signals.events_committed();
        if self.jobs_queued.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.signals.jobs.notify_waiters();
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The plugin runtimes (Wasm and Rhai) with their loaded plugins; also checks and evaluates
    /// conditions.
    pub fn runtime(&self) -> &Arc<voronka_runtime::Runtime> {
        &self.runtime
    }

    /// The current catalog of types, fields and funnels.
    pub async fn catalog(&self) -> ServiceResult<Arc<Catalog>> {
        let generation = self.store.generation().await?;
        if let Ok(guard) = self.catalog.read()
            && let Some((cached, catalog)) = guard.as_ref()
            && *cached == generation
        {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(voronka_store::catalog::load(self.store.meta()).await?);
        if let Ok(mut guard) = self.catalog.write() {
            *guard = Some((generation, catalog.clone()));
        }
        Ok(catalog)
    }

    /// Commits a configuration change and tells the caches.
    async fn commit_config(&self, tx: Tx) -> ServiceResult<()> {
        tx.commit().await?;
        self.store.generation_committed();
        Ok(())
    }

    /// Starts a configuration-changing transaction (bumps the generation).
    async fn begin_config(&self) -> ServiceResult<Tx> {
        let mut tx = self.store.begin();
        self.store.bump_generation(&mut tx);
        Ok(tx)
    }

    /// The one write path of a use case: runs `change` in a transaction and commits it. A
    /// change reads the item it changes off the writer's turn and its write checks the version
    /// it read; when another writer changed the item first (a version check failed, in the
    /// change or at commit), nothing of it was stored, and it runs once more holding the
    /// writer's turn from the start, reading the item locked ([`Items::load_for_change`]),
    /// so the second attempt cannot lose the race.
    async fn write<T, F, Fut>(&self, mut change: F) -> ServiceResult<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: std::future::Future<Output = ServiceResult<(Tx, T)>>,
    {
        for attempt in 0..2 {
            let mut tx = self.store.begin();
            if attempt > 0 {
                tx.hold_turn().await?;
            }
            let (tx, value) = match change(tx).await {
                Err(ServiceError::Store(e)) if e.is_check_failed() => continue,
                other => other?,
            };
            match tx.commit().await {
                Ok(()) => {
                    self.committed();
                    return Ok(value);
                }
                Err(voronka_store::DbError::CheckFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict("the item kept changing while it was being changed; try again".into()))
    }

    /// The type's schema, or not-found when the caller cannot see the type at all.
    async fn visible_schema(&self, caller: &Caller, type_key: &str) -> ServiceResult<TypeSchema> {
        let catalog = self.catalog().await?;
        match catalog.get(type_key) {
            Some(schema) if caller.principal.best_access(type_key) > Access::None => Ok(schema.clone()),
            Some(_) => Err(ServiceError::Forbidden(format!("your roles give no access to `{type_key}` items"))),
            None => Err(ServiceError::NotFound(format!("no entity type `{type_key}`"))),
        }
    }

    /// Requires `need` access to the type's items (in `funnel`, when given).
    fn require(&self, caller: &Caller, type_key: &str, funnel: Option<&str>, need: Access) -> ServiceResult<()> {
        if caller.principal.access(type_key, funnel) >= need {
            return Ok(());
        }
        let place = funnel.map(|f| format!(" in funnel `{f}`")).unwrap_or_default();
        Err(ServiceError::Forbidden(format!("{} access to `{type_key}` items{place} is required", need.as_str())))
    }

    /// Checks a condition: a Rhai expression of at most 4 KiB.
    fn check_condition(&self, condition: &str) -> Result<(), FieldError> {
        self.runtime.check_expression(condition).map_err(|e| FieldError::new("condition", e))
    }

    /// Takes up again, at once, the work the last stop of this host cut short: robot runs,
    /// process advances and webhook deliveries whose leases it held (call before the
    /// background work starts). Only on SQLite, whose database has this one host: on PostgreSQL
    /// another host may hold them, so they wait for their leases to end. Returns how many of
    /// each (robot runs, processes, deliveries).
    pub async fn resume_interrupted_work(&self) -> ServiceResult<(usize, usize, usize)> {
        if self.store.dialect() != voronka_store::Dialect::Sqlite {
            return Ok((0, 0, 0));
        }
        let mut tx = self.store.begin();
        let runs = voronka_store::jobs::QUEUE.end_leases(&mut tx).await?;
        let processes = voronka_store::processes::QUEUE.end_leases(&mut tx).await?;
        let deliveries = voronka_store::webhooks::QUEUE.end_leases(&mut tx).await?;
        tx.commit().await?;
        Ok((runs, processes, deliveries))
    }
}

/// The error of a version-checked write whose item another writer changed since it was read:
/// nothing of the transaction is stored, and [`Core::write`] runs the use case once more.
fn lost_race() -> ServiceError {
    ServiceError::Store(StoreError::Db(voronka_store::DbError::CheckFailed))
}

/// Trims a page fetched with one extra row and returns the cursor of the next page.
pub fn page_cursor<T>(rows: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Option<i64> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(id)
    } else {
        None
    }
}

/// Whose entries a list of people's work (tasks, assignments) shows, from its `user` and `all`
/// filters: `Some(user)` for one person's, `None` for everyone's (`all`), the caller's own when
/// neither is given. Only administrators see another user's or everyone's (403 otherwise).
pub(crate) fn list_owner(caller: &Caller, user: Option<i64>, all: bool, what: &str) -> ServiceResult<Option<i64>> {
    let own = caller.principal.user_id;
    match (user, all) {
        (Some(_), true) => Err(ServiceError::invalid("all", "give `user` or `all`, not both")),
        (None, true) if caller.principal.is_admin => Ok(None),
        (Some(user), false) if user == own || caller.principal.is_admin => Ok(Some(user)),
        (None, false) => Ok(Some(own)),
        (Some(_), false) | (None, true) => {
            Err(ServiceError::Forbidden(format!("only administrators list other people's {what}")))
        }
    }
}

/// Requires system administration rights.
pub(crate) fn require_admin(caller: &Caller) -> ServiceResult<()> {
    if caller.principal.is_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden("only administrators may do this".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Core;
    use voronka_store::Statement;

    /// After a crash, a SQLite host takes up at start the robot runs, process advances and
    /// webhook deliveries it held; work no one held is left as it is.
    #[tokio::test]
    async fn a_restarted_sqlite_host_takes_up_what_its_stop_cut_short() {
        let (dir, store) = voronka_store::scratch().await;
        let far = voronka_model::time::now_micros() + 3_600_000_000;
        let mut tx = store.begin();
        for (status, lease) in [("running", Some(far)), ("pending", None)] {
            tx.execute(
                Statement::new(
                    "INSERT INTO jobs (robot_id, item_id, type_key, funnel_key, stage_key, event_id, actor, depth, status, due_at, attempts, lease_until, created_at)
                     VALUES (1, 7, 'deal', 'default', 'new', 1, '{}', 0, $1, 0, 1, $2, 0)",
                )
                .bind(status)
                .bind(lease),
            )
            .await
            .expect("job");
        }
        for lease in [Some(far), None] {
            tx.execute(
                Statement::new(
                    "INSERT INTO process_instances (template_key, template_version, type_key, item_id, status, state, variables, runnable, lease_until, started_by, created_at, updated_at, version)
                     VALUES ('t', 1, 'deal', 7, 'running', '{}', '{}', 1, $1, '{}', 0, 0, 1)",
                )
                .bind(lease),
            )
            .await
            .expect("process");
        }
        for (status, lease) in [("sending", Some(far)), ("pending", None)] {
            tx.execute(
                Statement::new(
                    "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, next_at, lease_until, log, created_at)
                     VALUES (1, 1, $1, 1, 0, $2, '[]', 0)",
                )
                .bind(status)
                .bind(lease),
            )
            .await
            .expect("delivery");
        }
        tx.commit().await.expect("commit");
        let runtime = Arc::new(voronka_runtime::Runtime::new(None).expect("runtime"));
        let core = Core::new(store.clone(), runtime, dir.path().to_path_buf());
        assert_eq!(core.resume_interrupted_work().await.expect("resume"), (1, 1, 1));
        let leases = |table: &'static str| {
            let store = store.clone();
            async move {
                let select = voronka_store::Statement::new(format!("SELECT lease_until FROM {table} ORDER BY id"));
                store.reader().scalars::<Option<i64>>(select).await.expect("select")
            }
        };
        assert_eq!(leases("jobs").await, vec![Some(0), None]);
        // An ended lease is 0 in every queue: run out, so the row is taken over at once.
        assert_eq!(leases("process_instances").await, vec![Some(0), None]);
        assert_eq!(leases("webhook_deliveries").await, vec![Some(0), None]);
        // A second start finds nothing held.
        assert_eq!(core.resume_interrupted_work().await.expect("resume"), (0, 0, 0));
        store.close().await;
    }
}
