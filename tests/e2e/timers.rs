//! Timers: delayed robots on time and after a restart, robots relative to a date field,
//! schedules (cron in a time zone) over a scope, a schedule missed while down firing once.

use std::time::Duration;

use chrono::{Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

const IN_PROGRESS_ROBOTS: &str = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";

/// A Rhai robot that adds a timeline comment naming itself.
async fn comment_robot(s: &Server, name: &str) {
    let script = format!(r#"fn run(ctx) {{ timeline::add_entry("deal", ctx.item.id, "{name} ran"); }}"#);
    let manifest =
        json!({"name": name, "version": "1.0.0", "kind": "rhai", "world": "robot", "capabilities": ["items:write"]});
    s.upload(manifest, script.into_bytes()).await.ok(201);
}

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

async fn move_deal(s: &Server, id: &Value, stage: &str) {
    s.post(&format!("/api/v1/items/deal/{id}/move"), json!({"stage": stage})).await.ok(200);
}

/// How often `text` is on a deal's timeline.
async fn count(s: &Server, id: &Value, text: &str) -> usize {
    s.timeline_texts("deal", id).await.iter().filter(|t| t.as_str() == text).count()
}

/// When an item's timeline first got `text`, in microseconds.
async fn noted_at(s: &Server, id: &Value, text: &str) -> Option<i64> {
    let timeline = s.get(&format!("/api/v1/items/deal/{id}/timeline?limit=500")).await.ok(200);
    let entry = timeline["items"].as_array()?.iter().find(|e| e["text"] == text)?.clone();
    chrono::DateTime::parse_from_rfc3339(entry["at"].as_str()?).ok().map(|t| t.timestamp_micros())
}

async fn delayed_robots_run_on_time_and_survive_a_restart(backend: Backend) {
    let mut s = Server::start(backend).await;
    comment_robot(&s, "later").await;
    s.post(IN_PROGRESS_ROBOTS, json!({"plugin": "later", "delay_s": 2})).await.ok(201);
    let deal = new_deal(&s, "On time").await;
    let moved_at = Utc::now().timestamp_micros();
    move_deal(&s, &deal, "in-progress").await;
    s.wait_for(20, "the delayed robot", || async { noted_at(&s, &deal, "later ran").await }).await;
    let ran_at = noted_at(&s, &deal, "later ran").await.unwrap_or_default();
    let late_ms = (ran_at - moved_at - 2_000_000) / 1_000;
    assert!(late_ms >= 0, "ran {late_ms} ms before its time");
    assert!(late_ms < 1_500, "ran {late_ms} ms after its time");

    // Queued, then the server is down when it comes due: it runs at start, once.
    let other = new_deal(&s, "Across a restart").await;
    move_deal(&s, &other, "in-progress").await;
    s.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.start_again();
    s.wait_for(20, "the robot due while down", || async { (count(&s, &other, "later ran").await == 1).then_some(()) })
        .await;
    s.settled().await;
    assert_eq!(count(&s, &other, "later ran").await, 1);
}
both!(delayed_robots_run_on_time_and_survive_a_restart);

async fn robots_relative_to_a_date_field(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "visit_at", "title": "Visit", "kind": "datetime"})).await.ok(201);
    s.post("/api/v1/types/deal/fields", json!({"key": "note", "title": "Note", "kind": "string"})).await.ok(201);
    comment_robot(&s, "reminder").await;
    let robot = json!({"plugin": "reminder", "relative_to": {"field": "visit_at", "offset_s": -1}});
    let bound = s.post(IN_PROGRESS_ROBOTS, robot).await.ok(201);
    assert_eq!(bound["relative_to"]["field"], "visit_at");

    // Due one second before a visit three seconds away.
    let visit = Utc::now().timestamp_micros() + 3_000_000;
    let visit_text = chrono::DateTime::from_timestamp_micros(visit).map(|t| t.to_rfc3339()).unwrap_or_default();
    let deal =
        s.post("/api/v1/items/deal", json!({"title": "Visit", "fields": {"visit_at": visit_text}})).await.ok(201)["id"]
            .clone();
    let empty = new_deal(&s, "No visit").await;
    move_deal(&s, &deal, "in-progress").await;
    move_deal(&s, &empty, "in-progress").await;
    s.wait_for(20, "the reminder", || async { noted_at(&s, &deal, "reminder ran").await }).await;
    let ran_at = noted_at(&s, &deal, "reminder ran").await.unwrap_or_default();
    let late_ms = (ran_at - (visit - 1_000_000)) / 1_000;
    assert!((0..1_500).contains(&late_ms), "ran {late_ms} ms from its time");
    // An empty field skips the robot, saying so.
    let texts = s.timeline_texts("deal", &empty).await;
    assert!(texts.iter().any(|t| t.contains("skipped") && t.contains("visit_at")), "{texts:?}");
    assert_eq!(count(&s, &empty, "reminder ran").await, 0);

    // The field changes while the item waits in the stage: the run moves with it, or is
    // cancelled when the field is emptied.
    let at = |micros: i64| chrono::DateTime::from_timestamp_micros(micros).map(|t| t.to_rfc3339()).unwrap_or_default();
    let far = at(Utc::now().timestamp_micros() + 3_600_000_000);
    let moved =
        s.post("/api/v1/items/deal", json!({"title": "Moved visit", "fields": {"visit_at": far}})).await.ok(201)["id"]
            .clone();
    let soon = at(Utc::now().timestamp_micros() + 2_000_000);
    let dropped = s
        .post("/api/v1/items/deal", json!({"title": "Dropped visit", "fields": {"visit_at": soon}}))
        .await
        .ok(201)["id"]
        .clone();
    move_deal(&s, &moved, "in-progress").await;
    move_deal(&s, &dropped, "in-progress").await;
    let visit = Utc::now().timestamp_micros() + 2_000_000;
    s.patch(&format!("/api/v1/items/deal/{moved}"), json!({"fields": {"visit_at": at(visit)}})).await.ok(200);
    s.patch(&format!("/api/v1/items/deal/{dropped}"), json!({"fields": {"visit_at": null}})).await.ok(200);
    s.wait_for(20, "the re-timed reminder", || async { noted_at(&s, &moved, "reminder ran").await }).await;
    let ran_at = noted_at(&s, &moved, "reminder ran").await.unwrap_or_default();
    let late_ms = (ran_at - (visit - 1_000_000)) / 1_000;
    assert!((0..1_500).contains(&late_ms), "ran {late_ms} ms from its new time");
    s.settled().await;
    assert_eq!(count(&s, &dropped, "reminder ran").await, 0, "the emptied field's run was cancelled");

    // Bad bindings.
    let bad = [
        (json!({"plugin": "reminder", "relative_to": {"field": "note"}}), "relative_to.field"),
        (json!({"plugin": "reminder", "relative_to": {"field": "nope"}}), "relative_to.field"),
        (json!({"plugin": "reminder", "delay_s": 5, "relative_to": {"field": "visit_at"}}), "delay_s"),
    ];
    for (body, field) in bad {
        let problem = s.post(IN_PROGRESS_ROBOTS, body.clone()).await.problem(422, "validation-failed");
        assert!(Reply::error_fields(&problem).iter().any(|f| f == field), "{body}: {problem}");
    }
}
both!(robots_relative_to_a_date_field);

