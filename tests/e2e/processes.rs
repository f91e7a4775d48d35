//! Business processes: templates and their versions, approvals (all / any / vote, rejection,
//! deadline outcome), requests for information (form validation, files landing on the item,
//! repeatable rows), parallel branches with a join, a plugin step, a restart in the middle,
//! termination, and the case's core loop end to end.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn new_deal(s: &Server, title: &str, responsible: i64) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title, "responsible": responsible})).await.ok(201)["id"].clone()
}

async fn template(s: &Server, key: &str, steps: Value) -> Value {
    s.post("/api/v1/processes/templates", json!({"key": key, "type": "deal", "title": key, "steps": steps}))
        .await
        .ok(201)
}

async fn start(s: &Server, key: &str, deal: &Value, params: Value) -> Value {
    s.post("/api/v1/processes", json!({"template": key, "item": {"type": "deal", "id": deal}, "params": params}))
        .await
        .ok(201)["id"]
        .clone()
}

async fn process(s: &Server, id: &Value) -> Value {
    s.get(&format!("/api/v1/processes/{id}")).await.ok(200)
}

async fn wait_status(s: &Server, id: &Value, status: &str) -> Value {
    s.wait_for(20, &format!("process {id} {status}"), || async {
        let p = process(s, id).await;
        (p["status"] == status).then_some(p)
    })
    .await
}

/// The open assignments of a user, waiting until there are `n`.
async fn open_assignments(s: &Server, token: &str, n: usize) -> Vec<Value> {
    s.wait_for(20, &format!("{n} open assignments"), || async {
        let page = s.call_as(token, Method::GET, "/api/v1/assignments", None).await.ok(200);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == n).then_some(items)
    })
    .await
}

async fn decide(s: &Server, token: &str, assignment: &Value, decision: &str) {
    let path = format!("/api/v1/assignments/{}/complete", assignment["id"]);
    s.call_as(token, Method::POST, &path, Some(json!({"decision": decision, "comment": "seen"}))).await.ok(200);
}

async fn string_field(s: &Server, key: &str, kind: &str) {
    s.post("/api/v1/types/deal/fields", json!({"key": key, "title": key, "kind": kind})).await.ok(201);
}

/// An approval by two people, then a condition on its outcome.
fn approval_steps(mode: Value) -> Value {
    let mut approval = json!({"id": "approve", "kind": "approval",
        "assignees": [{"role": "boards"}]});
    if let (Some(a), Some(m)) = (approval.as_object_mut(), mode.as_object()) {
        a.extend(m.clone());
    }
    json!([
        approval,
        {"id": "check", "kind": "condition", "when": "vars.approve == \"approved\"",
         "then": [{"id": "go", "kind": "set-fields", "fields": {"verdict": "yes"}}],
         "else": [{"id": "tell", "kind": "notify", "to": {"relation": "responsible"}, "text": "Rejected"},
                  {"id": "no", "kind": "set-fields", "fields": {"verdict": "no"}}]}
    ])
}

