//! Business processes: templates (administrators; every change is a new version, and a running
//! instance keeps the version it started with), instances started by the API, by the
//! `start-process` robot or by another process, and terminated by people. The engine that
//! moves instances on lives in [`crate::automation::process`].
//!
//! The [`super::Processes`] aggregate (`core.processes()`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Caller, Processes, ServiceError, ServiceResult, require_admin};
use voronka_model::access::Access;
use voronka_model::item::ItemRef;
use voronka_model::plugin::World;
use voronka_model::process::{Instance, InstanceStatus, Program, State, Wait};
use voronka_model::template_check::{TemplateEnv, check_template};
use voronka_model::time::{now_micros, to_rfc3339};
use voronka_store::Tx;
use voronka_store::processes::{self as repo, StoredTemplate};

/// `POST /processes/templates` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TemplateRequest {
    /// Key; posting an existing key stores its next version.
    pub key: String,
    /// Key of the entity type its instances run on; every version of a key has the same.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Display title (trimmed); the key when blank or absent.
    #[serde(default)]
    pub title: String,
    /// The steps, run in order: at least one and at most 500 counting nested ones, each an object
    /// with a unique `id` (a key) and a `kind` (`task`, `approval`, `request-info`, `set-fields`,
    /// `condition`, `parallel`, `wait`, `notify`, `start-process`, `move` or `plugin`). Checked
    /// against the type and the plugins: unknown keys, assignees, fields, stages, plugins and
    /// text placeholders are refused with their path (`steps[2].assignee.relation`).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
}

/// `POST /processes` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Key of the template to run, in its latest version; it must run on the item's type.
    pub template: String,
    /// The item it runs on.
    pub item: ItemRef,
    /// Parameters: the initial variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
}

/// Most automation steps in a row before a process start is refused (a process starting
/// itself, or robots, triggers and processes feeding each other).
const MAX_PROCESS_DEPTH: u32 = crate::automation::MAX_CHAIN_DEPTH as u32;

