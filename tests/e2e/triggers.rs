//! Triggers: each kind end to end, the backwards rule, the earliest-stage rule, conditions,
//! Rhai and Wasm plugin triggers, validation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

/// The trigger component built from plugins/testing/keyword-trigger.
const KEYWORD_TRIGGER: &[u8] = voronka_builtins::test::KEYWORD_TRIGGER;

fn triggers(stage: &str) -> String {
    format!("/api/v1/types/deal/funnels/default/stages/{stage}/triggers")
}

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

async fn set_fields(s: &Server, id: &Value, fields: Value) {
    s.patch(&format!("/api/v1/items/deal/{id}"), json!({ "fields": fields })).await.ok(200);
}

async fn stage_of(s: &Server, id: &Value) -> String {
    s.item("deal", id).await["stage"].as_str().unwrap_or_default().to_string()
}

async fn wait_stage(s: &Server, id: &Value, stage: &str) {
    s.wait_for(20, &format!("deal {id} in stage {stage}"), || async { (stage_of(s, id).await == stage).then_some(()) })
        .await;
}

async fn bool_field(s: &Server, key: &str) {
    s.post("/api/v1/types/deal/fields", json!({"key": key, "title": key, "kind": "bool"})).await.ok(201);
}

/// The last history entry of a deal.
async fn last_move(s: &Server, id: &Value) -> Value {
    let history = s.get(&format!("/api/v1/items/deal/{id}/history")).await.ok(200);
    history["items"].as_array().and_then(|a| a.last().cloned()).unwrap_or(Value::Null)
}

async fn field_changed_trigger_moves_the_item_and_fires_its_robots(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "paid").await;
    bool_field(&s, "welcomed").await;
    let trigger = s
        .post(
            &triggers("won"),
            json!({"kind":"field-changed","config":{"field":"paid","to":true},"allow_backwards":false,"condition":null}),
        )
        .await
        .ok(201);
    assert_eq!(trigger["kind"], "field-changed");
    assert!(trigger.get("url").is_none());
    let listed = s.get(&triggers("won")).await.ok(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    // A robot on the target stage runs after the trigger's move.
    let script = r#"fn run(ctx) { items::update_fields("deal", ctx.item.id, #{welcomed: true}); }"#;
    let manifest =
        json!({"name":"welcome","version":"1.0.0","kind":"rhai","world":"robot","capabilities":["items:write"]});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    s.post("/api/v1/types/deal/funnels/default/stages/won/robots", json!({"plugin":"welcome"})).await.ok(201);

    let unpaid = new_deal(&s, "Unpaid").await;
    let other_field = new_deal(&s, "Welcomed only").await;
    let paid = new_deal(&s, "Paid").await;
    set_fields(&s, &unpaid, json!({"paid": false})).await;
    set_fields(&s, &other_field, json!({"welcomed": true})).await;
    set_fields(&s, &paid, json!({"paid": true})).await;
    wait_stage(&s, &paid, "won").await;
    // Events are applied in order: the earlier ones were looked at and moved nothing.
    assert_eq!(stage_of(&s, &unpaid).await, "new");
    assert_eq!(stage_of(&s, &other_field).await, "new");
    let entry = last_move(&s, &paid).await;
    assert_eq!(entry["to"]["stage"], "won");
    assert_eq!(entry["actor"]["kind"], "trigger");
    assert_eq!(entry["actor"]["id"], trigger["id"]);
    s.wait_for(20, "the target stage's robot", || async {
        (s.item("deal", &paid).await["fields"]["welcomed"] == true).then_some(())
    })
    .await;
    // Deleted, it no longer moves anything.
    let id = trigger["id"].as_i64().unwrap_or_default();
    s.call(Method::DELETE, &format!("{}/{id}", triggers("won")), None).await.ok(204);
    let later = new_deal(&s, "Later").await;
    set_fields(&s, &later, json!({"paid": true})).await;
    let marker_trigger = json!({"kind":"field-changed","config":{"field":"welcomed"}});
    s.post(&triggers("in-progress"), marker_trigger).await.ok(201);
    let marker = new_deal(&s, "Marker").await;
    set_fields(&s, &marker, json!({"welcomed": true})).await;
    wait_stage(&s, &marker, "in-progress").await;
    assert_eq!(stage_of(&s, &later).await, "new");
}
both!(field_changed_trigger_moves_the_item_and_fires_its_robots);