async fn approvals_all_any_vote_and_rejection(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "verdict", "string").await;
    s.post("/api/v1/roles", json!({"key": "boards", "permissions": []})).await.ok(201);
    let mut board = Vec::new();
    for i in 0..3 {
        board.push(s.user_with_roles(&format!("b{i}@example.com"), &["boards"]).await);
    }
    let (manager, manager_token) = s.user_with_roles("m@example.com", &[]).await;

    // All: every approver approves.
    template(&s, "all", approval_steps(json!({"mode": "all"}))).await;
    let deal = new_deal(&s, "All", manager).await;
    let id = start(&s, "all", &deal, json!({})).await;
    for (_, token) in &board {
        let mine = open_assignments(&s, token, 1).await;
        assert_eq!(mine[0]["kind"], "approval");
        assert_eq!(mine[0]["item"], json!({"type": "deal", "id": deal}));
        decide(&s, token, &mine[0], "approve").await;
    }
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["approve"], "approved");
    assert_eq!(s.item("deal", &deal).await["fields"]["verdict"], "yes");
    // The responsible hears the outcome.
    let inbox = s.call_as(&manager_token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    assert!(inbox["items"].as_array().is_some_and(|n| n.iter().any(|n| n["kind"] == "approval-outcome")));

    // All: one rejection rejects, and the others' assignments are cancelled.
    let deal = new_deal(&s, "Rejected", manager).await;
    let id = start(&s, "all", &deal, json!({})).await;
    let first = open_assignments(&s, &board[0].1, 1).await;
    decide(&s, &board[0].1, &first[0], "reject").await;
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["approve"], "rejected");
    assert_eq!(s.item("deal", &deal).await["fields"]["verdict"], "no");
    open_assignments(&s, &board[1].1, 0).await;
    let inbox = s.call_as(&manager_token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    assert!(inbox["items"].as_array().is_some_and(|n| n.iter().any(|n| n["text"] == "Rejected")));

    // Any: the first approval is enough.
    template(&s, "any", approval_steps(json!({"mode": "any"}))).await;
    let deal = new_deal(&s, "Any", manager).await;
    let id = start(&s, "any", &deal, json!({})).await;
    let mine = open_assignments(&s, &board[2].1, 1).await;
    decide(&s, &board[2].1, &mine[0], "approve").await;
    assert_eq!(wait_status(&s, &id, "completed").await["variables"]["approve"], "approved");
    open_assignments(&s, &board[0].1, 0).await;

    // Vote: 60 % of three — two approvals approve.
    template(&s, "vote", approval_steps(json!({"mode": "vote", "min_percent": 60}))).await;
    let deal = new_deal(&s, "Vote", manager).await;
    let id = start(&s, "vote", &deal, json!({})).await;
    let a = open_assignments(&s, &board[0].1, 1).await;
    decide(&s, &board[0].1, &a[0], "approve").await;
    s.settled().await;
    assert_eq!(process(&s, &id).await["status"], "running");
    let b = open_assignments(&s, &board[1].1, 1).await;
    decide(&s, &board[1].1, &b[0], "approve").await;
    assert_eq!(wait_status(&s, &id, "completed").await["variables"]["approve"], "approved");

    // Deciding twice, someone else's, or without a decision: refused.
    let done = s.call_as(&board[1].1, Method::GET, "/api/v1/assignments?status=done", None).await.ok(200);
    let old = &done["items"][0];
    s.call_as(
        &board[1].1,
        Method::POST,
        &format!("/api/v1/assignments/{}/complete", old["id"]),
        Some(json!({"decision": "reject"})),
    )
    .await
    .problem(409, "conflict");
    let deal = new_deal(&s, "Refusals", manager).await;
    start(&s, "all", &deal, json!({})).await;
    let mine = open_assignments(&s, &board[0].1, 1).await;
    let path = format!("/api/v1/assignments/{}/complete", mine[0]["id"]);
    s.call_as(&manager_token, Method::POST, &path, Some(json!({"decision": "approve"})))
        .await
        .problem(404, "not-found");
    let p = s
        .call_as(&board[0].1, Method::POST, &path, Some(json!({"decision": "maybe"})))
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["decision"]);
    assert_eq!(open_assignments(&s, &board[0].1, 1).await[0]["status"], "open");
}
both!(approvals_all_any_vote_and_rejection);

