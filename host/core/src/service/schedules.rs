//! Schedules: run a robot plugin on a timetable (cron in a time zone) over the items of a scope,
//! e.g. every day at 09:00 Moscow time over the deals in stage `new` (administrators).
//!
//! The [`super::Schedules`] aggregate (`core.schedules()`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use voronka_model::plugin::World;

use super::{Caller, Schedules, ServiceError, ServiceResult, require_admin};
use voronka_model::FieldError;
use voronka_model::schedule::Timetable;
use voronka_model::time::{Micros, now_micros, to_rfc3339};
use voronka_store::schedules::{self as repo, StoredSchedule};

/// Which items a schedule runs over.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Key of the entity type whose items it runs over, e.g. `deal`; must exist, and cannot change
    /// once the schedule is created.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Funnel (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<String>,
    /// Stage (any when absent; needs `funnel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// `POST /schedules` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Free text saying what the schedule is for (default empty).
    #[serde(default)]
    pub title: String,
    /// Cron: `min hour day month weekday` (`0 9 * * *`), or six/seven fields with seconds first.
    pub cron: String,
    /// IANA time zone of the expression (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Robot plugin run for each item.
    pub plugin: String,
    /// `latest` (default) or a semver requirement.
    #[serde(default = "super::defaults::latest")]
    pub version: String,
    /// Config handed to the plugin (default `{}`).
    #[serde(default = "super::defaults::empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// The items it runs over.
    pub scope: Scope,
    /// Paused schedules do not fire (default `true`).
    #[serde(default = "super::defaults::yes")]
    pub active: bool,
}

fn utc() -> String {
    "UTC".into()
}

/// `PATCH /schedules/{id}` body: present keys change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// New title (free text). Absent or `null` keeps it.
    pub title: Option<String>,
    /// New cron expression, as in `POST /schedules`; the next firing is computed anew. Absent or
    /// `null` keeps it.
    pub cron: Option<String>,
    /// New IANA time zone, e.g. `Europe/Moscow`; the next firing is computed anew. Absent or
    /// `null` keeps it.
    pub timezone: Option<String>,
    /// New robot plugin; it must exist and have a robot version matching `version`. Absent or
    /// `null` keeps it.
    pub plugin: Option<String>,
    /// New version requirement: `latest`, `*` or a semver requirement such as `^1.2`. Absent or
    /// `null` keeps it.
    pub version: Option<String>,
    /// New config for the plugin, replacing the old one whole. Absent or `null` keeps it.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// New scope, replacing funnel and stage (an absent one means any); its `type` must be the
    /// schedule's. Absent or `null` keeps the scope.
    pub scope: Option<Scope>,
    /// `false` pauses the schedule, `true` resumes it; the next firing is computed anew. Absent
    /// or `null` keeps it.
    pub active: Option<bool>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    /// The schedule's id, as in `/schedules/{id}`.
    pub id: i64,
    /// What the schedule is for (may be empty).
    pub title: String,
    /// Its cron expression, as given.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// Name of the robot plugin run for each item.
    pub plugin: String,
    /// The version requirement resolved at each firing: `latest`, `*` or a semver requirement.
    pub version: String,
    /// The config handed to the plugin.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The items it runs over.
    pub scope: Scope,
    /// Whether it fires; `false` while paused.
    pub active: bool,
    /// When it fires next (RFC 3339, UTC); `null` when paused or when the expression never fires
    /// again.
    pub next_run: Option<String>,
    /// When it last fired (RFC 3339, UTC); `null` before its first firing.
    pub last_run: Option<String>,
    /// When it was created.
    pub created_at: String,
}

impl From<StoredSchedule> for Schedule {
    fn from(s: StoredSchedule) -> Schedule {
        Schedule {
            id: s.id,
            title: s.title,
            cron: s.cron,
            timezone: s.timezone,
            plugin: s.plugin,
            version: s.version,
            config: s.config,
            scope: Scope { type_key: s.type_key, funnel: s.funnel, stage: s.stage },
            active: s.active,
            next_run: s.next_at.map(to_rfc3339),
            last_run: s.last_run_at.map(to_rfc3339),
            created_at: s.created_at,
        }
    }
}

/// The next firing of a schedule after `now`: none when paused or never again.
pub fn next_firing(schedule: &StoredSchedule, now: Micros) -> Option<Micros> {
    if !schedule.active {
        return None;
    }
    Timetable::parse(&schedule.cron, &schedule.timezone).ok()?.next_after(now)
}

