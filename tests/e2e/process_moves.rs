//! Processes that move their item: the `move` step (recorded as the process's move, running
//! the target stage's robots), and the return to the funnel an item came from — by the `move`
//! step, by the `move-to-stage` robot and by a Rhai robot — refused with a clear timeline entry
//! when the item never changed funnel. Process texts render placeholders.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

/// A deal funnel `claims` beside the default one (new, in-progress, won, lost).
async fn claims_funnel(s: &Server) {
    s.post(
        "/api/v1/types/deal/funnels",
        json!({"key":"claims","title":"Claims","stages":[
            {"key":"open","title":"Open"},{"key":"fixing","title":"Fixing"},
            {"key":"closed","title":"Closed","semantics":"success"}]}),
    )
    .await
    .ok(201);
}

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

async fn move_deal(s: &Server, id: &Value, body: Value) {
    s.post(&format!("/api/v1/items/deal/{id}/move"), body).await.ok(200);
}

async fn template(s: &Server, key: &str, steps: Value) -> Reply {
    s.post("/api/v1/processes/templates", json!({"key": key, "type": "deal", "title": key, "steps": steps})).await
}

/// Starts a template on a deal and waits until the process is no longer running.
async fn run(s: &Server, key: &str, deal: &Value, params: Value) -> Value {
    let started = s
        .post("/api/v1/processes", json!({"template": key, "item": {"type": "deal", "id": deal}, "params": params}))
        .await
        .ok(201);
    let id = started["id"].clone();
    s.wait_for(20, &format!("process {id} to end"), || async {
        let p = s.get(&format!("/api/v1/processes/{id}")).await.ok(200);
        (p["status"] != "running").then_some(p)
    })
    .await
}

async fn place(s: &Server, deal: &Value) -> (String, String) {
    let item = s.item("deal", deal).await;
    (item["funnel"].as_str().unwrap_or("").to_string(), item["stage"].as_str().unwrap_or("").to_string())
}

async fn last_move(s: &Server, deal: &Value) -> Value {
    let history = s.get(&format!("/api/v1/items/deal/{deal}/history?limit=500")).await.ok(200);
    history["items"].as_array().and_then(|h| h.last().cloned()).unwrap_or(Value::Null)
}

async fn process_move_step_moves_the_item_as_the_process(backend: Backend) {
    let s = Server::start(backend).await;
    claims_funnel(&s).await;
    let robots = "/api/v1/types/deal/funnels/default/stages/won/robots";
    s.post(robots, json!({"plugin":"add-comment","config":{"text":"Won: {{item.title}}"}})).await.ok(201);
    template(&s, "close", json!([{"id": "go", "kind": "move", "stage": "won"}])).await.ok(201);
    template(&s, "to-claims", json!([{"id": "claim", "kind": "move", "funnel": "claims", "stage": "fixing"}]))
        .await
        .ok(201);

    let deal = new_deal(&s, "Kitchen").await;
    let process = run(&s, "close", &deal, json!({})).await;
    assert_eq!(process["status"], "completed", "{process}");
    assert_eq!(place(&s, &deal).await, ("default".into(), "won".into()));
    let moved = last_move(&s, &deal).await;
    assert_eq!(moved["actor"]["kind"], "process", "{moved}");
    assert_eq!(moved["actor"]["id"], process["id"]);
    assert_eq!(moved["to"], json!({"funnel": "default", "stage": "won"}));
    // The move ran the target stage's robots, as any move does.
    s.settled().await;
    let texts = s.timeline_texts("deal", &deal).await;
    assert!(texts.iter().any(|t| t == "Won: Kitchen"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "Moved to stage won"), "{texts:?}");

    // Into another funnel.
    let other = new_deal(&s, "Wardrobe").await;
    assert_eq!(run(&s, "to-claims", &other, json!({})).await["status"], "completed");
    assert_eq!(place(&s, &other).await, ("claims".into(), "fixing".into()));
    assert_eq!(last_move(&s, &other).await["actor"]["kind"], "process");

    // A move to a stage the type's funnels lack, or to a funnel it lacks, is refused at save,
    // and nothing is stored.
    for (steps, field, message) in [
        (json!([{"id": "go", "kind": "move", "stage": "nowhere"}]), "steps[0].stage", "no stage `nowhere`"),
        (
            json!([{"id": "w", "kind": "wait", "duration_s": 5}, {"id": "go", "kind": "move", "funnel": "claims", "stage": "won"}]),
            "steps[1].stage",
            "no stage `won` in funnel `claims`",
        ),
        (json!([{"id": "go", "kind": "move", "funnel": "repairs", "stage": "open"}]), "steps[0].funnel", "no funnel"),
        (json!([{"id": "go", "kind": "move"}]), "steps[0].stage", "a move needs a stage"),
        (
            json!([{"id": "go", "kind": "move", "return": true, "funnel": "claims"}]),
            "steps[0].funnel",
            "name no funnel",
        ),
    ] {
        let problem = template(&s, "broken", steps).await.problem(422, "validation-failed");
        let errors = problem["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors.iter().any(|e| e["field"] == field && e["message"].as_str().is_some_and(|m| m.contains(message))),
            "{field}: {problem}"
        );
        s.get("/api/v1/processes/templates/broken").await.problem(404, "not-found");
    }
}
both!(process_move_step_moves_the_item_as_the_process);