async fn forms_are_validated_and_files_land_on_the_item(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "b_size", "string").await;
    string_field(&s, "drawing", "file").await;
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    template(
        &s,
        "measure",
        json!([
            {"id": "ask", "kind": "request-info", "assignee": {"relation": "responsible"}, "write_to": "fields",
             "form": [{"key": "b_size", "title": "Size", "kind": "string", "required": true},
                      {"key": "drawing", "title": "Drawing", "kind": "file"}]},
            {"id": "plan", "kind": "request-info", "assignee": {"relation": "responsible"},
             "form": [{"key": "payments", "kind": "rows", "required": true,
                       "fields": [{"key": "amount", "kind": "number", "required": true}, {"key": "due", "kind": "date"}]}]}
        ]),
    )
    .await;
    let deal = new_deal(&s, "Kitchen", manager).await;
    let id = start(&s, "measure", &deal, json!({})).await;
    let ask = open_assignments(&s, &token, 1).await;
    assert_eq!(ask[0]["form"][0]["key"], "b_size");
    let path = format!("/api/v1/assignments/{}/complete", ask[0]["id"]);

    let p = s
        .call_as(&token, Method::POST, &path, Some(json!({"fields": {"drawing": {"id": 999}, "colour": "red"}})))
        .await
        .problem(422, "validation-failed");
    let mut fields = Reply::error_fields(&p);
    fields.sort();
    assert_eq!(fields, vec!["fields.b_size", "fields.colour", "fields.drawing"]);
    assert_eq!(s.item("deal", &deal).await["fields"].get("b_size"), None);

    // A file the manager uploaded lands on the deal with the answers.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"plan".to_vec())
            .file_name("plan.pdf")
            .mime_str("application/pdf")
            .expect("mime"),
    );
    let response = s.request_as(&token, Method::POST, "/api/v1/files").multipart(form).send().await.expect("upload");
    let file = Reply::from(response).await.ok(201);
    s.call_as(&token, Method::POST, &path, Some(json!({"fields": {"b_size": "3x4", "drawing": {"id": file["id"]}}})))
        .await
        .ok(200);
    let item = s.item("deal", &deal).await;
    assert_eq!(item["fields"]["b_size"], "3x4");
    assert_eq!(item["fields"]["drawing"]["id"], file["id"]);
    let files = s.get(&format!("/api/v1/items/deal/{deal}/files")).await.ok(200);
    assert_eq!(files["items"][0]["id"], file["id"]);

    // Repeatable rows, checked row by row, kept as variables.
    let plan = open_assignments(&s, &token, 1).await;
    let path = format!("/api/v1/assignments/{}/complete", plan[0]["id"]);
    let p = s
        .call_as(
            &token,
            Method::POST,
            &path,
            Some(json!({"fields": {"payments": [{"amount": "a lot"}, {"due": "2026-01-01"}]}})),
        )
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["fields.payments[0].amount", "fields.payments[1].amount"]);
    let rows = json!([{"amount": 1000, "due": "2026-12-01"}, {"amount": "250.5"}]);
    s.call_as(&token, Method::POST, &path, Some(json!({"fields": {"payments": rows}}))).await.ok(200);
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["payments"], json!([{"amount": 1000, "due": "2026-12-01"}, {"amount": 250.5}]));
}
both!(forms_are_validated_and_files_land_on_the_item);

async fn parallel_branches_join_and_deadline_outcome(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "stage_note", "string").await;
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    template(
        &s,
        "both-ways",
        json!([
            {"id": "split", "kind": "parallel", "branches": [
                [{"id": "cut", "kind": "task", "title": "Cut panels", "assignee": {"relation": "responsible"}, "wait": true}],
                [{"id": "ok", "kind": "approval", "assignees": [{"relation": "responsible"}], "deadline_s": 1, "default": "approved"}]
            ]},
            {"id": "done", "kind": "set-fields", "fields": {"stage_note": "joined"}}
        ]),
    )
    .await;
    let deal = new_deal(&s, "Wardrobe", manager).await;
    let id = start(&s, "both-ways", &deal, json!({})).await;
    // The approval's deadline passes: its default outcome applies and its assignment is cancelled.
    s.wait_for(20, "the default outcome", || async {
        (process(&s, &id).await["variables"]["ok"] == "approved").then_some(())
    })
    .await;
    open_assignments(&s, &token, 0).await;
    let running = process(&s, &id).await;
    assert_eq!(running["status"], "running");
    assert_eq!(running["current_steps"], json!(["cut"]));
    assert!(s.item("deal", &deal).await["fields"].get("stage_note").is_none());
    let log = running["log"].as_array().cloned().unwrap_or_default();
    assert!(log.iter().any(|l| l["text"].as_str().is_some_and(|t| t.contains("deadline passed"))));

    // The task's completion joins the branches.
    let tasks = s.get(&format!("/api/v1/tasks?item_type=deal&item_id={deal}")).await.ok(200);
    let task = tasks["items"][0]["id"].clone();
    s.call_as(&token, Method::POST, &format!("/api/v1/tasks/{task}/complete"), Some(json!({}))).await.ok(200);
    wait_status(&s, &id, "completed").await;
    assert_eq!(s.item("deal", &deal).await["fields"]["stage_note"], "joined");
}
both!(parallel_branches_join_and_deadline_outcome);