impl Processes<'_> {
    /// Compiles template steps, checking expressions with the shared Rhai engine.
    pub fn compile_template(&self, steps: &[Value]) -> ServiceResult<Program> {
        let runtime = self.core.runtime();
        voronka_model::process::compile(steps, &|e| runtime.check_expression(e)).map_err(ServiceError::Validation)
    }

    /// Stores a template, as version 1 or as the next version of its key.
    pub async fn save_template(&self, caller: &Caller, input: TemplateRequest) -> ServiceResult<StoredTemplate> {
        require_admin(caller)?;
        let mut errors = Vec::new();
        if !voronka_model::is_valid_key(&input.key) {
            errors.push(voronka_model::FieldError::new("key", "a key: lower-case letters, digits, - and _"));
        }
        let catalog = self.core.catalog().await?;
        let schema = catalog.get(&input.type_key);
        if schema.is_none() {
            errors.push(voronka_model::FieldError::new("type", format!("no entity type `{}`", input.type_key)));
        }
        if let Err(ServiceError::Validation(more)) = self.compile_template(&input.steps) {
            errors.extend(more);
        }
        if let Some(schema) = schema {
            errors.extend(self.check_against(schema, &input.steps).await?);
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let now = now_micros();
        let mut template = StoredTemplate {
            title: if input.title.trim().is_empty() { input.key.clone() } else { input.title.trim().to_string() },
            key: input.key,
            version: 0,
            type_key: input.type_key,
            steps: Value::Array(input.steps),
            created_at: to_rfc3339(now),
        };
        if let Some(latest) = repo::template(self.core.store.reader(), &template.key, None).await?
            && latest.type_key != template.type_key
        {
            return Err(ServiceError::invalid(
                "type",
                format!("template `{}` runs on `{}`", template.key, latest.type_key),
            ));
        }
        let mut tx = self.core.store.begin();
        template.version = repo::insert_template(&mut tx, &template, now).await?;
        tx.commit().await?;
        Ok(template)
    }

    /// The problems of template steps against the type they run on and the plugins installed
    /// (see [`voronka_model::template_check`]).
    async fn check_against(
        &self,
        schema: &voronka_model::entity_type::TypeSchema,
        steps: &[Value],
    ) -> ServiceResult<Vec<voronka_model::FieldError>> {
        let installed = voronka_store::plugins::list(self.core.store.reader()).await?;
        let plugin = |name: &str, requirement: &str| {
            let versions: Vec<_> = installed.iter().filter(|v| v.name == name).cloned().collect();
            super::plugins::binding(&versions, name, requirement, World::BpStep).err()
        };
        let env = TemplateEnv { schema, plugin: &plugin };
        Ok(check_template(steps, &env))
    }

    /// The latest version of every template of a type the caller may write.
    pub async fn list_templates(&self, caller: &Caller) -> ServiceResult<Vec<StoredTemplate>> {
        let all = repo::latest_templates(self.core.store.reader()).await?;
        Ok(all.into_iter().filter(|t| caller.principal.best_access(&t.type_key) >= Access::Write).collect())
    }

    /// A template's latest version, or a given one, for those who may write its type's items.
    pub async fn read_template(
        &self,
        caller: &Caller,
        key: &str,
        version: Option<i64>,
    ) -> ServiceResult<StoredTemplate> {
        match self.get_template(key, version).await {
            Ok(t) if caller.principal.best_access(&t.type_key) >= Access::Write => Ok(t),
            _ => Err(ServiceError::NotFound(format!("no process template `{key}`"))),
        }
    }

    /// A template's latest version, or a given one.
    pub async fn get_template(&self, key: &str, version: Option<i64>) -> ServiceResult<StoredTemplate> {
        repo::template(self.core.store.reader(), key, version)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no process template `{key}`")))
    }

    /// Starts a process on an item the caller may change.
    pub async fn start(&self, caller: &Caller, input: StartRequest) -> ServiceResult<Instance> {
        let instance = self
            .core
            .write(|mut tx| {
                let params = input.params.clone();
                let input = &input;
                async move {
                    let instance = self.start_in(&mut tx, caller, &input.template, &input.item, params, None).await?;
                    Ok((tx, instance))
                }
            })
            .await?;
        self.core.signals().processes.notify_one();
        Ok(instance)
    }

    /// The same inside `tx`; `parent` is the process starting it, if any.
    pub async fn start_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        template_key: &str,
        item: &ItemRef,
        params: Map<String, Value>,
        parent: Option<i64>,
    ) -> ServiceResult<Instance> {
        if caller.depth >= MAX_PROCESS_DEPTH {
            return Err(ServiceError::Conflict(format!(
                "automation chain stopped: {MAX_PROCESS_DEPTH} automation steps in a row would start this process"
            )));
        }
        let template = repo::template(self.core.store.reader(), template_key, None)
            .await?
            .ok_or_else(|| ServiceError::invalid("template", format!("no process template `{template_key}`")))?;
        if template.type_key != item.type_key {
            return Err(ServiceError::invalid(
                "item",
                format!("template `{template_key}` runs on `{}` items, not `{}`", template.type_key, item.type_key),
            ));
        }
        let found = self.core.items().load_in(tx, caller, &item.type_key, item.id).await?;
        self.core.require(caller, &found.type_key, found.funnel.as_deref(), Access::Write)?;
        let now = now_micros();
        let mut instance = Instance {
            id: 0,
            template: template.key.clone(),
            template_version: template.version,
            item: item.clone(),
            parent,
            status: InstanceStatus::Running,
            variables: params,
            current_steps: Vec::new(),
            state: State::start(),
            error: None,
            started_by: caller.actor.clone(),
            created_at: to_rfc3339(now),
            updated_at: to_rfc3339(now),
            finished_at: None,
            version: 1,
        };
        instance.id = repo::insert_instance(tx, &instance, i64::from(caller.depth), now).await?;
        let text = format!("Started {} version {}", template.key, template.version);
        repo::log(tx, instance.id, None, &text, &json!({ "by": caller.actor }), now);
        Ok(instance)
    }

    /// Instances, optionally of one item and status (administrators, or anyone reading the
    /// item they filter by).
    pub async fn list(
        &self,
        caller: &Caller,
        item: Option<ItemRef>,
        status: Option<InstanceStatus>,
        after: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<Instance>, Option<i64>)> {
        match &item {
            Some(i) => {
                self.core.items().get(caller, &i.type_key, i.id).await?;
            }
            None => require_admin(caller)?,
        }
        let mut rows = repo::instances(self.core.store.reader(), item.as_ref(), status, after, limit).await?;
        let next = super::page_cursor(&mut rows, limit, |i| i.id);
        for instance in &mut rows {
            self.fill_current_steps(instance).await;
        }
        Ok((rows, next))
    }

    /// One instance with its log, for those who may read its item.
    pub async fn get(&self, caller: &Caller, id: i64) -> ServiceResult<(Instance, Vec<Value>)> {
        let mut conn = self.core.store.reader().clone();
        let mut instance =
            repo::instance(&mut conn, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no process {id}")))?;
        drop(conn);
        if self.core.items().get(caller, &instance.item.type_key, instance.item.id).await.is_err() {
            return Err(ServiceError::NotFound(format!("no process {id}")));
        }
        self.fill_current_steps(&mut instance).await;
        let log = repo::log_of(self.core.store.reader(), id).await?;
        Ok((instance, log))
    }

    /// Names the steps an instance's threads stand at.
    async fn fill_current_steps(&self, instance: &mut Instance) {
        if let Ok(program) = self.program(&instance.template, instance.template_version).await {
            instance.current_steps =
                instance.state.threads.iter().filter_map(|t| program.step_of(t.pc).map(|s| s.id.clone())).collect();
        }
    }

    /// Terminates a running process (administrators, or those who may change its item); its
    /// open assignments are cancelled, and a parent waiting for it goes on.
    pub async fn terminate(&self, caller: &Caller, id: i64) -> ServiceResult<Instance> {
        let (instance, _) = self.get(caller, id).await?;
        let item = self.core.items().get(caller, &instance.item.type_key, instance.item.id).await?;
        self.core.require(caller, &item.type_key, item.funnel.as_deref(), Access::Write)?;
        let now = now_micros();
        let mut tx = self.core.store.begin();
        if !repo::terminate(&mut tx, id, now).await? {
            return Err(ServiceError::Conflict(format!("process {id} is not running")));
        }
        repo::log(&mut tx, id, None, "Terminated", &json!({ "by": caller.actor }), now);
        if let Some(parent) = instance.parent {
            repo::resume(&mut tx, parent, i64::from(caller.depth));
        }
        tx.commit().await?;
        self.core.signals().processes.notify_one();
        Ok(self.get(caller, id).await?.0)
    }

    /// An instance and its template version's program.
    pub async fn instance_program(&self, id: i64) -> ServiceResult<(Instance, Arc<Program>)> {
        let mut conn = self.core.store.reader().clone();
        let instance =
            repo::instance(&mut conn, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no process {id}")))?;
        drop(conn);
        let program = self.program(&instance.template, instance.template_version).await?;
        Ok((instance, program))
    }

    /// A template version's program, compiled once (versions never change).
    pub async fn program(&self, key: &str, version: i64) -> ServiceResult<Arc<Program>> {
        let cache_key = (key.to_string(), version);
        if let Ok(cache) = self.core.caches.programs.lock()
            && let Some(program) = cache.get(&cache_key)
        {
            return Ok(program.clone());
        }
        let template = self.get_template(key, Some(version)).await?;
        let steps = template.steps.as_array().cloned().unwrap_or_default();
        let program = Arc::new(self.compile_template(&steps)?);
        if let Ok(mut cache) = self.core.caches.programs.lock() {
            cache.insert(cache_key, program.clone());
        }
        Ok(program)
    }

    /// Whether a waiting thread's wait for a task or a time is over.
    pub async fn wait_is_over(&self, tx: &mut Tx, wait: &Wait) -> ServiceResult<bool> {
        Ok(match wait {
            Wait::Task { task } => repo::task_status(tx, *task).await?.is_none_or(|s| s == "completed"),
            Wait::Timer { at } => *at <= now_micros(),
            // The engine looks at these itself (they record outcomes).
            Wait::Child { .. } | Wait::Assignments { .. } | Wait::Event { .. } => false,
        })
    }
}