async fn schedules_run_a_plugin_over_their_scope(backend: Backend) {
    let s = Server::start(backend).await;
    comment_robot(&s, "daily").await;
    let first = new_deal(&s, "First").await;
    let second = new_deal(&s, "Second").await;
    let elsewhere = new_deal(&s, "Elsewhere").await;
    move_deal(&s, &elsewhere, "in-progress").await;
    let schedule = s
        .post(
            "/api/v1/schedules",
            json!({"title": "Every two seconds", "cron": "*/2 * * * * *", "timezone": "Europe/Moscow",
                   "plugin": "daily", "scope": {"type": "deal", "funnel": "default", "stage": "new"}}),
        )
        .await
        .ok(201);
    assert!(schedule["next_run"].is_string(), "{schedule}");
    s.wait_for(20, "two firings over both deals", || async {
        (count(&s, &first, "daily ran").await >= 2 && count(&s, &second, "daily ran").await >= 2).then_some(())
    })
    .await;
    assert_eq!(count(&s, &elsewhere, "daily ran").await, 0);
    let timeline = s.get(&format!("/api/v1/items/deal/{first}/timeline")).await.ok(200);
    let entry = timeline["items"].as_array().and_then(|a| a.iter().find(|e| e["text"] == "daily ran").cloned());
    assert_eq!(entry.map(|e| e["actor"]["kind"].clone()), Some(json!("schedule")));
    // Paused, it stops.
    let id = schedule["id"].as_i64().unwrap_or_default();
    let paused = s.patch(&format!("/api/v1/schedules/{id}"), json!({"active": false})).await.ok(200);
    assert!(paused["next_run"].is_null(), "{paused}");
    s.settled().await;
    let before = count(&s, &first, "daily ran").await;
    // Two firing times pass while it is paused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.settled().await;
    assert_eq!(count(&s, &first, "daily ran").await, before);
    assert!(s.get(&format!("/api/v1/schedules/{id}")).await.ok(200)["last_run"].is_string());
    // A plugin in use by a schedule cannot be deleted; the schedule can.
    s.call(Method::DELETE, "/api/v1/plugins/daily", None).await.problem(409, "conflict");
    s.call(Method::DELETE, &format!("/api/v1/schedules/{id}"), None).await.ok(204);
    assert_eq!(s.get("/api/v1/schedules").await.ok(200)["items"].as_array().map(Vec::len), Some(0));

    let bad = [
        (json!({"cron": "every day", "plugin": "daily", "scope": {"type": "deal"}}), "cron"),
        (
            json!({"cron": "0 9 * * *", "timezone": "Mars/Olympus", "plugin": "daily", "scope": {"type": "deal"}}),
            "timezone",
        ),
        (json!({"cron": "0 9 * * *", "plugin": "nope", "scope": {"type": "deal"}}), "plugin"),
        (json!({"cron": "0 9 * * *", "plugin": "daily", "scope": {"type": "nope"}}), "scope.type"),
        (json!({"cron": "0 9 * * *", "plugin": "daily", "scope": {"type": "deal", "stage": "new"}}), "scope.funnel"),
        (
            json!({"cron": "0 9 * * *", "plugin": "daily", "scope": {"type": "deal", "funnel": "default", "stage": "x"}}),
            "scope.stage",
        ),
    ];
    for (body, field) in bad {
        let problem = s.post("/api/v1/schedules", body.clone()).await.problem(422, "validation-failed");
        assert!(Reply::error_fields(&problem).iter().any(|f| f == field), "{body}: {problem}");
    }
    let (_, token) = s.user_with_roles("someone@example.com", &[]).await;
    s.call_as(&token, Method::GET, "/api/v1/schedules", None).await.problem(403, "forbidden");
}
both!(schedules_run_a_plugin_over_their_scope);