async fn a_restart_resumes_each_step_once(backend: Backend) {
    let mut s = Server::start(backend).await;
    string_field(&s, "b_size", "string").await;
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    template(
        &s,
        "slow",
        json!([
            {"id": "hello", "kind": "notify", "to": {"relation": "responsible"}, "text": "Started"},
            {"id": "pause", "kind": "wait", "duration_s": 2},
            {"id": "ask", "kind": "request-info", "assignee": {"relation": "responsible"}, "write_to": "fields",
             "form": [{"key": "b_size", "kind": "string", "required": true}]},
            {"id": "bye", "kind": "notify", "to": {"relation": "responsible"}, "text": "Finished"}
        ]),
    )
    .await;
    let deal = new_deal(&s, "Across a restart", manager).await;
    let id = start(&s, "slow", &deal, json!({})).await;
    s.wait_for(20, "the first step", || async {
        (process(&s, &id).await["current_steps"] == json!(["pause"])).then_some(())
    })
    .await;
    s.crash();
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.start_again();
    let ask = open_assignments(&s, &token, 1).await;
    s.restart();
    let path = format!("/api/v1/assignments/{}/complete", ask[0]["id"]);
    s.call_as(&token, Method::POST, &path, Some(json!({"fields": {"b_size": "2x2"}}))).await.ok(200);
    wait_status(&s, &id, "completed").await;
    let inbox = s.call_as(&token, Method::GET, "/api/v1/notifications?limit=500", None).await.ok(200);
    let texts: Vec<&str> =
        inbox["items"].as_array().map(|n| n.iter().filter_map(|n| n["text"].as_str()).collect()).unwrap_or_default();
    assert_eq!(texts.iter().filter(|t| **t == "Started").count(), 1, "{texts:?}");
    assert_eq!(texts.iter().filter(|t| **t == "Finished").count(), 1, "{texts:?}");
    assert_eq!(open_assignments(&s, &token, 0).await.len(), 0);
}
both!(a_restart_resumes_each_step_once);

