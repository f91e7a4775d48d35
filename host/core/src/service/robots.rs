//! Robots bound to stages: list, bind, change, unbind. The [`super::Robots`] aggregate
//! (`core.robots()`), with the runs queued when items enter stages (`robot_queue.rs`).

use serde::Deserialize;
use serde_json::Value;
use voronka_model::plugin::World;

use super::{Caller, Robots, ServiceError, ServiceResult};
use voronka_model::FieldError;
use voronka_model::access::Access;
use voronka_model::field::FieldKind;
use voronka_store::robots::{self as repo, RelativeTo, Robot, RobotMode};

/// Longest delay of a robot: one year.
pub const MAX_DELAY_S: i64 = 366 * 24 * 3600;

/// `POST .../robots` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotRequest {
    /// Plugin name (world `robot`).
    pub plugin: String,
    /// `latest` (default) or a semver requirement such as `^1.2`.
    #[serde(default = "super::defaults::latest")]
    pub version: String,
    /// JSON config handed to the plugin (default `{}`).
    #[serde(default = "super::defaults::empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// Rhai expression over `item`; the robot runs only when true.
    #[serde(default)]
    pub condition: Option<String>,
    /// Seconds to wait after the item enters the stage: 0 (default) to 31622400 (366 days).
    #[serde(default)]
    pub delay_s: i64,
    /// Instead of a delay: run at a date field's time plus an offset, e.g.
    /// `{"field": "install_date", "offset_s": -86400}` (a day before).
    #[serde(default)]
    pub relative_to: Option<RelativeTo>,
    /// `after-previous` (default) or `parallel`.
    #[serde(default)]
    pub mode: Option<RobotMode>,
    /// Position among the stage's robots (default: last).
    #[serde(default)]
    pub order: Option<i64>,
}

/// Reads a key that may be `null`: absent stays `None`, `null` is `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH .../robots/{id}` body: present keys change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotPatch {
    /// New plugin; it must exist and have a robot version matching `version`. Absent or `null`
    /// keeps it.
    pub plugin: Option<String>,
    /// New version requirement: `latest`, `*` or a semver requirement such as `^1.2`. Absent or
    /// `null` keeps it.
    pub version: Option<String>,
    /// New config for the plugin, replacing the old one whole. Absent or `null` keeps it.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Condition; `""` removes it.
    pub condition: Option<String>,
    /// New delay after the item enters the stage, 0 to 31622400 seconds (366 days); must be 0
    /// while `relative_to` is set. Absent or `null` keeps it.
    pub delay_s: Option<i64>,
    /// Time relative to a date field; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RelativeTo>)]
    pub relative_to: Option<Option<RelativeTo>>,
    /// `after-previous` (wait for the robot before it to finish) or `parallel` (start
    /// alongside the others). Absent or `null` keeps it.
    pub mode: Option<RobotMode>,
    /// New position among the stage's robots, which run by ascending order (ties by id). Absent
    /// or `null` keeps it.
    pub order: Option<i64>,
}