async fn a_schedule_missed_while_down_fires_once_at_start(backend: Backend) {
    let mut s = Server::start(backend).await;
    comment_robot(&s, "nightly").await;
    let deal = new_deal(&s, "Waiting").await;
    // Fires every second for three seconds, starting three seconds from now (UTC), once a day:
    // all three firings fall while the server is down.
    let mut at = Utc::now() + chrono::Duration::seconds(3);
    if at.second() >= 57 {
        at += chrono::Duration::seconds(i64::from(60 - at.second()));
    }
    let cron = format!("{}-{} {} {} * * *", at.second(), at.second() + 2, at.minute(), at.hour());
    s.post("/api/v1/schedules", json!({"cron": cron, "plugin": "nightly", "scope": {"type": "deal"}})).await.ok(201);
    s.stop();
    let down_until = (at - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(4);
    tokio::time::sleep(down_until).await;
    let restarted = Utc::now().timestamp();
    s.start_again();
    s.wait_for(20, "the missed firing", || async { (count(&s, &deal, "nightly ran").await == 1).then_some(()) }).await;
    s.settled().await;
    assert_eq!(count(&s, &deal, "nightly ran").await, 1);
    let schedules = s.get("/api/v1/schedules").await.ok(200);
    let next = schedules["items"][0]["next_run"].as_str().unwrap_or_default().to_string();
    let next = chrono::DateTime::parse_from_rfc3339(&next).map(|t| t.timestamp()).unwrap_or_default();
    assert!(next > Utc::now().timestamp() + 3600, "the next firing is tomorrow's: {schedules}");
    // It fired at the start, not before the stop.
    let last = schedules["items"][0]["last_run"].as_str().unwrap_or_default().to_string();
    let last = chrono::DateTime::parse_from_rfc3339(&last).map(|t| t.timestamp()).unwrap_or_default();
    assert!(last >= restarted, "{schedules}");
}
both!(a_schedule_missed_while_down_fires_once_at_start);