async fn plugin_steps_versions_validation_and_termination(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "size", "string").await;
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    let script = r#"fn execute(ctx) {
        items::update_fields("deal", ctx.item.id, #{ size: "XL" });
        #{ doubled: ctx.variables.n * 2, branch: "big" }
    }"#;
    let manifest = json!({"name": "doubler", "version": "1.0.0", "kind": "rhai", "world": "bp-step", "capabilities": ["items:write"]});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    let v1 = template(&s, "calc", json!([{"id": "p", "kind": "plugin", "plugin": "doubler", "config": {}}])).await;
    assert_eq!(v1["version"], 1);
    let deal = new_deal(&s, "Plugin", manager).await;
    let id = start(&s, "calc", &deal, json!({"n": 21})).await;
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["doubled"], 42);
    assert_eq!(done["variables"]["p"], "big");
    assert_eq!(s.item("deal", &deal).await["fields"]["size"], "XL");

    // A failing plugin fails the process, visibly, and writes nothing.
    let failing = json!({"name": "broken", "version": "1.0.0", "kind": "rhai", "world": "bp-step", "capabilities": []});
    s.upload(
        failing,
        br#"fn execute(ctx) { items::update_fields("deal", ctx.item.id, #{ size: "S" }); #{} }"#.to_vec(),
    )
    .await
    .ok(201);
    template(&s, "broken", json!([{"id": "b", "kind": "plugin", "plugin": "broken"}])).await;
    let id = start(&s, "broken", &deal, json!({})).await;
    let failed = wait_status(&s, &id, "failed").await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("step b")), "{failed}");
    assert_eq!(s.item("deal", &deal).await["fields"]["size"], "XL");

    // A new version applies to new instances; running ones keep theirs.
    template(
        &s,
        "ask",
        json!([{"id": "a", "kind": "request-info", "assignee": {"user": manager},
        "form": [{"key": "x", "kind": "string"}]}]),
    )
    .await;
    let old = start(&s, "ask", &deal, json!({})).await;
    let v2 = template(&s, "ask", json!([{"id": "z", "kind": "notify", "to": {"user": manager}, "text": "v2"}])).await;
    assert_eq!(v2["version"], 2);
    let new = start(&s, "ask", &deal, json!({})).await;
    wait_status(&s, &new, "completed").await;
    let running = process(&s, &old).await;
    assert_eq!(running["template_version"], 1);
    assert_eq!(running["current_steps"], json!(["a"]));
    assert_eq!(s.get("/api/v1/processes/templates/ask?version=1").await.ok(200)["steps"][0]["id"], "a");

    // Terminating cancels its open assignment.
    open_assignments(&s, &token, 1).await;
    let stopped = s.post(&format!("/api/v1/processes/{old}/terminate"), json!({})).await.ok(200);
    assert_eq!(stopped["status"], "terminated");
    open_assignments(&s, &token, 0).await;
    s.post(&format!("/api/v1/processes/{old}/terminate"), json!({})).await.problem(409, "conflict");

    // Bad templates are refused whole, with every problem named.
    let p = s
        .post(
            "/api/v1/processes/templates",
            json!({"key": "Bad Key", "type": "nothing", "steps": [
                {"id": "c", "kind": "condition", "when": "vars.x ==", "then": []},
                {"id": "c", "kind": "approval", "assignees": []}]}),
        )
        .await
        .problem(422, "validation-failed");
    let mut fields = Reply::error_fields(&p);
    fields.sort();
    assert_eq!(fields, vec!["key", "steps", "steps[0].when", "steps[1].assignees", "type"]);
    let list = s.get("/api/v1/processes/templates").await.ok(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3));
    s.post("/api/v1/processes", json!({"template": "nope", "item": {"type": "deal", "id": deal}}))
        .await
        .problem(422, "validation-failed");
}
both!(plugin_steps_versions_validation_and_termination);

