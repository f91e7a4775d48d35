//! Several hosts on one PostgreSQL database: a plugin uploaded on one host runs on the other
//! (and a new version replaces it there without a restart), every robot run and trigger move
//! happens exactly once, whichever host's workers and dispatchers see the event.

use serde_json::{Value, json};

use crate::harness::{Backend, Server, postgres_available};

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

async fn count(s: &Server, id: &Value, text: &str) -> usize {
    s.timeline_texts("deal", id).await.iter().filter(|t| t.as_str() == text).count()
}

fn stamp(version: &str, text: &str) -> (Value, Vec<u8>) {
    let manifest =
        json!({"name": "stamp", "version": version, "kind": "rhai", "world": "robot", "capabilities": ["items:write"]});
    let script = format!(r#"fn run(ctx) {{ timeline::add_entry("deal", ctx.item.id, "{text}"); }}"#);
    (manifest, script.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_plugins_robots_and_triggers() {
    if !postgres_available() {
        return;
    }
    let a = Server::start(Backend::Postgres).await;
    let b = a.second_host();
    a.post("/api/v1/types/deal/fields", json!({"key": "paid", "title": "Paid", "kind": "bool"})).await.ok(201);
    let (manifest, module) = stamp("1.0.0", "v1");
    a.upload(manifest, module).await.ok(201);
    a.post("/api/v1/types/deal/funnels/default/stages/in-progress/robots", json!({"plugin": "stamp"})).await.ok(201);
    a.post(
        "/api/v1/types/deal/funnels/default/stages/won/triggers",
        json!({"kind": "field-changed", "config": {"field": "paid", "to": true}}),
    )
    .await
    .ok(201);

    // Moves made on host B run the robot uploaded on host A, once.
    let mut deals = Vec::new();
    for i in 0..10 {
        let deal = new_deal(&b, &format!("Deal {i}")).await;
        b.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
        deals.push(deal);
    }
    for deal in &deals {
        b.wait_for(30, "the robot on a deal", || async { (count(&b, deal, "v1").await == 1).then_some(()) }).await;
    }

    // A new version uploaded on A takes over on B without a restart.
    let (manifest, module) = stamp("1.1.0", "v2");
    a.upload(manifest, module).await.ok(201);
    let later = new_deal(&b, "Later").await;
    b.post(&format!("/api/v1/items/deal/{later}/move"), json!({"stage": "in-progress"})).await.ok(200);
    b.wait_for(30, "the new version on host B", || async { (count(&b, &later, "v2").await == 1).then_some(()) }).await;

    // A change on either host moves the deal by the trigger exactly once.
    for (i, deal) in deals.iter().enumerate() {
        let host = if i % 2 == 0 { &a } else { &b };
        host.patch(&format!("/api/v1/items/deal/{deal}"), json!({"fields": {"paid": true}})).await.ok(200);
    }
    for deal in &deals {
        a.wait_for(30, "the trigger's move", || async { (a.item("deal", deal).await["stage"] == "won").then_some(()) })
            .await;
    }
    a.settled().await;
    b.settled().await;
    for deal in &deals {
        assert_eq!(count(&a, deal, "v1").await, 1, "the robot ran more than once on {deal}");
        let history = a.get(&format!("/api/v1/items/deal/{deal}/history")).await.ok(200);
        let moves = history["items"].as_array().map(|h| h.iter().filter(|e| e["to"]["stage"] == "won").count());
        assert_eq!(moves, Some(1), "deal {deal} moved to won more than once: {history}");
    }
}
