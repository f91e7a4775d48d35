//! Automation in the background: job workers run the robot runs that moves queue (see
//! [`crate::service::robot_queue`]), the trigger dispatcher turns events into moves, and timers,
//! webhooks and processes follow. All survive restarts: their state is in the database.

pub mod background;
pub mod deadlines;
pub mod process;
pub mod schedules;
pub mod settled;
pub mod triggers;
pub mod webhooks;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use voronka_model::event::EventKind;

use crate::service::Core;

/// How many automation steps may chain (a robot moves an item, whose new stage runs robots,
/// ...) before the chain is stopped with a timeline error.
pub const MAX_CHAIN_DEPTH: i64 = 10;

/// Wake-ups shared by the API, the dispatchers and the workers of this host. Each reader of
/// the event stream has its own, so one never takes another's wake-up.
pub struct Signals {
    /// New events were committed: for the trigger dispatcher.
    pub trigger_events: Notify,
    /// New events were committed: for the webhook fan-out.
    pub webhook_events: Notify,
    /// New jobs were queued.
    pub jobs: Notify,
    /// New webhook deliveries were queued.
    pub deliveries: Notify,
    /// Schedules were created or changed.
    pub schedules: Notify,
    /// A task deadline was set or changed.
    pub deadlines: Notify,
    /// A process was started or woken.
    pub processes: Notify,
    /// New events were committed: for the processes waiting for events.
    pub process_events: Notify,
    /// How far the process engine has read the event stream ([`NOT_STARTED`] before its first
    /// pass); [`settled::unsettled`] compares it with the stream's end.
    pub process_events_read: AtomicI64,
}

/// [`Signals::process_events_read`] before the process engine's first pass.
pub const NOT_STARTED: i64 = i64::MIN;

impl Default for Signals {
    fn default() -> Self {
        Signals {
            trigger_events: Notify::new(),
            webhook_events: Notify::new(),
            jobs: Notify::new(),
            deliveries: Notify::new(),
            schedules: Notify::new(),
            deadlines: Notify::new(),
            processes: Notify::new(),
            process_events: Notify::new(),
            process_events_read: AtomicI64::new(NOT_STARTED),
        }
    }
}

impl Signals {
    /// Wakes every reader of the event stream (a wake-up sent while one is busy waits for it).
    pub fn events_committed(&self) {
        self.trigger_events.notify_one();
        self.webhook_events.notify_one();
        self.process_events.notify_one();
    }
}

/// How a background loop sleeps: with nothing to do, it looks at the database again after
/// the idle poll. On SQLite this host is the only writer and wakes its loops itself, so the
/// look is only a safety net and idle hosts stay idle however many timers wait; on PostgreSQL
/// other hosts' events and jobs are seen only by looking, every `shared`. A failed pass is
/// tried again after `retry`.
pub fn timing(core: &Core, shared: Duration, retry: Duration) -> background::Timing {
    let idle = match core.store().dialect() {
        voronka_store::Dialect::Sqlite => Duration::from_secs(30),
        voronka_store::Dialect::Postgres => shared,
    };
    background::Timing { idle, retry }
}

/// Where an event of `kind` puts its item: `Some(Some((funnel, stage)))` for the place it
/// entered, `Some(None)` when it left every stage (deleted), `None` for events that move nothing.
pub fn entered(kind: voronka_model::event::EventKind, payload: &serde_json::Value) -> Option<Option<(String, String)>> {
    let point = match kind {
        EventKind::ItemCreated => &payload["item"],
        EventKind::ItemStageChanged | EventKind::ItemFunnelChanged => &payload["to"],
        EventKind::ItemDeleted => return Some(None),
        _ => return None,
    };
    Some(point["funnel"].as_str().zip(point["stage"].as_str()).map(|(f, s)| (f.to_string(), s.to_string())))
}

/// The time of a date (midnight UTC) or datetime field, in microseconds.
pub(crate) fn field_time(fields: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<i64> {
    let text = fields.get(key)?.as_str()?;
    if let Some(at) = voronka_model::time::parse_rfc3339(text) {
        return Some(at);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// Starts the trigger dispatcher, the webhook fan-out and sender, the scheduler, the deadline
/// watch, the process engine and `workers` job workers; they stop when `shutdown` is cancelled.
pub fn start(core: Arc<Core>, workers: usize, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(triggers::run(core.clone(), shutdown.clone())),
        tokio::spawn(webhooks::run_fan_out(core.clone(), shutdown.clone())),
        tokio::spawn(webhooks::run_sender(core.clone(), shutdown.clone())),
        tokio::spawn(schedules::run(core.clone(), shutdown.clone())),
        tokio::spawn(deadlines::run(core.clone(), shutdown.clone())),
        tokio::spawn(process::run(core.clone(), shutdown.clone())),
        tokio::spawn(process::run_event_wakes(core.clone(), shutdown.clone())),
    ];
    for _ in 0..workers {
        tasks.push(tokio::spawn(worker::run(core.clone(), shutdown.clone())));
    }
    tasks
}
