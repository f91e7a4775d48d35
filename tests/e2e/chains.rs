//! The automation chain limit: a person's action starts a new chain (a deal carried through
//! a funnel of fifteen approval stages reaches its end), while real loops — robots moving an
//! item back and forth, a trigger and a robot feeding each other, a process starting itself —
//! are stopped with a timeline entry that names what stopped, and nothing else is refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

/// Stages of the long funnel.
const STAGES: usize = 15;

fn stage(n: usize) -> String {
    format!("s{n}")
}

fn stage_path(funnel: &str, stage: &str) -> String {
    format!("/api/v1/types/deal/funnels/{funnel}/stages/{stage}")
}

/// A funnel `long` of fifteen stages, where each of the first fourteen starts a process (the
/// responsible approves, then the process sets `approved`), and a trigger on the next stage
/// moves the deal on when `approved` names the stage before. Completing the fourteen
/// approvals one after another takes the deal to the last stage: each person's decision
/// starts a new chain, however many automation steps each stage takes.
async fn fifteen_approval_stages_carry_a_deal_to_the_end(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "approved", "title": "Approved stage", "kind": "number"}))
        .await
        .ok(201);
    let stages: Vec<Value> = (1..=STAGES)
        .map(|n| {
            let semantics = if n == STAGES { "success" } else { "process" };
            json!({"key": stage(n), "title": format!("Stage {n}"), "semantics": semantics})
        })
        .collect();
    s.post("/api/v1/types/deal/funnels", json!({"key": "long", "title": "Long", "stages": stages})).await.ok(201);
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    let (manager, token) = s.user_with_roles("manager@example.com", &["sales"]).await;
    for n in 1..STAGES {
        let key = format!("approve-{n}");
        let steps = json!([
            {"id": "ok", "kind": "approval", "assignees": [{"relation": "responsible"}]},
            {"id": "mark", "kind": "set-fields", "fields": {"approved": n}}
        ]);
        s.post("/api/v1/processes/templates", json!({"key": key, "type": "deal", "title": key, "steps": steps}))
            .await
            .ok(201);
        let robots = format!("{}/robots", stage_path("long", &stage(n)));
        s.post(&robots, json!({"plugin": "start-process", "config": {"template": key}})).await.ok(201);
        let triggers = format!("{}/triggers", stage_path("long", &stage(n + 1)));
        s.post(&triggers, json!({"kind": "field-changed", "config": {"field": "approved", "to": n}})).await.ok(201);
    }

    let body = json!({"title": "Kitchen", "funnel": "long", "stage": stage(1), "responsible": manager});
    let deal = s.call_as(&token, Method::POST, "/api/v1/items/deal", Some(body)).await.ok(201)["id"].clone();
    for n in 1..STAGES {
        let assignment = s
            .wait_for(30, &format!("the approval of stage {n}"), || async {
                let page = s.call_as(&token, Method::GET, "/api/v1/assignments", None).await.ok(200);
                page["items"].as_array()?.first().cloned()
            })
            .await;
        let path = format!("/api/v1/assignments/{}/complete", assignment["id"]);
        s.call_as(&token, Method::POST, &path, Some(json!({"decision": "approve"}))).await.ok(200);
        let next = stage(n + 1);
        s.wait_for(30, &format!("the deal to reach {next}"), || async {
            (s.item("deal", &deal).await["stage"] == next.as_str()).then_some(())
        })
        .await;
    }
    s.settled().await;
    let texts = s.timeline_texts("deal", &deal).await;
    assert!(!texts.iter().any(|t| t.contains("chain stopped")), "{texts:?}");
    let processes = s.get(&format!("/api/v1/processes?item_type=deal&item_id={deal}&limit=100")).await.ok(200);
    let statuses: Vec<&str> =
        processes["items"].as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["completed"; STAGES - 1], "one completed process per stage");
}
both!(fifteen_approval_stages_carry_a_deal_to_the_end);