async fn backwards_rule_and_earliest_stage_rule(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "ready").await;
    bool_field(&s, "redo").await;
    // Two triggers match the same change: the earlier stage wins.
    s.post(&triggers("won"), json!({"kind":"field-changed","config":{"field":"ready"}})).await.ok(201);
    s.post(&triggers("in-progress"), json!({"kind":"field-changed","config":{"field":"ready"}})).await.ok(201);
    let deal = new_deal(&s, "Both match").await;
    set_fields(&s, &deal, json!({"ready": true})).await;
    wait_stage(&s, &deal, "in-progress").await;

    // A deal in a later stage does not move back...
    let redo = s.post(&triggers("new"), json!({"kind":"field-changed","config":{"field":"redo"}})).await.ok(201);
    let late = new_deal(&s, "Late").await;
    s.post(&format!("/api/v1/items/deal/{late}/move"), json!({"stage":"won"})).await.ok(200);
    set_fields(&s, &late, json!({"redo": true})).await;
    let marker = new_deal(&s, "Marker").await;
    set_fields(&s, &marker, json!({"ready": true})).await;
    wait_stage(&s, &marker, "in-progress").await;
    assert_eq!(stage_of(&s, &late).await, "won");
    // ... until the trigger allows it.
    let id = redo["id"].as_i64().unwrap_or_default();
    let patched = s.patch(&format!("{}/{id}", triggers("new")), json!({"allow_backwards": true})).await.ok(200);
    assert_eq!(patched["allow_backwards"], true);
    set_fields(&s, &late, json!({"redo": false})).await;
    wait_stage(&s, &late, "new").await;
}
both!(backwards_rule_and_earliest_stage_rule);

async fn responsible_trigger_and_condition(backend: Backend) {
    let s = Server::start(backend).await;
    let me = s.get("/api/v1/me").await.ok(200)["id"].clone();
    s.post(
        &triggers("in-progress"),
        json!({"kind":"responsible-changed","config":{},"condition":"item.title != \"Skip me\""}),
    )
    .await
    .ok(201);
    let skipped = new_deal(&s, "Skip me").await;
    let deal = new_deal(&s, "Assigned").await;
    s.patch(&format!("/api/v1/items/deal/{skipped}"), json!({"responsible": me})).await.ok(200);
    s.patch(&format!("/api/v1/items/deal/{deal}"), json!({"responsible": me})).await.ok(200);
    wait_stage(&s, &deal, "in-progress").await;
    assert_eq!(stage_of(&s, &skipped).await, "new");
}
both!(responsible_trigger_and_condition);

async fn linked_item_reaching_a_stage_moves_the_deal(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types", json!({"key":"production","title":"Production","parents":["deal"]})).await.ok(201);
    s.post(
        "/api/v1/types/production/funnels",
        json!({"key":"main","title":"Production","stages":[
            {"key":"queued","title":"Queued","semantics":"process"},
            {"key":"cutting","title":"Cutting","semantics":"process"},
            {"key":"done","title":"Done","semantics":"success"},
            {"key":"cancelled","title":"Cancelled","semantics":"failure"}]}),
    )
    .await
    .ok(201);
    let trigger = json!({"kind":"linked-item-stage","config":{"type":"production","funnel":"main","stage":"done"}});
    s.post(&triggers("won"), trigger).await.ok(201);
    // And the other way: a deal reaching in-progress starts its production.
    let start = json!({"kind":"linked-item-stage","config":{"type":"deal","stage":"in-progress"}});
    s.post("/api/v1/types/production/funnels/main/stages/cutting/triggers", start).await.ok(201);

    let deal = new_deal(&s, "Kitchen").await;
    let production = s
        .post(
            "/api/v1/items/production",
            json!({"title":"Kitchen panels","funnel":"main","stage":"queued","parents":[{"type":"deal","id":deal}]}),
        )
        .await
        .ok(201)["id"]
        .clone();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage":"in-progress"})).await.ok(200);
    s.wait_for(20, "production to start cutting", || async {
        (s.item("production", &production).await["stage"] == "cutting").then_some(())
    })
    .await;
    assert_eq!(stage_of(&s, &deal).await, "in-progress");
    s.post(&format!("/api/v1/items/production/{production}/move"), json!({"stage":"done"})).await.ok(200);
    wait_stage(&s, &deal, "won").await;
    let entry = last_move(&s, &deal).await;
    assert_eq!(entry["actor"]["kind"], "trigger");
    assert_eq!(entry["actor"]["name"], "linked-item-stage");
}
both!(linked_item_reaching_a_stage_moves_the_deal);

