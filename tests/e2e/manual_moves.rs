//! Stages that only automation moves: a funnel's `manual_moves` setting (`allowed`, `admins`,
//! `none`) refuses a person's `move` with 403 `automatic-moves-only` and changes nothing,
//! while robots still move items and the item's other fields stay editable.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

const FUNNEL: &str = "/api/v1/types/deal/funnels/default";

async fn writer(s: &Server) -> (i64, String) {
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    s.user_with_roles("seller@example.com", &["sales"]).await
}

async fn history_len(s: &Server, deal: &Value) -> usize {
    let history = s.get(&format!("/api/v1/items/deal/{deal}/history?limit=500")).await.ok(200);
    history["items"].as_array().map_or(0, Vec::len)
}

async fn no_hand_moves_but_robots_move(backend: Backend) {
    let s = Server::start(backend).await;
    let (_, token) = writer(&s).await;
    assert_eq!(s.get(FUNNEL).await.ok(200)["manual_moves"], "allowed", "the default");
    let deal =
        s.call_as(&token, Method::POST, "/api/v1/items/deal", Some(json!({"title": "Kitchen"}))).await.ok(201)["id"]
            .clone();

    let locked = s.patch(FUNNEL, json!({"manual_moves": "none"})).await.ok(200);
    assert_eq!(locked["manual_moves"], "none");
    assert_eq!(s.get(FUNNEL).await.ok(200)["manual_moves"], "none", "stored");
    let before = s.item("deal", &deal).await;
    let moves_before = history_len(&s, &deal).await;
    let path = format!("/api/v1/items/deal/{deal}/move");
    for who in [token.as_str(), s.admin.as_str()] {
        let refused = s.call_as(who, Method::POST, &path, Some(json!({"stage": "in-progress"}))).await;
        let problem = refused.problem(403, "automatic-moves-only");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("`default`")), "{problem}");
    }
    assert_eq!(s.item("deal", &deal).await, before, "nothing changed");
    assert_eq!(history_len(&s, &deal).await, moves_before);

    // The item's other fields stay editable by those with write access.
    let patch = json!({"title": "Kitchen, oak"});
    let edited = s.call_as(&token, Method::PATCH, &format!("/api/v1/items/deal/{deal}"), Some(patch)).await.ok(200);
    assert_eq!(edited["title"], "Kitchen, oak");

    // Automation moves: a robot of the stage the deal is created in carries it on.
    s.post(
        &format!("{FUNNEL}/stages/new/robots"),
        json!({"plugin": "move-to-stage", "config": {"stage": "in-progress"}}),
    )
    .await
    .ok(201);
    let moved = s.call_as(&token, Method::POST, "/api/v1/items/deal", Some(json!({"title": "Wardrobe"}))).await.ok(201)
        ["id"]
        .clone();
    s.wait_for(20, "the robot's move", || async {
        (s.item("deal", &moved).await["stage"] == "in-progress").then_some(())
    })
    .await;
}
both!(no_hand_moves_but_robots_move);

async fn admins_only_and_funnel_changes(backend: Backend) {
    let s = Server::start(backend).await;
    let (_, token) = writer(&s).await;
    s.patch(FUNNEL, json!({"manual_moves": "admins"})).await.ok(200);
    let deal = s.post("/api/v1/items/deal", json!({"title": "Table"})).await.ok(201)["id"].clone();
    let path = format!("/api/v1/items/deal/{deal}/move");
    s.call_as(&token, Method::POST, &path, Some(json!({"stage": "in-progress"})))
        .await
        .problem(403, "automatic-moves-only");
    assert_eq!(s.item("deal", &deal).await["stage"], "new");
    s.post(&path, json!({"stage": "in-progress"})).await.ok(200);
    assert_eq!(s.item("deal", &deal).await["stage"], "in-progress", "an administrator moves");

    // Into a locked funnel from an open one: refused too.
    let stages =
        json!([{"key": "open", "title": "Open"}, {"key": "closed", "title": "Closed", "semantics": "success"}]);
    let created = s
        .post(
            "/api/v1/types/deal/funnels",
            json!({"key": "claims", "title": "Claims", "stages": stages, "manual_moves": "none"}),
        )
        .await
        .ok(201);
    assert_eq!(created["manual_moves"], "none");
    s.patch(FUNNEL, json!({"manual_moves": "allowed"})).await.ok(200);
    s.call_as(&token, Method::POST, &path, Some(json!({"funnel": "claims", "stage": "open"})))
        .await
        .problem(403, "automatic-moves-only");
    assert_eq!(s.item("deal", &deal).await["funnel"], "default");
    s.call_as(&token, Method::POST, &path, Some(json!({"stage": "new"}))).await.ok(200);
}
both!(admins_only_and_funnel_changes);

async fn a_bad_setting_is_refused(backend: Backend) {
    let s = Server::start(backend).await;
    let before = s.get(FUNNEL).await.ok(200);
    let problem = s
        .patch(FUNNEL, json!({"manual_moves": "sometimes", "title": "Renamed"}))
        .await
        .problem(422, "validation-failed");
    assert!(crate::harness::Reply::error_fields(&problem).contains(&"manual_moves".to_string()), "{problem}");
    assert_eq!(s.get(FUNNEL).await.ok(200), before, "nothing changed");
    let stages = json!([{"key": "open", "title": "Open"}]);
    s.post("/api/v1/types/deal/funnels", json!({"key": "x", "title": "X", "stages": stages, "manual_moves": 3}))
        .await
        .problem(422, "validation-failed");
    assert!(s.get("/api/v1/types/deal/funnels/x").await.status == 404, "not created");
}
both!(a_bad_setting_is_refused);