async fn items_return_to_the_funnel_they_came_from(backend: Backend) {
    let s = Server::start(backend).await;
    claims_funnel(&s).await;
    // The claims round trip by the robot: a closed claim returns to its deal's funnel, as won.
    let closed = "/api/v1/types/deal/funnels/claims/stages/closed/robots";
    s.post(closed, json!({"plugin":"move-to-stage","config":{"return":true,"stage":"won"}})).await.ok(201);
    let deal = new_deal(&s, "Kitchen").await;
    move_deal(&s, &deal, json!({"stage": "in-progress"})).await;
    move_deal(&s, &deal, json!({"funnel": "claims", "stage": "open"})).await;
    move_deal(&s, &deal, json!({"stage": "closed"})).await;
    s.wait_for(20, "the deal back in its funnel", || async {
        (place(&s, &deal).await == ("default".to_string(), "won".to_string())).then_some(())
    })
    .await;
    let back = last_move(&s, &deal).await;
    assert_eq!(back["actor"]["kind"], "robot", "{back}");
    assert_eq!(back["from"], json!({"funnel": "claims", "stage": "closed"}));

    // The step, without a stage: back to the stage it left.
    template(&s, "back", json!([{"id": "back", "kind": "move", "return": true}])).await.ok(201);
    let other = new_deal(&s, "Wardrobe").await;
    move_deal(&s, &other, json!({"stage": "in-progress"})).await;
    move_deal(&s, &other, json!({"funnel": "claims", "stage": "fixing"})).await;
    assert_eq!(run(&s, "back", &other, json!({})).await["status"], "completed");
    assert_eq!(place(&s, &other).await, ("default".into(), "in-progress".into()));
    assert_eq!(last_move(&s, &other).await["actor"]["kind"], "process");

    // A Rhai robot through the same host function.
    let script = r#"fn run(ctx) { items::return_to_funnel(ctx.item["type"], ctx.item.id, "lost"); }"#;
    let manifest =
        json!({"name":"give-up","version":"1.0.0","kind":"rhai","world":"robot","capabilities":["items:write"]});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    s.post("/api/v1/types/deal/funnels/claims/stages/fixing/robots", json!({"plugin":"give-up"})).await.ok(201);
    let third = new_deal(&s, "Table").await;
    move_deal(&s, &third, json!({"funnel": "claims", "stage": "fixing"})).await;
    s.wait_for(20, "the Rhai robot's return", || async {
        (place(&s, &third).await == ("default".to_string(), "lost".to_string())).then_some(())
    })
    .await;

    // Never changed funnel: the robot's run fails, saying why on the timeline; the deal stays.
    let stuck = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";
    s.post(stuck, json!({"plugin":"move-to-stage","config":{"return":true}})).await.ok(201);
    let never = new_deal(&s, "Chair").await;
    move_deal(&s, &never, json!({"stage": "in-progress"})).await;
    s.settled().await;
    assert_eq!(place(&s, &never).await, ("default".into(), "in-progress".into()));
    let texts = s.timeline_texts("deal", &never).await;
    assert!(
        texts.iter().any(|t| t.starts_with("Robot move-to-stage") && t.contains("it has never changed funnel")),
        "{texts:?}"
    );
    // The step: the process fails with that reason, on its record and on the item's timeline.
    let shelf = new_deal(&s, "Shelf").await;
    let failed = run(&s, "back", &shelf, json!({})).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("it has never changed funnel")), "{failed}");
    assert_eq!(place(&s, &shelf).await, ("default".into(), "new".into()));
    let texts = s.timeline_texts("deal", &shelf).await;
    assert!(
        texts.iter().any(|t| t.starts_with("Process back failed at step back:") && t.contains("never changed funnel")),
        "{texts:?}"
    );
}
both!(items_return_to_the_funnel_they_came_from);