/// A trigger and a robot that feed each other: entering `new` a Rhai robot counts up a field,
/// the trigger on `in-progress` moves the deal there on that change, and the robot there
/// moves it back. The chain is stopped with a timeline entry naming what stopped; a person's
/// move afterwards runs its stage's robots again.
async fn a_trigger_and_a_robot_feeding_each_other_are_stopped(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "rounds", "title": "Rounds", "kind": "number"})).await.ok(201);
    let script = r#"
        fn run(ctx) {
            let rounds = ctx.item.fields.rounds ?? 0;
            items::update_fields(ctx.item["type"], ctx.item.id, #{rounds: rounds + 1});
            "counted"
        }
    "#;
    let manifest = json!({"name": "counter", "version": "1.0.0", "kind": "rhai", "world": "robot",
        "capabilities": ["items:write"]});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    s.post(&format!("{}/robots", stage_path("default", "new")), json!({"plugin": "counter"})).await.ok(201);
    s.post(
        &format!("{}/triggers", stage_path("default", "in-progress")),
        json!({"kind": "field-changed", "config": {"field": "rounds"}}),
    )
    .await
    .ok(201);
    s.post(
        &format!("{}/robots", stage_path("default", "in-progress")),
        json!({"plugin": "move-to-stage", "config": {"stage": "new"}}),
    )
    .await
    .ok(201);
    s.post(
        &format!("{}/robots", stage_path("default", "won")),
        json!({"plugin": "add-comment", "config": {"text": "Won: {{item.title}}"}}),
    )
    .await
    .ok(201);

    let deal = s.post("/api/v1/items/deal", json!({"title": "Loop", "stage": "won"})).await.ok(201)["id"].clone();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "new"})).await.ok(200);
    let stopped = s
        .wait_for(30, "the chain to stop", || async {
            s.timeline_texts("deal", &deal).await.into_iter().find(|t| t.starts_with("Automation chain stopped"))
        })
        .await;
    assert!(stopped.contains("robots of stage") || stopped.contains("trigger"), "names what stopped: {stopped}");
    s.settled().await;
    let rounds = s.item("deal", &deal).await["fields"]["rounds"].as_i64().unwrap_or(0);
    assert!((2..=10).contains(&rounds), "the loop ran a bounded number of rounds: {rounds}");
    let stops = s.timeline_texts("deal", &deal).await.into_iter().filter(|t| t.contains("chain stopped")).count();
    assert_eq!(stops, 1, "one stop, one entry");

    // Nothing else is refused: a person's move starts a new chain, and its robots run.
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "won"})).await.ok(200);
    s.wait_for(20, "the robot of won", || async {
        s.timeline_texts("deal", &deal).await.into_iter().find(|t| t == "Won: Loop")
    })
    .await;
}
both!(a_trigger_and_a_robot_feeding_each_other_are_stopped);

/// A process that starts itself again is stopped: the last one fails with the chain named on
/// the item's timeline, and a person's start of another process on the item still runs.
async fn a_process_starting_itself_is_stopped_on_the_timeline(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "note", "title": "Note", "kind": "string"})).await.ok(201);
    let again = json!([{"id": "more", "kind": "start-process", "template": "again"}]);
    s.post("/api/v1/processes/templates", json!({"key": "again", "type": "deal", "title": "Again", "steps": again}))
        .await
        .ok(201);
    let mark = json!([{"id": "mark", "kind": "set-fields", "fields": {"note": "marked"}}]);
    s.post("/api/v1/processes/templates", json!({"key": "mark", "type": "deal", "title": "Mark", "steps": mark}))
        .await
        .ok(201);
    let deal = s.post("/api/v1/items/deal", json!({"title": "Runaway"})).await.ok(201)["id"].clone();
    let item = json!({"type": "deal", "id": deal});
    s.post("/api/v1/processes", json!({"template": "again", "item": item})).await.ok(201);
    let text = s
        .wait_for(30, "the stop on the timeline", || async {
            s.timeline_texts("deal", &deal).await.into_iter().find(|t| t.contains("automation chain stopped"))
        })
        .await;
    assert!(text.starts_with("Process again failed at step more:"), "names the process and step: {text}");
    s.settled().await;

    s.post("/api/v1/processes", json!({"template": "mark", "item": item})).await.ok(201);
    s.wait_for(20, "the person's process to run", || async {
        (s.item("deal", &deal).await["fields"]["note"] == "marked").then_some(())
    })
    .await;
}
both!(a_process_starting_itself_is_stopped_on_the_timeline);