/// The case's core loop: a deal enters a stage → the `start-process` robot starts a process →
/// a task is assigned and notified → it is completed → the process asks for information →
/// the manager fills it in → a trigger moves the deal to the next stage.
async fn the_case_core_loop(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "b_size", "string").await;
    s.post("/api/v1/roles", json!({"key": "production", "permissions": [{"type": "deal", "access": "read"}]}))
        .await
        .ok(201);
    let (worker, worker_token) = s.user_with_roles("w@example.com", &["production"]).await;
    let (manager, manager_token) = s.user_with_roles("m@example.com", &[]).await;
    template(
        &s,
        "launch-production",
        json!([
            {"id": "t", "kind": "task", "title": "Cut panels", "assignee": {"role": "production"}, "wait": true},
            {"id": "ask", "kind": "request-info", "assignee": {"relation": "responsible"},
             "form": [{"key": "b_size", "title": "Size", "kind": "string", "required": true}], "write_to": "fields"}
        ]),
    )
    .await;
    let stages = "/api/v1/types/deal/funnels/default/stages";
    s.post(
        &format!("{stages}/in-progress/robots"),
        json!({"plugin": "start-process", "config": {"template": "launch-production"}}),
    )
    .await
    .ok(201);
    s.post(&format!("{stages}/won/triggers"), json!({"kind": "field-changed", "config": {"field": "b_size"}}))
        .await
        .ok(201);

    let deal = new_deal(&s, "Kitchen", manager).await;
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let task = s
        .wait_for(20, "the process's task", || async {
            let page = s.call_as(&worker_token, Method::GET, "/api/v1/tasks?mine=true", None).await.ok(200);
            page["items"].as_array()?.first().cloned()
        })
        .await;
    assert_eq!(task["responsible"], worker);
    assert_eq!(task["creator"]["kind"], "process");
    let inbox = s.call_as(&worker_token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    assert_eq!(inbox["items"][0]["kind"], "task-assigned");
    s.call_as(
        &worker_token,
        Method::POST,
        &format!("/api/v1/tasks/{}/complete", task["id"]),
        Some(json!({"result": "cut"})),
    )
    .await
    .ok(200);

    let ask = open_assignments(&s, &manager_token, 1).await;
    assert_eq!(ask[0]["kind"], "request-info");
    let inbox = s.call_as(&manager_token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    assert!(inbox["items"].as_array().is_some_and(|n| n.iter().any(|n| n["kind"] == "assignment")));
    let path = format!("/api/v1/assignments/{}/complete", ask[0]["id"]);
    s.call_as(&manager_token, Method::POST, &path, Some(json!({"fields": {"b_size": "2400x600"}}))).await.ok(200);
    s.wait_for(20, "the deal to move on", || async { (s.item("deal", &deal).await["stage"] == "won").then_some(()) })
        .await;
    let processes = s.get(&format!("/api/v1/processes?item_type=deal&item_id={deal}")).await.ok(200);
    let id = processes["items"][0]["id"].clone();
    wait_status(&s, &id, "completed").await;
}
both!(the_case_core_loop);

async fn waits_for_an_event_of_its_item(backend: Backend) {
    let mut s = Server::start(backend).await;
    string_field(&s, "note", "string").await;
    template(
        &s,
        "until-won",
        json!([
            {"id": "w", "kind": "wait", "event": "item.stage_changed", "stage": "won"},
            {"id": "done", "kind": "set-fields", "fields": {"note": "won at last"}}
        ]),
    )
    .await;
    let deal = new_deal(&s, "Waiting", 1).await;
    let other = new_deal(&s, "Other", 1).await;
    let id = start(&s, "until-won", &deal, json!({})).await;
    s.wait_for(20, "the wait to begin", || async {
        (process(&s, &id).await["current_steps"] == json!(["w"])).then_some(())
    })
    .await;
    // Other items' events and other stages do not end the wait.
    s.post(&format!("/api/v1/items/deal/{other}/move"), json!({"stage": "won"})).await.ok(200);
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    s.settled().await;
    assert_eq!(process(&s, &id).await["status"], "running");
    // The wait survives a restart.
    s.stop();
    s.start_again();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "won"})).await.ok(200);
    wait_status(&s, &id, "completed").await;
    assert_eq!(s.item("deal", &deal).await["fields"]["note"], "won at last");
    let p = s
        .post(
            "/api/v1/processes/templates",
            json!({"key": "bad-wait", "type": "deal", "steps": [
            {"id": "w", "kind": "wait", "event": "task.completed"}]}),
        )
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["steps[0].event"]);
}
both!(waits_for_an_event_of_its_item);

