//! Smaller defects of issue 17: plugin errors read as the plugin wrote them, multipart errors
//! are problem documents, stage history starts at creation, the API document is public and
//! lists the code's enums, and administrators (and readers of an item) list others' work.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

const ROBOTS: &str = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

/// The timeline entries of a deal (newest first) whose text starts with `prefix`.
async fn entries_starting(s: &Server, deal: &Value, prefix: &str) -> Vec<Value> {
    let page = s.get(&format!("/api/v1/items/deal/{deal}/timeline?limit=500")).await.ok(200);
    let items = page["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|e| e["text"].as_str().is_some_and(|t| t.starts_with(prefix))).collect()
}

async fn script_and_plugin_errors_read_as_written(backend: Backend) {
    let s = Server::start(backend).await;
    let rhai = |name: &str| json!({"name": name, "version": "1.0.0", "kind": "rhai", "world": "robot"});
    s.upload(rhai("thrower"), br#"fn run(ctx) { throw "customer has no phone"; }"#.to_vec()).await.ok(201);
    let record = br#"fn run(ctx) { throw #{code: "no-phone", message: "customer has no phone"}; }"#;
    s.upload(rhai("recorder"), record.to_vec()).await.ok(201);
    s.upload(rhai("silent"), b"fn run(ctx) { throw; }".to_vec()).await.ok(201);
    let wasm = json!({"name": "failing", "version": "1.0.0", "kind": "wasm", "world": "robot"});
    s.upload(wasm, voronka_builtins::test::HOSTILE.to_vec()).await.ok(201);
    for (order, plugin) in ["thrower", "recorder", "silent", "failing"].iter().enumerate() {
        let condition = format!("item.title == \"{plugin}\"");
        let binding = json!({"plugin": plugin, "config": {"mode": "error"}, "condition": condition,
            "mode": "parallel", "order": order + 1});
        s.post(ROBOTS, binding).await.ok(201);
    }
    let expected = [
        ("thrower", "customer has no phone"),
        ("recorder", "no-phone: customer has no phone"),
        ("silent", "the script threw without a value"),
        ("failing", "no-phone: customer has no phone"),
    ];
    let mut deals = Vec::new();
    for (plugin, _) in expected {
        let deal = new_deal(&s, plugin).await;
        s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
        deals.push(deal);
    }
    s.settled().await;
    for ((plugin, message), deal) in expected.iter().zip(&deals) {
        let failed = entries_starting(&s, deal, "Robot ").await;
        assert_eq!(failed.len(), 1, "{plugin}: {failed:?}");
        assert_eq!(failed[0]["text"], format!("Robot {plugin}@1.0.0 failed (error): {message}"));
        // The run's error, as the timeline entry's data carries it.
        assert_eq!(failed[0]["data"]["message"], *message, "{plugin}");
        assert_eq!(failed[0]["data"]["kind"], "error");
        assert!(!failed[0]["text"].as_str().unwrap_or("").contains("error: error"));
    }
}
both!(script_and_plugin_errors_read_as_written);

/// Asserts a problem document of `status` and `code`.
#[track_caller]
fn refused(reply: Reply, status: u16, code: &str) {
    reply.problem(status, code);
}

async fn send(s: &Server, path: &str, content_type: Option<&str>, body: String) -> Reply {
    let mut request = s.request(Method::POST, path).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    Reply::from(request.send().await.expect("request")).await
}

async fn multipart_errors_are_problem_documents(backend: Backend) {
    let s = Server::start(backend).await;
    let deal = new_deal(&s, "Drawings").await;
    for (path, part) in [("/api/v1/files", "file"), ("/api/v1/plugins", "module")] {
        let head = format!("--XX\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"a.txt\"\r\n\r\n");
        let form = format!("{head}hello\r\n--XX--\r\n");
        let truncated = format!("{head}hel");
        // The README's old mistake: curl -F with a JSON content type from the `auth` array.
        refused(send(&s, path, Some("application/json"), form.clone()).await, 415, "unsupported-media-type");
        refused(send(&s, path, None, form.clone()).await, 415, "unsupported-media-type");
        refused(send(&s, path, Some("multipart/form-data"), form.clone()).await, 400, "bad-multipart");
        refused(send(&s, path, Some("multipart/form-data; boundary=YY"), form).await, 400, "bad-multipart");
        refused(send(&s, path, Some("multipart/form-data; boundary=XX"), truncated).await, 400, "bad-multipart");
    }
    // Missing parts name the part.
    let only_item = reqwest::multipart::Form::new().text("type", "deal").text("item", deal.to_string());
    let reply = Reply::from(s.request(Method::POST, "/api/v1/files").multipart(only_item).send().await.unwrap()).await;
    assert_eq!(Reply::error_fields(&reply.problem(422, "validation-failed")), ["file"]);
    let no_module = reqwest::multipart::Form::new()
        .text("manifest", json!({"name": "x", "version": "1.0.0", "kind": "rhai", "world": "robot"}).to_string());
    let reply =
        Reply::from(s.request(Method::POST, "/api/v1/plugins").multipart(no_module).send().await.unwrap()).await;
    assert_eq!(Reply::error_fields(&reply.problem(422, "validation-failed")), ["module"]);
    // Nothing was stored: no file, nothing staged, no plugin `x`, nothing on the deal.
    s.get("/api/v1/files/1").await.problem(404, "not-found");
    let attached = s.get(&format!("/api/v1/items/deal/{deal}/files")).await.ok(200);
    assert_eq!(attached["items"], json!([]));
    let staged = std::fs::read_dir(s.dir.join("files").join("staging")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staged, 0, "no upload is left staged");
    s.get("/api/v1/plugins/x").await.problem(404, "not-found");
    // A good upload still works.
    let good = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt"))
        .text("type", "deal")
        .text("item", deal.to_string());
    let reply = Reply::from(s.request(Method::POST, "/api/v1/files").multipart(good).send().await.unwrap()).await;
    assert_eq!(reply.ok(201)["size"], 5);
}
both!(multipart_errors_are_problem_documents);

async fn stage_history_starts_at_creation(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    let (user, token) = s.user_with_roles("anna@example.com", &["sales"]).await;
    let created = s.call_as(&token, Method::POST, "/api/v1/items/deal", Some(json!({"title": "Kitchen"}))).await;
    let deal = created.ok(201);
    let id = &deal["id"];
    let history = s.get(&format!("/api/v1/items/deal/{id}/history")).await.ok(200);
    let entries = history["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["from"], Value::Null);
    assert_eq!(entries[0]["to"], json!({"funnel": deal["funnel"], "stage": deal["stage"]}));
    assert_eq!(entries[0]["to"]["stage"], "new");
    assert_eq!(entries[0]["actor"], json!({"kind": "user", "id": user}));
    assert_eq!(entries[0]["at"], deal["created_at"], "recorded with the creation");
    // A move continues from there: the first stage's time is the gap between the two entries.
    s.post(&format!("/api/v1/items/deal/{id}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let history = s.get(&format!("/api/v1/items/deal/{id}/history")).await.ok(200);
    let entries = history["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["from"], entries[0]["to"]);
    assert!(entries[1]["at"].as_str() >= entries[0]["at"].as_str());
    // Items of a type without stages have no stage history.
    s.post("/api/v1/types", json!({"key": "note", "title": "Note", "has_stages": false})).await.ok(201);
    let note = s.post("/api/v1/items/note", json!({"title": "Call back"})).await.ok(201);
    assert_eq!(note["funnel"], Value::Null);
    let history = s.get(&format!("/api/v1/items/note/{}/history", note["id"])).await.ok(200);
    assert_eq!(history["items"], json!([]));
    // A refused creation records no history entry.
    let bad = s.post("/api/v1/items/deal", json!({"title": "", "stage": "in-progress"})).await;
    bad.problem(422, "validation-failed");
    s.get(&format!("/api/v1/items/deal/{}/history", id.as_i64().unwrap_or(0) + 1)).await.problem(404, "not-found");
    s.get(&format!("/api/v1/items/deal/{id}/history?limit=0")).await.problem(422, "validation-failed");
}
both!(stage_history_starts_at_creation);

/// The values an enum schema of the API document lists.
fn listed(document: &Value, schema: &str) -> Vec<String> {
    let values = document["components"]["schemas"][schema]["enum"].as_array().cloned().unwrap_or_default();
    values.iter().filter_map(|v| v.as_str().map(String::from)).collect()
}

async fn the_api_document_is_public_and_lists_the_codes_enums(backend: Backend) {
    let s = Server::start(backend).await;
    for token in ["", "not-a-token"] {
        let reply = s.call_as(token, Method::GET, "/api/v1/openapi.json", None).await;
        let document = reply.ok(200);
        assert!(document["paths"]["/api/v1/items/{type}"].is_object());
        use voronka_model::{capability, field, plugin, process, trigger, variant_names};
        let expected = [
            ("TriggerKind", variant_names::<trigger::TriggerKind>(None)),
            ("Capability", variant_names::<capability::Capability>(None)),
            ("StepKind", variant_names::<process::StepKind>(Some("kind"))),
            ("FieldKind", variant_names::<field::FieldKind>(None)),
            ("World", variant_names::<plugin::World>(None)),
        ];
        for (schema, code) in expected {
            assert!(!code.is_empty(), "{schema}");
            assert_eq!(listed(&document, schema), code, "{schema}");
        }
        assert!(listed(&document, "Capability").contains(&"processes:start".to_string()));
        assert!(listed(&document, "TriggerKind").contains(&"task-completed".to_string()));
    }
    // Everything else still needs a token.
    s.call_as("", Method::GET, "/api/v1/items/deal", None).await.problem(401, "unauthorized");
    s.call_as("not-a-token", Method::GET, "/api/v1/types", None).await.problem(401, "unauthorized");
}
both!(the_api_document_is_public_and_lists_the_codes_enums);

/// The ids of a list answered to `token`.
async fn ids(s: &Server, token: &str, path: &str) -> Vec<i64> {
    let page = s.call_as(token, Method::GET, path, None).await.ok(200);
    page["items"].as_array().map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect()).unwrap_or_default()
}

async fn admins_and_readers_list_others_work(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    let (anna, anna_token) = s.user_with_roles("anna@example.com", &["sales"]).await;
    let (boris, boris_token) = s.user_with_roles("boris@example.com", &["sales"]).await;
    let (_, guest_token) = s.user_with_roles("guest@example.com", &[]).await;
    let admin = s.admin.clone();
    let deal =
        s.post("/api/v1/items/deal", json!({"title": "Kitchen", "responsible": anna})).await.ok(201)["id"].clone();
    let other =
        s.post("/api/v1/items/deal", json!({"title": "Other", "responsible": boris})).await.ok(201)["id"].clone();
    let steps =
        json!([{"id": "ok", "kind": "approval", "assignees": [{"user": anna}, {"user": boris}], "mode": "all"}]);
    s.post("/api/v1/processes/templates", json!({"key": "ok", "type": "deal", "title": "OK", "steps": steps}))
        .await
        .ok(201);
    for item in [&deal, &other] {
        s.post("/api/v1/processes", json!({"template": "ok", "item": {"type": "deal", "id": item}, "params": {}}))
            .await
            .ok(201);
    }
    s.settled().await;

    // Assignments: the administrator's own (none), one user's, everyone's.
    assert_eq!(ids(&s, &admin, "/api/v1/assignments").await.len(), 0);
    let everyone = ids(&s, &admin, "/api/v1/assignments?all=true").await;
    assert_eq!(everyone.len(), 4);
    let annas = ids(&s, &anna_token, "/api/v1/assignments").await;
    assert_eq!(annas.len(), 2);
    assert_eq!(ids(&s, &admin, &format!("/api/v1/assignments?user={anna}")).await, annas);
    assert_eq!(ids(&s, &anna_token, &format!("/api/v1/assignments?user={anna}")).await, annas);
    // Readers of the item see everyone's assignments on it; others only their own.
    let on_deal = format!("/api/v1/assignments?item_type=deal&item_id={deal}");
    assert_eq!(ids(&s, &boris_token, &on_deal).await.len(), 2);
    assert_eq!(ids(&s, &guest_token, &on_deal).await.len(), 0);
    assert_eq!(ids(&s, &admin, &format!("{on_deal}&status=all")).await.len(), 2);
    // Others' lists are for administrators; bad filters are named.
    for path in [format!("/api/v1/assignments?user={boris}"), "/api/v1/assignments?all=true".to_string()] {
        s.call_as(&anna_token, Method::GET, &path, None).await.problem(403, "forbidden");
    }
    let bad = [
        (format!("/api/v1/assignments?user={anna}&all=true"), "all"),
        ("/api/v1/assignments?item_type=deal".to_string(), "item_type"),
        ("/api/v1/assignments?all=true&status=late".to_string(), "status"),
    ];
    for (path, field) in bad {
        let problem = s.get(&path).await.problem(422, "validation-failed");
        assert_eq!(Reply::error_fields(&problem), [field], "{path}");
    }

    // Tasks: one for each of them on the deal, then lists as above.
    let mut tasks = Vec::new();
    for user in [anna, boris] {
        let task = json!({"title": "Call", "responsible": user, "links": [{"type": "deal", "id": deal}]});
        tasks.push(s.post("/api/v1/tasks", task).await.ok(201)["id"].as_i64().unwrap_or(0));
    }
    let task = json!({"title": "Measure", "responsible": anna, "links": [{"type": "deal", "id": other}]});
    tasks.push(s.post("/api/v1/tasks", task).await.ok(201)["id"].as_i64().unwrap_or(0));
    assert_eq!(ids(&s, &admin, "/api/v1/tasks?all=true").await, tasks);
    assert_eq!(ids(&s, &admin, &format!("/api/v1/tasks?user={anna}")).await, [tasks[0], tasks[2]]);
    assert_eq!(ids(&s, &anna_token, &format!("/api/v1/tasks?user={anna}")).await, [tasks[0], tasks[2]]);
    assert_eq!(ids(&s, &boris_token, "/api/v1/tasks").await, [tasks[1]]);
    let on_deal = format!("/api/v1/tasks?item_type=deal&item_id={deal}");
    assert_eq!(ids(&s, &boris_token, &on_deal).await, [tasks[0], tasks[1]]);
    assert_eq!(ids(&s, &guest_token, &on_deal).await, Vec::<i64>::new());
    for path in [format!("/api/v1/tasks?user={boris}"), "/api/v1/tasks?all=true".to_string()] {
        s.call_as(&anna_token, Method::GET, &path, None).await.problem(403, "forbidden");
    }
    let bad = [
        (format!("/api/v1/tasks?user={anna}&all=true"), "all"),
        (format!("/api/v1/tasks?mine=true&user={anna}"), "mine"),
        ("/api/v1/tasks?mine=true&all=true".to_string(), "mine"),
    ];
    for (path, field) in bad {
        let problem = s.get(&path).await.problem(422, "validation-failed");
        assert_eq!(Reply::error_fields(&problem), [field], "{path}");
    }
    for path in ["/api/v1/tasks?all=yes", "/api/v1/assignments?all=maybe", "/api/v1/assignments?user=anna"] {
        s.get(path).await.problem(400, "bad-query");
    }
}
both!(admins_and_readers_list_others_work);
