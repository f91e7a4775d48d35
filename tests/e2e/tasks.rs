//! Tasks, notifications and the file store: the task lifecycle with its notifications and
//! events, assignees by relation and role, deadlines going overdue on time, the `create-task`
//! robot and the task-completed trigger, `notify` from a plugin, uploads and downloads.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn new_deal(s: &Server, title: &str, responsible: i64) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title, "responsible": responsible})).await.ok(201)["id"].clone()
}

/// The caller's notifications, newest first.
async fn inbox(s: &Server, token: &str) -> Vec<Value> {
    let page = s.call_as(token, Method::GET, "/api/v1/notifications", None).await.ok(200);
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn unread(s: &Server, token: &str) -> i64 {
    s.call_as(token, Method::GET, "/api/v1/notifications/unread-count", None).await.ok(200)["unread"]
        .as_i64()
        .unwrap_or(-1)
}

/// Kinds of the events after `cursor`.
async fn event_kinds(s: &Server) -> Vec<String> {
    let page = s.get("/api/v1/events?limit=500").await.ok(200);
    page["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["kind"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn task_lifecycle(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    let (anna, anna_token) = s.user_with_roles("anna@example.com", &["sales"]).await;
    let (_, outsider_token) = s.user_with_roles("outsider@example.com", &[]).await;
    let deal = new_deal(&s, "Kitchen", anna).await;

    // The administrator gives Anna a task about the deal; she is notified.
    let task = s
        .post(
            "/api/v1/tasks",
            json!({"title": "Measure the kitchen", "responsible": anna, "deadline": "2030-01-01T12:00:00Z",
                   "links": [{"type": "deal", "id": deal}], "require_result": true,
                   "checklist": [{"text": "Walls"}, {"text": "Windows", "done": true}], "tags": ["measure"]}),
        )
        .await
        .ok(201);
    let id = task["id"].clone();
    assert_eq!(task["status"], "new");
    assert_eq!(task["responsible"], anna);
    assert_eq!(task["creator"], json!({"kind": "user", "id": 1}));
    assert_eq!(task["links"], json!([{"type": "deal", "id": deal}]));
    assert_eq!(task["overdue"], false);
    assert_eq!(unread(&s, &anna_token).await, 1);
    let notes = inbox(&s, &anna_token).await;
    assert_eq!(notes[0]["kind"], "task-assigned");
    assert_eq!(notes[0]["about"], json!({"type": "deal", "id": deal}));
    assert_eq!(notes[0]["data"]["task"], id);

    // Anna sees it among hers; an outsider does not see it at all.
    let mine = s.call_as(&anna_token, Method::GET, "/api/v1/tasks?mine=true", None).await.ok(200);
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    let linked = s
        .call_as(&anna_token, Method::GET, &format!("/api/v1/tasks?item_type=deal&item_id={deal}"), None)
        .await
        .ok(200);
    assert_eq!(linked["items"][0]["id"], id);
    s.call_as(&outsider_token, Method::GET, &format!("/api/v1/tasks/{id}"), None).await.problem(404, "not-found");
    let theirs = s.call_as(&outsider_token, Method::GET, "/api/v1/tasks", None).await.ok(200);
    assert_eq!(theirs["items"], json!([]));
    s.call_as(&outsider_token, Method::POST, &format!("/api/v1/tasks/{id}/complete"), Some(json!({"result": "x"})))
        .await
        .problem(404, "not-found");

    // Reading a deal is not enough to link a task to it (a completed task may move it).
    s.post("/api/v1/roles", json!({"key": "reader", "permissions": [{"type": "deal", "access": "read"}]}))
        .await
        .ok(201);
    let (_, reader_token) = s.user_with_roles("reader@example.com", &["reader"]).await;
    let p = s
        .call_as(
            &reader_token,
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"title": "Mine", "links": [{"type": "deal", "id": deal}]})),
        )
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["links[0]"]);
    // The responsible may not loosen the task's terms.
    s.call_as(&anna_token, Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(json!({"require_result": false})))
        .await
        .problem(403, "forbidden");

    // Anna works on it.
    let patched = s
        .call_as(&anna_token, Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(json!({"status": "in_progress"})))
        .await
        .ok(200);
    assert_eq!(patched["status"], "in_progress");
    assert_eq!(patched["version"], 2);
    s.call_as(&anna_token, Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(json!({"status": "completed"})))
        .await
        .problem(422, "validation-failed");

    // Completing needs the result: refused, and nothing changes.
    let before = s.event_count().await;
    let p = s
        .call_as(&anna_token, Method::POST, &format!("/api/v1/tasks/{id}/complete"), Some(json!({"result": "  "})))
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["result"]);
    assert_eq!(s.event_count().await, before);
    assert_eq!(s.get(&format!("/api/v1/tasks/{id}")).await.ok(200)["status"], "in_progress");

    let done = s
        .call_as(
            &anna_token,
            Method::POST,
            &format!("/api/v1/tasks/{id}/complete"),
            Some(json!({"result": "3.2 x 4.1 m"})),
        )
        .await
        .ok(200);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"], "3.2 x 4.1 m");
    assert!(done["completed_at"].is_string());
    s.call_as(&anna_token, Method::POST, &format!("/api/v1/tasks/{id}/complete"), Some(json!({"result": "again"})))
        .await
        .problem(409, "conflict");
    // The administrator who created it is told.
    let admin_notes = inbox(&s, &s.admin).await;
    assert_eq!(admin_notes[0]["kind"], "task-completed");
    let kinds = event_kinds(&s).await;
    for kind in ["task.created", "task.updated", "task.completed", "notification.created"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} event in {kinds:?}");
    }
    let completed = s.get("/api/v1/tasks?status=completed").await.ok(200);
    assert_eq!(completed["items"].as_array().map(Vec::len), Some(1));

    // Notifications are read one by one or all at once, only one's own.
    let first = inbox(&s, &anna_token).await[0]["id"].clone();
    s.call_as(&outsider_token, Method::POST, &format!("/api/v1/notifications/{first}/read"), None)
        .await
        .problem(404, "not-found");
    let marked =
        s.call_as(&anna_token, Method::POST, &format!("/api/v1/notifications/{first}/read"), None).await.ok(200);
    assert_eq!(marked["marked"], 1);
    assert_eq!(unread(&s, &anna_token).await, 0);
    s.call_as(&anna_token, Method::POST, "/api/v1/notifications/read-all", None).await.ok(200);
}
both!(task_lifecycle);