impl Schedules<'_> {
    /// Every schedule in id order. Administrators only.
    pub async fn list(&self, caller: &Caller) -> ServiceResult<Vec<Schedule>> {
        require_admin(caller)?;
        Ok(repo::all(self.core.store.reader()).await?.into_iter().map(Schedule::from).collect())
    }

    /// One schedule; `NotFound` when there is no such id. Administrators only.
    pub async fn get(&self, caller: &Caller, id: i64) -> ServiceResult<Schedule> {
        require_admin(caller)?;
        Ok(self.stored(id).await?.into())
    }

    async fn stored(&self, id: i64) -> ServiceResult<StoredSchedule> {
        repo::get(self.core.store.reader(), id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no schedule {id}")))
    }

    /// Creates a schedule; it first fires at the next time its expression names.
    pub async fn create(&self, caller: &Caller, input: ScheduleRequest) -> ServiceResult<Schedule> {
        require_admin(caller)?;
        let mut schedule = StoredSchedule {
            id: 0,
            title: input.title,
            cron: input.cron,
            timezone: input.timezone,
            plugin: input.plugin,
            version: input.version,
            config: input.config,
            type_key: input.scope.type_key,
            funnel: input.scope.funnel,
            stage: input.scope.stage,
            active: input.active,
            next_at: None,
            last_run_at: None,
            created_at: String::new(),
        };
        self.check(&schedule).await?;
        let now = now_micros();
        schedule.next_at = next_firing(&schedule, now);
        let mut tx = self.core.store.begin();
        schedule.id = repo::insert(&mut tx, &schedule, now).await?;
        tx.commit().await?;
        self.core.signals().schedules.notify_one();
        schedule.created_at = to_rfc3339(now);
        Ok(schedule.into())
    }

    /// Changes a schedule; its next firing is computed anew.
    pub async fn update(&self, caller: &Caller, id: i64, patch: SchedulePatch) -> ServiceResult<Schedule> {
        require_admin(caller)?;
        let mut schedule = self.stored(id).await?;
        let retimed = patch.cron.is_some() || patch.timezone.is_some() || patch.active.is_some();
        if let Some(v) = patch.title {
            schedule.title = v;
        }
        if let Some(v) = patch.cron {
            schedule.cron = v;
        }
        if let Some(v) = patch.timezone {
            schedule.timezone = v;
        }
        if let Some(v) = patch.plugin {
            schedule.plugin = v;
        }
        if let Some(v) = patch.version {
            schedule.version = v;
        }
        if let Some(v) = patch.config {
            schedule.config = v;
        }
        if let Some(scope) = patch.scope {
            if scope.type_key != schedule.type_key {
                return Err(ServiceError::invalid("scope.type", "a schedule's type cannot change; create another"));
            }
            schedule.funnel = scope.funnel;
            schedule.stage = scope.stage;
        }
        if let Some(v) = patch.active {
            schedule.active = v;
        }
        self.check(&schedule).await?;
        // Only a new timetable moves the next firing (a firing due now still happens).
        if retimed {
            schedule.next_at = next_firing(&schedule, now_micros());
        }
        let mut tx = self.core.store.begin();
        repo::update(&mut tx, &schedule, retimed).await?;
        tx.commit().await?;
        self.core.signals().schedules.notify_one();
        Ok(schedule.into())
    }

    /// Deletes a schedule; its pending runs are cancelled.
    pub async fn delete(&self, caller: &Caller, id: i64) -> ServiceResult<()> {
        require_admin(caller)?;
        self.stored(id).await?;
        let mut tx = self.core.store.begin();
        repo::delete(&mut tx, id, now_micros()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn check(&self, schedule: &StoredSchedule) -> ServiceResult<()> {
        let mut errors = Vec::new();
        if let Err((field, message)) = Timetable::parse(&schedule.cron, &schedule.timezone) {
            errors.push(FieldError::new(field, message));
        }
        if let Err(e) = self.core.plugins().check_binding(&schedule.plugin, &schedule.version, World::Robot).await? {
            errors.push(e);
        }
        let catalog = self.core.catalog().await?;
        match catalog.get(&schedule.type_key) {
            None => errors.push(FieldError::new("scope.type", format!("no entity type `{}`", schedule.type_key))),
            Some(schema) => match (&schedule.funnel, &schedule.stage) {
                (None, Some(_)) => errors.push(FieldError::new("scope.funnel", "a stage needs its funnel")),
                (Some(f), stage) => match schema.funnel(f) {
                    None => errors
                        .push(FieldError::new("scope.funnel", format!("no funnel `{f}` in `{}`", schedule.type_key))),
                    Some(funnel) => {
                        if let Some(s) = stage
                            && funnel.stage(s).is_none()
                        {
                            errors.push(FieldError::new("scope.stage", format!("no stage `{s}` in funnel `{f}`")));
                        }
                    }
                },
                (None, None) => {}
            },
        }
        if errors.is_empty() { Ok(()) } else { Err(ServiceError::Validation(errors)) }
    }
}
