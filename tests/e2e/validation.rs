//! Configuration refused when it cannot run: process templates (unknown keys, assignees,
//! fields and values, plugins of another world, stages, conditions, placeholders), robot
//! bindings (built-ins' unknown config keys, stages, placeholders, plugins of another world)
//! and triggers (unknown config keys, plugins of another world) answer 422 naming the path,
//! and nothing is stored.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

/// Asserts a 422 naming `field` with a message containing `message`.
#[track_caller]
fn refused(reply: crate::harness::Reply, field: &str, message: &str) {
    let problem = reply.problem(422, "validation-failed");
    let errors = problem["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["field"] == field && e["message"].as_str().is_some_and(|m| m.contains(message))),
        "expected {field}: {message} in {problem}"
    );
}

async fn setup(s: &Server) {
    s.post("/api/v1/types/deal/fields", json!({"key": "floor", "title": "Floor", "kind": "number"})).await.ok(201);
    s.post("/api/v1/types", json!({"key": "production", "title": "Production", "parents": ["deal"]})).await.ok(201);
    let trigger = json!({"name":"kw","version":"1.0.0","kind":"rhai","world":"trigger","capabilities":[]});
    s.upload(trigger, br#"fn matches(event, config) { false }"#.to_vec()).await.ok(201);
}

async fn templates_that_cannot_run_are_refused(backend: Backend) {
    let s = Server::start(backend).await;
    setup(&s).await;
    let task = |extra: Value| {
        let mut step = json!({"id": "t", "kind": "task", "title": "Measure", "assignee": {"relation": "responsible"}});
        if let (Some(step), Some(extra)) = (step.as_object_mut(), extra.as_object()) {
            step.extend(extra.clone());
        }
        json!([{"id": "w", "kind": "wait", "duration_s": 60}, {"id": "n", "kind": "notify", "to": {"user": 1}, "text": "x"}, step])
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (task(json!({"assignee": {"relation": "boss"}})), "steps[2].assignee.relation", "unknown relation \"boss\""),
        (task(json!({"assignee": {"team": "boss"}})), "steps[2].assignee", "expected {\"user\": id}"),
        (task(json!({"deadline": 3600})), "steps[2].deadline", "unknown key `deadline`: a task step takes"),
        (
            json!([{"id": "s", "kind": "set-fields", "fields": {"colour": "red"}}]),
            "steps[0].fields.colour",
            "type `deal` has no field `colour`",
        ),
        (json!([{"id": "s", "kind": "set-fields", "fields": {"floor": "third"}}]), "steps[0].fields.floor", ""),
        (json!([{"id": "p", "kind": "plugin", "plugin": "ghost"}]), "steps[0].plugin", "no plugin `ghost`"),
        (
            json!([{"id": "p", "kind": "plugin", "plugin": "kw"}]),
            "steps[0].plugin",
            "plugin `kw` is of world trigger, not bp-step",
        ),
        (
            json!([{"id": "p", "kind": "plugin", "plugin": "add-comment"}]),
            "steps[0].plugin",
            "plugin `add-comment` is of world robot, not bp-step",
        ),
        (
            json!([{"id": "m", "kind": "move", "stage": "closed"}]),
            "steps[0].stage",
            "no stage `closed` in the funnels of type `deal`",
        ),
        (json!([{"id": "c", "kind": "condition", "when": "vars.a == "}]), "steps[0].when", ""),
        (
            json!([{"id": "c", "kind": "condition", "when": "true",
                    "then": [{"id": "a", "kind": "approval", "assignees": [{"relation": "head"}], "deadline": 5}]}]),
            "steps[0].then[0].deadline",
            "unknown key",
        ),
        (
            json!([{"id": "c", "kind": "condition", "when": "true",
                    "else": [{"id": "a", "kind": "approval", "assignees": [{"role": "x"}, {"relation": "head"}]}]}]),
            "steps[0].else[0].assignees[1].relation",
            "unknown relation",
        ),
        (
            json!([{"id": "r", "kind": "request-info", "assignee": {"user": 1},
                    "form": [{"key": "size", "kind": "string", "requried": true}]}]),
            "steps[0].form[0].requried",
            "unknown key `requried`",
        ),
        (
            json!([{"id": "n", "kind": "notify", "to": {"relation": "responsible"}, "text": "About {{item.titel}}"}]),
            "steps[0].text",
            "unknown placeholder `{{item.titel}}`",
        ),
    ];
    for (steps, field, message) in cases {
        let reply = s
            .post(
                "/api/v1/processes/templates",
                json!({"key": "broken", "type": "deal", "title": "Broken", "steps": steps}),
            )
            .await;
        refused(reply, field, message);
        s.get("/api/v1/processes/templates/broken").await.problem(404, "not-found");
    }
    // The same steps, right, are saved.
    let steps = json!([
        {"id": "t", "kind": "task", "title": "Measure {{item.title}}", "assignee": {"relation": "department-head"}, "deadline_s": 3600},
        {"id": "s", "kind": "set-fields", "fields": {"floor": 3}},
        {"id": "m", "kind": "move", "stage": "won"}
    ]);
    s.post("/api/v1/processes/templates", json!({"key": "fine", "type": "deal", "steps": steps})).await.ok(201);
}
both!(templates_that_cannot_run_are_refused);

async fn robots_and_triggers_that_cannot_run_are_refused(backend: Backend) {
    let s = Server::start(backend).await;
    setup(&s).await;
    let robots = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"plugin": "add-comment", "config": {"txt": "Hi"}}), "config.txt", "the add-comment robot takes text"),
        (json!({"plugin": "set-field", "config": {"field": {"floor": 1}}}), "config.field", "unknown key `field`"),
        (
            json!({"plugin": "move-to-stage", "config": {"stage": "closed"}}),
            "config.stage",
            "no stage `closed` in funnel `default`",
        ),
        (
            json!({"plugin": "move-to-stage", "config": {"stage": "won", "funnel": "claims"}}),
            "config.funnel",
            "no funnel",
        ),
        (json!({"plugin": "move-to-stage", "config": {"funnel": "default"}}), "config.stage", "a stage, or"),
        (
            json!({"plugin": "move-to-stage", "config": {"return": true, "funnel": "default"}}),
            "config.funnel",
            "name no funnel",
        ),
        (
            json!({"plugin": "create-task", "config": {"title": "x", "deadline_s": 60}}),
            "config.deadline_s",
            "unknown key",
        ),
        (
            json!({"plugin": "add-comment", "config": {"text": "{{item.fields.flor}}"}}),
            "config.text",
            "unknown placeholder `{{item.fields.flor}}`",
        ),
        (json!({"plugin": "start-process", "config": {"template": "t", "param": {}}}), "config.param", "unknown key"),
        (json!({"plugin": "kw"}), "plugin", "plugin `kw` is of world trigger, not robot"),
    ];
    for (binding, field, message) in cases {
        refused(s.post(robots, binding).await, field, message);
    }
    assert_eq!(s.get(robots).await.ok(200)["items"], json!([]));
    // A patch is checked the same way, and changes nothing when refused.
    let robot = s.post(robots, json!({"plugin": "add-comment", "config": {"text": "Hi {{item.title}}"}})).await.ok(201);
    let path = format!("{robots}/{}", robot["id"]);
    refused(s.patch(&path, json!({"config": {"text": "Hi", "colour": "red"}})).await, "config.colour", "unknown key");
    assert_eq!(s.get(robots).await.ok(200)["items"][0]["config"], json!({"text": "Hi {{item.title}}"}));
    // The keys built-ins read are accepted, `responsible` of create-linked-item among them.
    let linked = json!({"plugin": "create-linked-item", "config": {"type": "production", "title": "P: {{item.title}}",
        "responsible": "inherit", "copy": {}, "fields": {}}});
    s.post(robots, linked).await.ok(201);
    s.post(robots, json!({"plugin": "move-to-stage", "config": {"return": true, "stage": "won"}})).await.ok(201);

    let triggers = "/api/v1/types/deal/funnels/default/stages/won/triggers";
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"kind": "field-changed", "config": {"field": "floor", "value": 3}}),
            "config.value",
            "unknown key `value`: a field-changed trigger takes field, to",
        ),
        (json!({"kind": "task-completed", "config": {"tags": "measure"}}), "config.tags", "takes title, tag"),
        (json!({"kind": "webhook", "config": {"item": 1}}), "config.item", "takes no config"),
        (
            json!({"kind": "plugin", "config": {"plugin": "add-comment"}}),
            "config.plugin",
            "plugin `add-comment` is of world robot, not trigger",
        ),
    ];
    for (trigger, field, message) in cases {
        refused(s.post(triggers, trigger).await, field, message);
    }
    assert_eq!(s.get(triggers).await.ok(200)["items"], json!([]));
}
both!(robots_and_triggers_that_cannot_run_are_refused);