async fn bad_tasks_are_refused_whole(backend: Backend) {
    let s = Server::start(backend).await;
    let before = s.event_count().await;
    let cases = [
        (json!({"title": " "}), vec!["title"]),
        (json!({"title": "T", "responsible": 999}), vec!["responsible"]),
        (json!({"title": "T", "links": [{"type": "deal", "id": 999}]}), vec!["links[0]"]),
        (json!({"title": "T", "deadline": "tomorrow"}), vec!["deadline"]),
        (json!({"title": "T", "deadline": "2030-01-01T00:00:00Z", "deadline_in_s": 5}), vec!["deadline"]),
        (json!({"title": "T", "auditors": [999]}), vec!["auditors[0]"]),
        (json!({"title": "T", "checklist": [{"text": ""}]}), vec!["checklist[0].text"]),
        (json!({"title": "T", "responsible": {"relation": "responsible"}}), vec!["responsible"]),
        (json!({"title": "T", "responsible": {"role": "nobody-has-it"}}), vec!["responsible"]),
        (
            json!({"title": "", "deadline": "x", "links": [{"type": "deal", "id": 5}]}),
            vec!["title", "deadline", "links[0]"],
        ),
    ];
    for (body, fields) in cases {
        let p = s.post("/api/v1/tasks", body.clone()).await.problem(422, "validation-failed");
        let mut got = Reply::error_fields(&p);
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "for {body}");
    }
    s.post("/api/v1/tasks", json!({"title": "T", "colour": "red"})).await.problem(422, "validation-failed");
    s.post("/api/v1/tasks/5/complete", json!({})).await.problem(404, "not-found");
    assert_eq!(s.get("/api/v1/tasks").await.ok(200)["items"], json!([]));
    assert_eq!(s.event_count().await, before);
}
both!(bad_tasks_are_refused_whole);

