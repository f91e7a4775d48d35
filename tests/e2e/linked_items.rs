//! Linked items with a responsible: `create-linked-item` gives the new item its source's
//! responsible by default, or a user, a role's holder or a person related to the source, and
//! fills field values from the source's placeholders; `POST /items` takes the same forms.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

const ROBOTS: &str = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";

/// Production linked to deals, with size and floor fields on both; a sales department with a
/// head and a manager; a production worker. Returns (head, manager, worker).
async fn company(s: &Server) -> (i64, i64, i64) {
    for (key, kind) in [("size", "string"), ("floor", "number")] {
        s.post("/api/v1/types/deal/fields", json!({"key": key, "title": key, "kind": kind})).await.ok(201);
    }
    s.post("/api/v1/types", json!({"key": "production", "title": "Production", "parents": ["deal"]})).await.ok(201);
    for (key, kind) in [("b_size", "string"), ("b_floor", "number"), ("note", "string")] {
        s.post("/api/v1/types/production/fields", json!({"key": key, "title": key, "kind": kind})).await.ok(201);
    }
    s.post("/api/v1/roles", json!({"key": "production", "permissions": [{"type": "production", "access": "write"}]}))
        .await
        .ok(201);
    let (head, _) = s.user_with_roles("head@example.com", &[]).await;
    let (worker, _) = s.user_with_roles("worker@example.com", &["production"]).await;
    let sales = s.post("/api/v1/departments", json!({"name": "Sales", "head": head})).await.ok(201);
    let manager = s
        .post("/api/v1/users", json!({"name": "M", "email": "m@example.com", "department": sales["id"]}))
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap_or_default();
    (head, manager, worker)
}

async fn children(s: &Server, deal: &Value) -> Vec<Value> {
    let page = s.get(&format!("/api/v1/items/deal/{deal}/children?limit=100")).await.ok(200);
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn create_linked_item_sets_the_responsible_and_fills_fields(backend: Backend) {
    let s = Server::start(backend).await;
    let (head, manager, worker) = company(&s).await;
    let fields = json!({"b_size": "{{item.fields.size}}", "b_floor": "{{ item.fields.floor }}",
        "note": "Size {{item.fields.size}} for {{item.title}}"});
    for (title, responsible) in [
        ("inherited", Value::Null),
        ("by role", json!({"role": "production"})),
        ("by relation", json!({"relation": "department-head"})),
        ("by id", json!(head)),
    ] {
        let mut config = json!({"type": "production", "title": title, "fields": fields});
        if !responsible.is_null() {
            config["responsible"] = responsible;
        }
        s.post(ROBOTS, json!({"plugin": "create-linked-item", "config": config})).await.ok(201);
    }
    let body = json!({"title": "Kitchen", "responsible": manager, "fields": {"size": "1200x600", "floor": 3}});
    let deal = s.post("/api/v1/items/deal", body).await.ok(201)["id"].clone();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let made = s
        .wait_for(30, "four production items", || async {
            let made = children(&s, &deal).await;
            (made.len() == 4).then_some(made)
        })
        .await;
    let responsible = |title: &str| {
        made.iter().find(|i| i["title"] == title).map(|i| i["responsible"].clone()).unwrap_or(Value::Null)
    };
    assert_eq!(responsible("inherited"), manager);
    assert_eq!(responsible("by role"), worker);
    assert_eq!(responsible("by relation"), head);
    assert_eq!(responsible("by id"), head);
    for item in &made {
        assert_eq!(item["fields"]["b_size"], "1200x600", "{item}");
        assert_eq!(item["fields"]["b_floor"], 3, "a number stays a number: {item}");
        assert_eq!(item["fields"]["note"], "Size 1200x600 for Kitchen", "{item}");
    }
}
both!(create_linked_item_sets_the_responsible_and_fills_fields);

async fn items_take_a_responsible_by_role_relation_or_inheritance(backend: Backend) {
    let s = Server::start(backend).await;
    let (head, manager, worker) = company(&s).await;
    let deal =
        s.post("/api/v1/items/deal", json!({"title": "Kitchen", "responsible": manager})).await.ok(201)["id"].clone();
    let parents = json!([{"type": "deal", "id": deal}]);
    for (responsible, want) in [
        (json!("inherit"), manager),
        (json!({"relation": "responsible"}), manager),
        (json!({"relation": "department-head"}), head),
        (json!({"role": "production"}), worker),
    ] {
        let body = json!({"title": "Order", "parents": parents, "responsible": responsible});
        let item = s.post("/api/v1/items/production", body).await.ok(201);
        assert_eq!(item["responsible"], want, "for {responsible}");
    }

    // Bad forms are refused whole, naming the field; nothing is created.
    let before = s.count("production").await;
    let events = s.event_count().await;
    for (body, field) in [
        (json!({"title": "X", "responsible": "someone"}), "responsible"),
        (json!({"title": "X", "responsible": {"team": "a"}}), "responsible"),
        (json!({"title": "X", "responsible": "inherit"}), "responsible"),
        (json!({"title": "X", "responsible": {"relation": "responsible"}}), "responsible"),
        (json!({"title": "X", "responsible": {"role": "nobody-has-it"}, "parents": parents}), "responsible"),
        (json!({"title": "X", "responsible": "inherit", "parents": [{"type": "deal", "id": 999_999}]}), "parents[0]"),
    ] {
        let problem = s.post("/api/v1/items/production", body.clone()).await.problem(422, "validation-failed");
        let fields = crate::harness::Reply::error_fields(&problem);
        assert!(fields.contains(&field.to_string()), "{body}: {problem}");
    }
    assert_eq!(s.count("production").await, before);
    assert_eq!(s.event_count().await, events);
}
both!(items_take_a_responsible_by_role_relation_or_inheritance);