async fn children_delegation_and_runaway_starts(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "outcome", "string").await;
    let (a, a_token) = s.user_with_roles("a@example.com", &[]).await;
    let (b, _) = s.user_with_roles("b@example.com", &[]).await;
    let (c, c_token) = s.user_with_roles("c@example.com", &[]).await;
    let deal = new_deal(&s, "Family", a).await;

    // A parent learns how its child ended.
    template(&s, "child", json!([{"id": "ok", "kind": "approval", "assignees": [{"user": a}, {"user": b}]}])).await;
    template(
        &s,
        "parent",
        json!([
            {"id": "sub", "kind": "start-process", "template": "child", "wait": true},
            {"id": "check", "kind": "condition", "when": "vars.sub.status == \"completed\"",
             "then": [{"id": "good", "kind": "set-fields", "fields": {"outcome": "child done"}}],
             "else": [{"id": "bad", "kind": "set-fields", "fields": {"outcome": "child stopped"}}]}
        ]),
    )
    .await;
    let parent = start(&s, "parent", &deal, json!({})).await;
    let mine = open_assignments(&s, &a_token, 1).await;
    let child = mine[0]["process"].clone();
    assert_eq!(process(&s, &child).await["parent"], parent);

    // Delegating to someone who already decides in this step is refused; to another, allowed.
    let path = format!("/api/v1/assignments/{}/delegate", mine[0]["id"]);
    let p = s.call_as(&a_token, Method::POST, &path, Some(json!({"to": b}))).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["to"]);
    let handed = s.call_as(&a_token, Method::POST, &path, Some(json!({"to": c}))).await.ok(200);
    assert_eq!(handed["user"], c);
    open_assignments(&s, &c_token, 1).await;
    open_assignments(&s, &a_token, 0).await;

    s.post(&format!("/api/v1/processes/{child}/terminate"), json!({})).await.ok(200);
    let done = wait_status(&s, &parent, "completed").await;
    assert_eq!(done["variables"]["sub"]["status"], "terminated");
    assert_eq!(s.item("deal", &deal).await["fields"]["outcome"], "child stopped");

    // A template that starts itself is stopped after a bounded chain.
    template(&s, "again", json!([{"id": "more", "kind": "start-process", "template": "again"}])).await;
    start(&s, "again", &deal, json!({})).await;
    let failed = s
        .wait_for(30, "the runaway chain to stop", || async {
            let page = s.get("/api/v1/processes?status=failed").await.ok(200);
            page["items"].as_array()?.first().cloned()
        })
        .await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("automation chain stopped")), "{failed}");
    s.settled().await;
    let all = s.get("/api/v1/processes?limit=500").await.ok(200);
    let again = all["items"].as_array().map(|a| a.iter().filter(|p| p["template"] == "again").count()).unwrap_or(0);
    assert!((2..=11).contains(&again), "{again} instances of a self-starting template");
}
both!(children_delegation_and_runaway_starts);

/// The template of the issue, as written there, is accepted and runs up to its first person.
async fn the_issue_template_is_accepted(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "b_size", "string").await;
    s.post("/api/v1/types/deal/fields", json!({"key": "b_launched", "title": "Launched", "kind": "bool"}))
        .await
        .ok(201);
    // Its plugin step names a bp-step plugin, which must exist when the template is saved.
    let manifest =
        json!({"name": "my-step", "version": "1.0.0", "kind": "rhai", "world": "bp-step", "capabilities": []});
    s.upload(manifest, br#"fn execute(ctx) { #{} }"#.to_vec()).await.ok(201);
    let body = json!({"key":"launch-production","type":"deal","title":"Launch production","steps":[
        {"id":"ask","kind":"request-info","assignee":{"relation":"responsible"},
         "form":[{"key":"b_size","title":"Size","kind":"string","required":true}],"write_to":"fields"},
        {"id":"approve","kind":"approval","assignees":[{"relation":"responsible"},
         {"relation":"department-head"}],"mode":"all"},
        {"id":"check","kind":"condition","when":"vars.approve == \"approved\"",
         "then":[{"id":"go","kind":"set-fields","fields":{"b_launched":true}}],
         "else":[{"id":"tell","kind":"notify","to":{"relation":"responsible"},"text":"Rejected"}]},
        {"id":"t","kind":"task","title":"Cut panels","assignee":{"role":"production"},"wait":true},
        {"id":"p","kind":"plugin","plugin":"my-step","version":"latest","config":{}}]});
    let saved = s.post("/api/v1/processes/templates", body).await.ok(201);
    assert_eq!(saved["version"], 1);
    let (manager, token) = s.user_with_roles("m@example.com", &[]).await;
    let deal = new_deal(&s, "Kitchen", manager).await;
    let id = start(&s, "launch-production", &deal, json!({})).await;
    let ask = open_assignments(&s, &token, 1).await;
    assert_eq!(ask[0]["step"], "ask");
    assert_eq!(process(&s, &id).await["current_steps"], json!(["ask"]));
}
both!(the_issue_template_is_accepted);