async fn process_texts_render_placeholders(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "floor", "title": "Floor", "kind": "number"})).await.ok(201);
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    let steps = json!([
        {"id": "t", "kind": "task", "title": "Measure {{item.title}} on floor {{item.fields.floor}}",
         "description": "For {{vars.who}}", "assignee": {"relation": "responsible"}, "wait": false},
        {"id": "n", "kind": "notify", "to": {"relation": "responsible"}, "text": "{{vars.who}} asks about {{item.title}} (task {{vars.t.task}})"},
        {"id": "a", "kind": "approval", "assignees": [{"relation": "responsible"}], "title": "Approve {{item.title}}?"}
    ]);
    // `{{vars.t.task}}` is no variable name: refused, like an unknown field or property.
    let problem = template(&s, "measure", steps).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&problem), vec!["steps[1].text"]);
    for (text, field) in [("{{item.fields.flor}}", "steps[0].title"), ("{{item.name}}", "steps[0].title")] {
        let steps = json!([{"id": "t", "kind": "task", "title": text, "assignee": {"user": manager}}]);
        let problem = template(&s, "measure", steps).await.problem(422, "validation-failed");
        assert_eq!(Reply::error_fields(&problem), vec![field]);
        assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.starts_with("unknown placeholder")));
    }
    s.get("/api/v1/processes/templates/measure").await.problem(404, "not-found");

    let steps = json!([
        {"id": "t", "kind": "task", "title": "Measure {{item.title}} on floor {{item.fields.floor}}",
         "description": "For {{vars.who}}", "assignee": {"relation": "responsible"}, "wait": false},
        {"id": "n", "kind": "notify", "to": {"relation": "responsible"}, "text": "{{vars.who}} asks about {{item.title}}"},
        {"id": "a", "kind": "approval", "assignees": [{"relation": "responsible"}], "title": "Approve {{item.title}}?"}
    ]);
    template(&s, "measure", steps).await.ok(201);
    let deal = s
        .post("/api/v1/items/deal", json!({"title": "Kitchen", "responsible": manager, "fields": {"floor": 3}}))
        .await
        .ok(201)["id"]
        .clone();
    s.post(
        "/api/v1/processes",
        json!({"template": "measure", "item": {"type": "deal", "id": deal}, "params": {"who": "Anna"}}),
    )
    .await
    .ok(201);
    let assignments = s
        .wait_for(20, "the approval", || async {
            let page = s.call_as(&token, Method::GET, "/api/v1/assignments", None).await.ok(200);
            page["items"].as_array().filter(|a| !a.is_empty()).cloned()
        })
        .await;
    assert_eq!(assignments[0]["title"], "Approve Kitchen?");
    let tasks = s.get(&format!("/api/v1/tasks?item_type=deal&item_id={deal}")).await.ok(200);
    assert_eq!(tasks["items"][0]["title"], "Measure Kitchen on floor 3");
    assert_eq!(tasks["items"][0]["description"], "For Anna");
    let inbox = s.call_as(&token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    let texts: Vec<&str> = inbox["items"].as_array().into_iter().flatten().filter_map(|n| n["text"].as_str()).collect();
    assert!(texts.contains(&"Anna asks about Kitchen"), "{texts:?}");
}
both!(process_texts_render_placeholders);