async fn webhook_trigger_moves_the_item_it_is_called_with(backend: Backend) {
    let s = Server::start(backend).await;
    let trigger = s.post(&triggers("in-progress"), json!({"kind":"webhook"})).await.ok(201);
    let url = trigger["url"].as_str().unwrap_or_default().to_string();
    assert!(url.starts_with("http://") && url.contains("/api/v1/hooks/triggers/"), "{url}");
    let path = url[url.find("/api/v1/").unwrap_or(0)..].to_string();
    let deal = new_deal(&s, "From the shop").await;
    // No token needed: the secret is the credential.
    let outcome = s.call_as("", Method::POST, &path, Some(json!({"item": deal}))).await.ok(200);
    assert_eq!(outcome["moved"], true);
    assert_eq!(outcome["stage"], "in-progress");
    // The caller holds a secret that moves items, not a token that reads them.
    assert!(outcome.get("title").is_none() && !outcome.to_string().contains("From the shop"), "{outcome}");
    assert_eq!(last_move(&s, &deal).await["actor"]["kind"], "trigger");
    let again = s.call_as("", Method::POST, &path, Some(json!({"item": deal}))).await.ok(200);
    assert_eq!(again["moved"], false);
    assert!(again["reason"].as_str().unwrap_or_default().contains("already"), "{again}");
    // A wrong secret, an unknown item, a bad body.
    s.call_as("", Method::POST, "/api/v1/hooks/triggers/nope", Some(json!({"item": deal})))
        .await
        .problem(404, "not-found");
    s.call_as("", Method::POST, &path, Some(json!({"item": 999_999}))).await.problem(404, "not-found");
    let bad = s.call_as("", Method::POST, &path, Some(json!({"id": "x"}))).await;
    assert_eq!(bad.status.as_u16(), 422, "{:?}", bad.body);
    // The backwards rule and the condition hold for webhooks too.
    let late = new_deal(&s, "Late").await;
    s.post(&format!("/api/v1/items/deal/{late}/move"), json!({"stage":"won"})).await.ok(200);
    let refused = s.call_as("", Method::POST, &path, Some(json!({"item": late}))).await.ok(200);
    assert_eq!(refused["moved"], false);
    assert!(refused["reason"].as_str().unwrap_or_default().contains("later stage"), "{refused}");
    let id = trigger["id"].as_i64().unwrap_or_default();
    let patched = s
        .patch(&format!("{}/{id}", triggers("in-progress")), json!({"condition":"item.title == \"VIP\""}))
        .await
        .ok(200);
    // The secret survives a change of the trigger.
    assert_eq!(patched["url"], trigger["url"]);
    let plain = new_deal(&s, "Plain").await;
    let refused = s.call_as("", Method::POST, &path, Some(json!({"item": plain}))).await.ok(200);
    assert_eq!(refused["reason"], "the condition is false");
    assert_eq!(stage_of(&s, &plain).await, "new");
    // Only those who may change triggers see the secret.
    s.post("/api/v1/roles", json!({"key":"viewer","permissions":[{"type":"deal","access":"write"}]})).await.ok(201);
    let (_, token) = s.user_with_roles("viewer@example.com", &["viewer"]).await;
    let seen = s.call_as(&token, Method::GET, &triggers("in-progress"), None).await.ok(200);
    assert_eq!(seen["items"][0]["kind"], "webhook");
    assert!(seen["items"][0].get("url").is_none(), "{seen}");
    let admin_view = s.get(&triggers("in-progress")).await.ok(200);
    assert_eq!(admin_view["items"][0]["url"], trigger["url"]);
}
both!(webhook_trigger_moves_the_item_it_is_called_with);