/// A slow plugin step runs outside the database's write turn: other writes go on meanwhile.
async fn a_slow_plugin_step_blocks_no_one(backend: Backend) {
    let s = Server::start(backend).await;
    let script = r#"fn execute(ctx) {
        let start = clock::now();
        while clock::now() - start < 2500000 { }
        #{ slept: true }
    }"#;
    let manifest = json!({"name": "sleeper", "version": "1.0.0", "kind": "rhai", "world": "bp-step",
        "capabilities": [], "limits": {"timeout_ms": 10000}});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    template(&s, "slow-step", json!([{"id": "z", "kind": "plugin", "plugin": "sleeper"}])).await;
    let deal = new_deal(&s, "Slow", 1).await;
    let id = start(&s, "slow-step", &deal, json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = std::time::Instant::now();
    new_deal(&s, "Meanwhile", 1).await;
    let took = sent.elapsed();
    assert!(took < Duration::from_millis(1500), "a write waited {took:?} for a plugin step");
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["slept"], true);
}
both!(a_slow_plugin_step_blocks_no_one);

/// A wait for one field's change sees it however many other changes came first.
async fn an_event_wait_looks_past_other_changes(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "flag", "string").await;
    string_field(&s, "other", "string").await;
    template(&s, "flagged", json!([{"id": "w", "kind": "wait", "event": "item.updated", "field": "flag"}])).await;
    let deal = new_deal(&s, "Busy", 1).await;
    let id = start(&s, "flagged", &deal, json!({})).await;
    s.wait_for(20, "the wait to begin", || async {
        (process(&s, &id).await["current_steps"] == json!(["w"])).then_some(())
    })
    .await;
    for i in 0..210 {
        s.patch(&format!("/api/v1/items/deal/{deal}"), json!({"fields": {"other": format!("v{i}")}})).await.ok(200);
    }
    assert_eq!(process(&s, &id).await["status"], "running");
    s.patch(&format!("/api/v1/items/deal/{deal}"), json!({"fields": {"flag": "up"}})).await.ok(200);
    wait_status(&s, &id, "completed").await;
}
both!(an_event_wait_looks_past_other_changes);

/// The step component built from plugins/testing/bp-step-doubler.
const BP_STEP_DOUBLER: &[u8] = voronka_builtins::test::BP_STEP_DOUBLER;

/// A Wasm plugin step: its variables merge in, its branch becomes the step's variable, its
/// write lands on the item.
async fn a_wasm_plugin_step(backend: Backend) {
    let s = Server::start(backend).await;
    string_field(&s, "size", "string").await;
    let manifest = json!({"name": "doubler", "version": "1.0.0", "kind": "wasm", "world": "bp-step",
        "capabilities": ["items:write"]});
    s.upload(manifest, BP_STEP_DOUBLER.to_vec()).await.ok(201);
    template(&s, "wasm-step", json!([{"id": "d", "kind": "plugin", "plugin": "doubler", "config": {"factor": 3}}]))
        .await;
    let deal = new_deal(&s, "Wasm", 1).await;
    let id = start(&s, "wasm-step", &deal, json!({"n": 14})).await;
    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["variables"]["product"], 42);
    assert_eq!(done["variables"]["d"], "wasm");
    assert_eq!(s.item("deal", &deal).await["fields"]["size"], "W");
    // Without the capability its write is refused and the step fails, writing nothing.
    let manifest = json!({"name": "doubler-denied", "version": "1.0.0", "kind": "wasm", "world": "bp-step"});
    s.upload(manifest, BP_STEP_DOUBLER.to_vec()).await.ok(201);
    template(&s, "wasm-denied", json!([{"id": "d", "kind": "plugin", "plugin": "doubler-denied"}])).await;
    let other = new_deal(&s, "Denied", 1).await;
    let id = start(&s, "wasm-denied", &other, json!({"n": 1})).await;
    let failed = wait_status(&s, &id, "failed").await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("items:write")), "{failed}");
    assert!(s.item("deal", &other).await["fields"].get("size").is_none());
}
both!(a_wasm_plugin_step);