impl Robots<'_> {
    async fn check(&self, robot: &Robot) -> ServiceResult<()> {
        let mut errors = Vec::new();
        match self.core.plugins().check_binding(&robot.plugin, &robot.version, World::Robot).await? {
            Err(e) => errors.push(e),
            Ok(version) if version.builtin => errors.extend(self.check_builtin_config(robot).await?),
            Ok(_) => {}
        }
        if let Some(condition) = &robot.condition
            && let Err(e) = self.core.check_condition(condition)
        {
            errors.push(e);
        }
        if !(0..=MAX_DELAY_S).contains(&robot.delay_s) {
            errors.push(FieldError::new("delay_s", format!("a delay is 0 to {MAX_DELAY_S} seconds")));
        }
        if let Some(relative) = &robot.relative_to {
            let schema = self.core.catalog().await?.get(&robot.type_key).cloned();
            match schema.as_ref().and_then(|s| s.field(&relative.field)).map(|f| f.kind) {
                Some(FieldKind::Date | FieldKind::Datetime) => {}
                Some(_) => errors.push(FieldError::new(
                    "relative_to.field",
                    format!("`{}` is not a date or datetime field", relative.field),
                )),
                None => errors.push(FieldError::new(
                    "relative_to.field",
                    format!("no field `{}` in type `{}`", relative.field, robot.type_key),
                )),
            }
            if relative.offset_s.abs() > MAX_DELAY_S {
                errors.push(FieldError::new(
                    "relative_to.offset_s",
                    format!("an offset is at most {MAX_DELAY_S} seconds either way"),
                ));
            }
            if robot.delay_s != 0 {
                errors.push(FieldError::new(
                    "delay_s",
                    "a robot runs either after a delay or relative to a field, not both",
                ));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ServiceError::Validation(errors)) }
    }

    /// The problems of a built-in robot's config: keys it does not read, placeholders that do
    /// not exist, and for `move-to-stage` a stage missing from the type's funnels.
    async fn check_builtin_config(&self, robot: &Robot) -> ServiceResult<Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(known) = super::builtins::config_keys(&robot.plugin) else { return Ok(errors) };
        let Some(config) = robot.config.as_object() else {
            errors.push(FieldError::new("config", "must be a JSON object"));
            return Ok(errors);
        };
        for key in config.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.push(FieldError::new(
                format!("config.{key}"),
                format!("unknown key `{key}`: the {} robot takes {}", robot.plugin, known.join(", ")),
            ));
        }
        let catalog = self.core.catalog().await?;
        let Some(schema) = catalog.get(&robot.type_key) else { return Ok(errors) };
        let fields: Vec<&str> = schema.fields.iter().map(|f| f.key.as_str()).collect();
        for key in super::builtins::text_keys(&robot.plugin) {
            if let Some(text) = config.get(*key).and_then(Value::as_str)
                && let Err(message) = voronka_model::placeholders::check(text, &fields, false)
            {
                errors.push(FieldError::new(format!("config.{key}"), message));
            }
        }
        if robot.plugin == "move-to-stage" {
            let text = |key: &str| config.get(key).and_then(Value::as_str);
            let back = config.get("return").and_then(Value::as_bool).unwrap_or(false);
            match (back, text("stage"), text("funnel")) {
                (false, None, _) => errors.push(FieldError::new("config.stage", "a stage, or \"return\": true")),
                (true, _, Some(_)) => errors.push(FieldError::new(
                    "config.funnel",
                    "a return goes back to the funnel the item came from; name no funnel",
                )),
                (_, Some(stage), funnel) => {
                    let funnels: Vec<_> = match funnel {
                        Some(key) => schema.funnel(key).into_iter().collect(),
                        None if back => schema.funnels.iter().collect(),
                        None => schema.funnel(&robot.funnel).into_iter().collect(),
                    };
                    if let Some(key) = funnel
                        && funnels.is_empty()
                    {
                        errors.push(FieldError::new(
                            "config.funnel",
                            format!("no funnel `{key}` in type `{}`", robot.type_key),
                        ));
                    } else if !funnels.iter().any(|f| f.stage(stage).is_some()) {
                        let place = funnel.map_or_else(
                            || {
                                if back {
                                    format!("the funnels of type `{}`", robot.type_key)
                                } else {
                                    format!("funnel `{}`", robot.funnel)
                                }
                            },
                            |f| format!("funnel `{f}`"),
                        );
                        errors.push(FieldError::new("config.stage", format!("no stage `{stage}` in {place}")));
                    }
                }
                (true, None, None) => {}
            }
        }
        Ok(errors)
    }

    /// The robots of a stage, by order.
    pub async fn list(&self, caller: &Caller, type_key: &str, funnel: &str, stage: &str) -> ServiceResult<Vec<Robot>> {
        self.core.types().check_stage(caller, type_key, funnel, stage, Access::Read).await?;
        Ok(repo::on_stage(self.core.store.reader(), type_key, funnel, stage).await?)
    }

    /// Binds a robot to a stage (needs admin access to the type in that funnel). It runs for
    /// items entering the stage from now on, never for items already there.
    pub async fn create(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        input: RobotRequest,
    ) -> ServiceResult<Robot> {
        self.core.types().check_stage(caller, type_key, funnel, stage, Access::Admin).await?;
        let existing = repo::on_stage(self.core.store.reader(), type_key, funnel, stage).await?;
        let mut robot = Robot {
            id: 0,
            type_key: type_key.to_string(),
            funnel: funnel.to_string(),
            stage: stage.to_string(),
            plugin: input.plugin,
            version: input.version,
            config: input.config,
            condition: input.condition.filter(|c| !c.trim().is_empty()),
            delay_s: input.delay_s,
            relative_to: input.relative_to,
            mode: input.mode.unwrap_or(RobotMode::AfterPrevious),
            order: input.order.unwrap_or_else(|| existing.iter().map(|r| r.order).max().unwrap_or(0) + 1),
            created_at: voronka_model::time::to_rfc3339(voronka_model::time::now_micros()),
        };
        self.check(&robot).await?;
        let mut tx = self.core.begin_config().await?;
        robot.id = repo::insert(&mut tx, &robot).await?;
        self.core.commit_config(tx).await?;
        self.core.plugins().warm_bound().await?;
        Ok(robot)
    }

    /// The robot with this id on this stage.
    async fn on_stage(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        id: i64,
        need: Access,
    ) -> ServiceResult<Robot> {
        self.core.types().check_stage(caller, type_key, funnel, stage, need).await?;
        match repo::get(self.core.store.reader(), id).await? {
            Some(r) if r.type_key == type_key && r.funnel == funnel && r.stage == stage => Ok(r),
            _ => Err(ServiceError::NotFound(format!("no robot {id} on this stage"))),
        }
    }

    /// Changes a robot on this stage (needs admin access to the type in that funnel): present
    /// keys change and the result is checked as at binding. `NotFound` when no such robot is on
    /// this stage.
    pub async fn update(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        id: i64,
        patch: RobotPatch,
    ) -> ServiceResult<Robot> {
        let mut robot = self.on_stage(caller, type_key, funnel, stage, id, Access::Admin).await?;
        if let Some(v) = patch.plugin {
            robot.plugin = v;
        }
        if let Some(v) = patch.version {
            robot.version = v;
        }
        if let Some(v) = patch.config {
            robot.config = v;
        }
        if let Some(v) = patch.condition {
            robot.condition = Some(v).filter(|c| !c.trim().is_empty());
        }
        if let Some(v) = patch.delay_s {
            robot.delay_s = v;
        }
        if let Some(v) = patch.relative_to {
            robot.relative_to = v;
        }
        if let Some(v) = patch.mode {
            robot.mode = v;
        }
        if let Some(v) = patch.order {
            robot.order = v;
        }
        self.check(&robot).await?;
        let mut tx = self.core.begin_config().await?;
        repo::update(&mut tx, &robot).await?;
        self.core.commit_config(tx).await?;
        self.core.plugins().warm_bound().await?;
        Ok(robot)
    }

    /// Unbinds a robot; its pending runs are cancelled.
    pub async fn delete(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        id: i64,
    ) -> ServiceResult<()> {
        self.on_stage(caller, type_key, funnel, stage, id, Access::Admin).await?;
        let mut tx = self.core.begin_config().await?;
        repo::delete(&mut tx, id).await?;
        self.core.commit_config(tx).await?;
        Ok(())
    }

    /// A robot binding by id, read once per configuration generation (binding changes move the
    /// generation, on every host); `None` when it is gone.
    pub async fn cached(&self, id: i64) -> ServiceResult<Option<Robot>> {
        let generation = self.core.store.generation().await?;
        if let Ok(cache) = self.core.caches.robots.lock()
            && cache.0 == generation
            && let Some(robot) = cache.1.get(&id)
        {
            return Ok(robot.clone());
        }
        let robot = repo::get(self.core.store.reader(), id).await?;
        if let Ok(mut cache) = self.core.caches.robots.lock() {
            if cache.0 != generation {
                *cache = (generation, Default::default());
            }
            cache.1.insert(id, robot.clone());
        }
        Ok(robot)
    }
}