async fn assignees_by_relation_and_role(backend: Backend) {
    let s = Server::start(backend).await;
    let (boss, boss_token) = s.user_with_roles("boss@example.com", &[]).await;
    let sales = s.post("/api/v1/departments", json!({"name": "Sales", "head": boss})).await.ok(201);
    let manager = s
        .post("/api/v1/users", json!({"name": "M", "email": "m@example.com", "department": sales["id"]}))
        .await
        .ok(201);
    let deal = new_deal(&s, "Wardrobe", manager["id"].as_i64().unwrap_or_default()).await;
    let link = json!([{"type": "deal", "id": deal}]);
    let to_head = s
        .post(
            "/api/v1/tasks",
            json!({"title": "Approve", "responsible": {"relation": "department-head"}, "links": link}),
        )
        .await
        .ok(201);
    assert_eq!(to_head["responsible"], boss);
    assert_eq!(inbox(&s, &boss_token).await[0]["kind"], "task-assigned");
    let to_responsible = s
        .post("/api/v1/tasks", json!({"title": "Call", "responsible": {"relation": "responsible"}, "links": link}))
        .await
        .ok(201);
    assert_eq!(to_responsible["responsible"], manager["id"]);

    // A role: the holder with fewer open tasks gets it.
    s.post("/api/v1/roles", json!({"key": "production", "permissions": []})).await.ok(201);
    let (first, _) = s.user_with_roles("p1@example.com", &["production"]).await;
    let (second, _) = s.user_with_roles("p2@example.com", &["production"]).await;
    let a = s.post("/api/v1/tasks", json!({"title": "Cut", "responsible": {"role": "production"}})).await.ok(201);
    assert_eq!(a["responsible"], first);
    let b = s.post("/api/v1/tasks", json!({"title": "Edge", "responsible": {"role": "production"}})).await.ok(201);
    assert_eq!(b["responsible"], second);
}
both!(assignees_by_relation_and_role);

async fn deadlines_go_overdue_on_time(backend: Backend) {
    let mut s = Server::start(backend).await;
    let (anna, anna_token) = s.user_with_roles("anna@example.com", &[]).await;
    let task =
        s.post("/api/v1/tasks", json!({"title": "Quick", "responsible": anna, "deadline_in_s": 1})).await.ok(201);
    let id = task["id"].clone();
    s.wait_for(10, "the task to go overdue", || async {
        inbox(&s, &anna_token).await.iter().any(|n| n["kind"] == "task-overdue").then_some(())
    })
    .await;
    let overdue = s.get("/api/v1/tasks?overdue=true").await.ok(200);
    assert_eq!(overdue["items"][0]["id"], id);
    assert_eq!(overdue["items"][0]["overdue"], true);
    // Sending the same deadline again with another change does not make it overdue twice.
    let same = overdue["items"][0]["deadline"].clone();
    s.patch(&format!("/api/v1/tasks/{id}"), json!({"title": "Quick!", "deadline": same})).await.ok(200);
    s.settled().await;
    assert_eq!(event_kinds(&s).await.iter().filter(|k| *k == "task.overdue").count(), 1);

    // A deadline passing while the host is down is noted at start, once.
    s.post("/api/v1/tasks", json!({"title": "Later", "responsible": anna, "deadline_in_s": 2})).await.ok(201);
    s.stop();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    s.start_again();
    s.wait_for(10, "the second task to go overdue", || async {
        (event_kinds(&s).await.iter().filter(|k| *k == "task.overdue").count() == 2).then_some(())
    })
    .await;
    s.settled().await;
    assert_eq!(event_kinds(&s).await.iter().filter(|k| *k == "task.overdue").count(), 2);
    // A completed task is not overdue.
    s.post(&format!("/api/v1/tasks/{id}/complete"), json!({})).await.ok(200);
    let overdue = s.get("/api/v1/tasks?overdue=true").await.ok(200);
    assert_eq!(overdue["items"].as_array().map(Vec::len), Some(1));
}
both!(deadlines_go_overdue_on_time);

