//! Use cases: one function per thing a caller can do. Each checks access, validates, and makes
//! its change in one transaction together with stage history, timeline and outbox events, so a
//! person, a robot, a trigger or a process all change state the same way.

/// Defaults of request bodies, shared by every binding (`#[serde(default = "...")]`).
pub(crate) mod defaults {
    /// `true`.
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
use voronka_model::access::Principal;
use voronka_model::actor::Actor;
use voronka_store::catalog::Catalog;
use voronka_store::{Store, StoreError};

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
    /// Storage failed.
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
    /// Access rights.
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

/// The host's use cases over one store, with caches of the catalog and of principals that are
/// reloaded whenever the configuration generation moves.
pub struct Service {
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

impl Service {
    /// Wraps a migrated store, the plugin runtimes and the data folder.
    pub fn new(store: Store, runtime: Arc<voronka_runtime::Runtime>, data_dir: std::path::PathBuf) -> Service {
        Service {
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
    async fn commit_config(&self, tx: voronka_store::Tx) -> ServiceResult<()> {
        tx.commit().await?;
        self.store.generation_committed();
        Ok(())
    }

    /// Starts a configuration-changing transaction (bumps the generation).
    async fn begin_config(&self) -> ServiceResult<voronka_store::Tx> {
        let mut tx = self.store.begin();
        self.store.bump_generation(&mut tx);
        Ok(tx)
    }
}

/// Requires system administration rights.
fn require_admin(caller: &Caller) -> ServiceResult<()> {
    if caller.principal.is_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden("only administrators may do this".into()))
    }
}