async fn rhai_and_wasm_plugin_triggers(backend: Backend) {
    let s = Server::start(backend).await;
    let script =
        r#"fn matches(event, config) { event.kind == "item.updated" && event.item.title.contains(config.word) }"#;
    let manifest = json!({"name":"title-word","version":"1.0.0","kind":"rhai","world":"trigger","capabilities":[]});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    let manifest = json!({"name":"keyword","version":"1.0.0","kind":"wasm","world":"trigger","capabilities":[]});
    s.upload(manifest, KEYWORD_TRIGGER.to_vec()).await.ok(201);
    let rhai = json!({"kind":"plugin","config":{"plugin":"title-word","version":"latest","config":{"word":"urgent"}}});
    s.post(&triggers("in-progress"), rhai).await.ok(201);
    let wasm = json!({"kind":"plugin","config":{"plugin":"keyword","version":"^1","config":{"word":"final"}}});
    s.post(&triggers("won"), wasm).await.ok(201);
    let failing = json!({"kind":"plugin","config":{"plugin":"keyword","config":{"word":"!fail"}}});
    s.post(&triggers("lost"), failing).await.ok(201);

    let urgent = new_deal(&s, "Kitchen").await;
    let last = new_deal(&s, "Wardrobe").await;
    s.patch(&format!("/api/v1/items/deal/{urgent}"), json!({"title":"urgent Kitchen"})).await.ok(200);
    s.patch(&format!("/api/v1/items/deal/{last}"), json!({"title":"final Wardrobe"})).await.ok(200);
    wait_stage(&s, &urgent, "in-progress").await;
    wait_stage(&s, &last, "won").await;
    // The failing trigger moved nothing and said why on the timeline, once per event it was
    // asked about (created, updated, moved), never about its own notes.
    let marker = new_deal(&s, "Marker").await;
    s.patch(&format!("/api/v1/items/deal/{marker}"), json!({"title":"final Marker"})).await.ok(200);
    wait_stage(&s, &marker, "won").await;
    let texts = s.timeline_texts("deal", &urgent).await;
    let notes = texts.iter().filter(|t| t.contains("plugin keyword) failed") && t.contains("asked to fail")).count();
    assert_eq!(notes, 3, "{texts:?}");
    // A plugin in use by a trigger cannot be deleted.
    s.call(Method::DELETE, "/api/v1/plugins/keyword", None).await.problem(409, "conflict");
}
both!(rhai_and_wasm_plugin_triggers);

async fn bad_triggers_are_refused_and_nothing_is_written(backend: Backend) {
    let s = Server::start(backend).await;
    let robot_script = "fn run(ctx) { }";
    let manifest = json!({"name":"a-robot","version":"1.0.0","kind":"rhai","world":"robot","capabilities":[]});
    s.upload(manifest, robot_script.as_bytes().to_vec()).await.ok(201);
    let cases = [
        (json!({"kind":"teleport"}), "kind"),
        (json!({"kind":"field-changed","config":{}}), "config.field"),
        (json!({"kind":"field-changed","config":{"field":"nope"}}), "config.field"),
        (json!({"kind":"field-changed","config":"paid"}), "config"),
        (json!({"kind":"responsible-changed","config":{"to":"boss"}}), "config.to"),
        (json!({"kind":"linked-item-stage","config":{"type":"contact","stage":"done"}}), "config.type"),
        (json!({"kind":"linked-item-stage","config":{"type":"nope","stage":"done"}}), "config.type"),
        (json!({"kind":"plugin","config":{"plugin":"missing"}}), "config.plugin"),
        (json!({"kind":"plugin","config":{"plugin":"a-robot"}}), "config.plugin"),
        (json!({"kind":"plugin","config":{"plugin":"a-robot","version":"not semver"}}), "config.version"),
        (json!({"kind":"webhook","condition":"item.title =="}), "condition"),
    ];
    for (body, field) in cases {
        let problem = s.post(&triggers("won"), body.clone()).await.problem(422, "validation-failed");
        let fields = crate::harness::Reply::error_fields(&problem);
        assert!(fields.iter().any(|f| f == field), "{body}: {fields:?}");
    }
    s.post(&triggers("nowhere"), json!({"kind":"webhook"})).await.problem(404, "not-found");
    s.post(&triggers("won"), json!({"kind":"webhook","extra":1})).await.problem(422, "validation-failed");
    assert_eq!(s.get(&triggers("won")).await.ok(200)["items"].as_array().map(Vec::len), Some(0));
    // Read-only users see triggers but cannot add them.
    s.post("/api/v1/roles", json!({"key":"viewer","permissions":[{"type":"deal","access":"read"}]})).await.ok(201);
    let (_, token) = s.user_with_roles("viewer@example.com", &["viewer"]).await;
    s.call_as(&token, Method::GET, &triggers("won"), None).await.ok(200);
    s.call_as(&token, Method::POST, &triggers("won"), Some(json!({"kind":"webhook"}))).await.problem(403, "forbidden");
}
both!(bad_triggers_are_refused_and_nothing_is_written);