/// The case's core loop, through tasks: a deal enters a stage, the `create-task` robot gives
/// its responsible a task, who is notified and completes it, and the task-completed trigger
/// moves the deal on.
async fn robot_task_and_task_completed_trigger(backend: Backend) {
    let s = Server::start(backend).await;
    let (anna, anna_token) = s.user_with_roles("anna@example.com", &[]).await;
    let stages = "/api/v1/types/deal/funnels/default/stages";
    s.post(
        &format!("{stages}/in-progress/robots"),
        json!({"plugin": "create-task", "config": {"title": "Measure {{item.title}}", "tags": ["measure"], "deadline_in_s": 86400}}),
    )
    .await
    .ok(201);
    // Only a task with the tag moves the deal.
    s.post(&format!("{stages}/won/triggers"), json!({"kind": "task-completed", "config": {"tag": "measure"}}))
        .await
        .ok(201);
    let deal = new_deal(&s, "Hall", anna).await;
    let other = s
        .post(
            "/api/v1/tasks",
            json!({"title": "Unrelated", "responsible": anna, "links": [{"type": "deal", "id": deal}]}),
        )
        .await
        .ok(201);
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);

    let task = s
        .wait_for(20, "the robot's task", || async {
            let page = s.get(&format!("/api/v1/tasks?item_type=deal&item_id={deal}&status=new")).await.ok(200);
            page["items"].as_array()?.iter().find(|t| t["title"] == "Measure Hall").cloned()
        })
        .await;
    assert_eq!(task["responsible"], anna);
    assert_eq!(task["creator"]["kind"], "robot");
    assert!(task["deadline"].is_string());
    assert!(inbox(&s, &anna_token).await.iter().any(|n| n["text"] == "New task for you: Measure Hall"));

    s.call_as(&anna_token, Method::POST, &format!("/api/v1/tasks/{}/complete", other["id"]), Some(json!({})))
        .await
        .ok(200);
    s.settled().await;
    assert_eq!(s.item("deal", &deal).await["stage"], "in-progress");
    s.call_as(
        &anna_token,
        Method::POST,
        &format!("/api/v1/tasks/{}/complete", task["id"]),
        Some(json!({"result": "ok"})),
    )
    .await
    .ok(200);
    s.wait_for(20, "the deal to move on", || async { (s.item("deal", &deal).await["stage"] == "won").then_some(()) })
        .await;
    let history = s.get(&format!("/api/v1/items/deal/{deal}/history")).await.ok(200);
    let last = history["items"].as_array().and_then(|h| h.iter().find(|e| e["to"]["stage"] == "won")).cloned();
    assert_eq!(last.map(|e| e["actor"]["name"].clone()), Some(json!("task-completed")));
}
both!(robot_task_and_task_completed_trigger);

async fn plugins_notify_users(backend: Backend) {
    let s = Server::start(backend).await;
    let (anna, anna_token) = s.user_with_roles("anna@example.com", &[]).await;
    let script = format!(
        r#"fn run(ctx) {{ notify::send({anna}, "Deal " + ctx.item.title + " needs you", "deal", ctx.item.id); }}"#
    );
    let manifest =
        json!({"name": "tell", "version": "1.0.0", "kind": "rhai", "world": "robot", "capabilities": ["notify"]});
    s.upload(manifest, script.clone().into_bytes()).await.ok(201);
    let denied =
        json!({"name": "tell-denied", "version": "1.0.0", "kind": "rhai", "world": "robot", "capabilities": []});
    s.upload(denied, script.into_bytes()).await.ok(201);
    let robots = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";
    s.post(robots, json!({"plugin": "tell"})).await.ok(201);
    s.post(robots, json!({"plugin": "tell-denied"})).await.ok(201);
    let deal = new_deal(&s, "Bath", anna).await;
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let note = s
        .wait_for(20, "the plugin's notification", || async {
            inbox(&s, &anna_token).await.into_iter().find(|n| n["kind"] == "plugin")
        })
        .await;
    assert_eq!(note["text"], "Deal Bath needs you");
    assert_eq!(note["about"], json!({"type": "deal", "id": deal}));
    assert_eq!(note["data"]["plugin"], "tell");
    // The plugin without the capability is refused, visibly, and notifies nobody.
    s.wait_for(20, "the denied robot's failure", || async {
        s.timeline_texts("deal", &deal).await.iter().any(|t| t.contains("notify")).then_some(())
    })
    .await;
    assert_eq!(inbox(&s, &anna_token).await.iter().filter(|n| n["kind"] == "plugin").count(), 1);
}
both!(plugins_notify_users);

async fn upload(s: &Server, token: &str, name: &str, bytes: Vec<u8>, attach: Option<&Value>) -> Reply {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()).mime_str("text/plain").expect("mime"),
    );
    if let Some(item) = attach {
        form = form.text("type", "deal").text("item", item.to_string());
    }
    let response = s.request_as(token, Method::POST, "/api/v1/files").multipart(form).send().await.expect("upload");
    Reply::from(response).await
}

async fn files_are_stored_safely(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin.clone();
    let admin = admin.as_str();
    let (_, outsider) = s.user_with_roles("outsider@example.com", &[]).await;
    s.post("/api/v1/types/deal/fields", json!({"key": "drawing", "title": "Drawing", "kind": "file"})).await.ok(201);
    let deal = new_deal(&s, "Kitchen", 1).await;

    let stored = upload(&s, admin, "../../etc/passwd.txt", b"measurements".to_vec(), Some(&deal)).await.ok(201);
    assert_eq!(stored["name"], "passwd.txt");
    assert_eq!(stored["size"], 12);
    assert_eq!(stored["content_type"], "text/plain");
    assert_eq!(stored["item"], json!({"type": "deal", "id": deal}));
    assert_eq!(stored["sha256"].as_str().map(str::len), Some(64));
    let id = stored["id"].clone();

    let response =
        s.request_as(admin, Method::GET, &format!("/api/v1/files/{id}/content")).send().await.expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers()["content-disposition"].to_str().unwrap_or_default().contains("passwd.txt"));
    assert_eq!(response.bytes().await.expect("body").as_ref(), b"measurements");
    let listed = s.get(&format!("/api/v1/items/deal/{deal}/files")).await.ok(200);
    assert_eq!(listed["items"][0]["id"], id);
    assert!(s.timeline_texts("deal", &deal).await.iter().any(|t| t == "File attached: passwd.txt"));
    s.call_as(&outsider, Method::GET, &format!("/api/v1/files/{id}/content"), None).await.problem(404, "not-found");
    upload(&s, &outsider, "x.txt", b"x".to_vec(), Some(&deal)).await.problem(403, "forbidden");

    // A file field takes a stored file, and only that.
    s.patch(&format!("/api/v1/items/deal/{deal}"), json!({"fields": {"drawing": {"id": id}}})).await.ok(200);
    let p = s
        .patch(&format!("/api/v1/items/deal/{deal}"), json!({"fields": {"drawing": {"id": 999}}}))
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["fields.drawing"]);

    // Too large: refused, nothing recorded.
    let big = vec![b'x'; 25 * 1024 * 1024 + 1];
    upload(&s, admin, "big.bin", big, Some(&deal)).await.problem(413, "payload-too-large");
    assert_eq!(
        s.get(&format!("/api/v1/items/deal/{deal}/files")).await.ok(200)["items"].as_array().map(Vec::len),
        Some(1)
    );
    let form = reqwest::multipart::Form::new().text("type", "deal");
    let response = s.request(Method::POST, "/api/v1/files").multipart(form).send().await.expect("upload");
    Reply::from(response).await.problem(422, "validation-failed");
    // An unattached file is its uploader's: only they put it in a field, which attaches it.
    let own = upload(&s, &outsider, "note.md", b"# hi".to_vec(), None).await.ok(201);
    s.call_as(&outsider, Method::GET, &format!("/api/v1/files/{}", own["id"]), None).await.ok(200);
    s.post("/api/v1/roles", json!({"key": "sales", "permissions": [{"type": "deal", "access": "write"}]}))
        .await
        .ok(201);
    let (_, first) = s.user_with_roles("s1@example.com", &["sales"]).await;
    let (_, second) = s.user_with_roles("s2@example.com", &["sales"]).await;
    let theirs = upload(&s, &first, "a.txt", b"a".to_vec(), None).await.ok(201);
    let field = json!({"fields": {"drawing": {"id": theirs["id"]}}});
    let path = format!("/api/v1/items/deal/{deal}");
    let p = s.call_as(&second, Method::PATCH, &path, Some(field.clone())).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["fields.drawing"]);
    s.call_as(&first, Method::PATCH, &path, Some(field)).await.ok(200);
    let listed = s.get(&format!("/api/v1/items/deal/{deal}/files")).await.ok(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    s.call_as(&second, Method::GET, &format!("/api/v1/files/{}/content", theirs["id"]), None).await.ok(200);
    // A file of an item one may read can be named on another item; a kept value is not
    // checked again when other fields change.
    let other = new_deal(&s, "Hallway", 1).await;
    let named = json!({"fields": {"drawing": {"id": theirs["id"]}}});
    s.call_as(&second, Method::PATCH, &format!("/api/v1/items/deal/{other}"), Some(named)).await.ok(200);
    s.call_as(
        &second,
        Method::PATCH,
        &path,
        Some(json!({"title": "Kitchen 2", "fields": {"drawing": {"id": theirs["id"]}}})),
    )
    .await
    .ok(200);
}
both!(files_are_stored_safely);
