//! Entity types, custom fields and funnels: the production smart process of the case.

use serde_json::json;

use crate::both;
use crate::harness::{Backend, Reply, Server};

fn production_stages() -> serde_json::Value {
    json!([
        {"key":"queued","title":"Queued","semantics":"process"},
        {"key":"cutting","title":"Cutting","semantics":"process"},
        {"key":"done","title":"Done","semantics":"success"},
        {"key":"cancelled","title":"Cancelled","semantics":"failure"}
    ])
}

async fn smart_process_type_with_fields_and_funnels(backend: Backend) {
    let s = Server::start(backend).await;
    let created =
        s.post("/api/v1/types", json!({"key":"production","title":"Production","parents":["deal"]})).await.ok(201);
    assert_eq!(created["key"], "production");
    assert_eq!(created["funnels"][0]["default"], true);
    let funnel = s
        .post(
            "/api/v1/types/production/funnels",
            json!({"key":"main","title":"Production","stages": production_stages()}),
        )
        .await
        .ok(201);
    assert_eq!(funnel["stages"].as_array().unwrap().len(), 4);
    let kinds = [
        json!({"key":"b_size","title":"Size","kind":"string","required":true}),
        json!({"key":"notes","title":"Notes","kind":"text"}),
        json!({"key":"qty","title":"Quantity","kind":"number"}),
        json!({"key":"cost","title":"Cost","kind":"money"}),
        json!({"key":"deadline","title":"Deadline","kind":"date"}),
        json!({"key":"started","title":"Started","kind":"datetime"}),
        json!({"key":"urgent","title":"Urgent","kind":"bool"}),
        json!({"key":"material","title":"Material","kind":"enum","options":["oak","mdf"]}),
        json!({"key":"master","title":"Master","kind":"user"}),
        json!({"key":"client","title":"Client","kind":"item-link","target":"contact"}),
        json!({"key":"drawing","title":"Drawing","kind":"file"}),
        json!({"key":"slot","title":"Slot","kind":"booking"}),
        json!({"key":"tags","title":"Tags","kind":"string","multiple":true}),
    ];
    for field in &kinds {
        s.post("/api/v1/types/production/fields", field.clone()).await.ok(201);
    }
    let fields = s.get("/api/v1/types/production/fields").await.ok(200);
    assert_eq!(fields["items"].as_array().unwrap().len(), kinds.len());
    let t = s.get("/api/v1/types/production").await.ok(200);
    assert_eq!(t["parents"], json!(["deal"]));
    assert_eq!(t["funnels"].as_array().unwrap().len(), 2);
    let types = s.get("/api/v1/types").await.ok(200);
    let keys: Vec<&str> = types["items"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    for k in ["deal", "contact", "company", "invoice", "production"] {
        assert!(keys.contains(&k), "{keys:?}");
    }
    let patched = s.patch("/api/v1/types/production", json!({"title":"Manufacturing"})).await.ok(200);
    assert_eq!(patched["title"], "Manufacturing");
    let one = s.get("/api/v1/types/production/funnels/main").await.ok(200);
    assert_eq!(one["key"], "main");
    let funnels = s.get("/api/v1/types/production/funnels").await.ok(200);
    assert_eq!(funnels["items"].as_array().unwrap().len(), 2);

    // A production item linked to a deal, listed as the deal's child.
    let deal = s.post("/api/v1/items/deal", json!({"title":"Kitchen"})).await.ok(201);
    let item = s
        .post(
            "/api/v1/items/production",
            json!({"title":"Cut panels","funnel":"main","parents":[{"type":"deal","id":deal["id"]}],"fields":{"b_size":"1200x600"}}),
        )
        .await
        .ok(201);
    assert_eq!(item["stage"], "queued");
    let children = s.get(&format!("/api/v1/items/deal/{}/children", deal["id"])).await.ok(200);
    assert_eq!(children["items"][0]["id"], item["id"]);
    let only = s.get(&format!("/api/v1/items/deal/{}/children?type=contact", deal["id"])).await.ok(200);
    assert!(only["items"].as_array().unwrap().is_empty());
}
both!(smart_process_type_with_fields_and_funnels);

async fn bad_catalog_input_is_refused(backend: Backend) {
    let s = Server::start(backend).await;
    let p = s.post("/api/v1/types", json!({"key":"Bad Key","title":""})).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["key", "title"]);
    s.post("/api/v1/types", json!({"key":"deal","title":"Deal again"})).await.problem(409, "conflict");
    let p = s
        .post("/api/v1/types", json!({"key":"x","title":"X","parents":["nope"]}))
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["parents[0]"]);
    let p = s
        .post(
            "/api/v1/types/deal/funnels",
            json!({"key":"f","title":"F","stages":[{"key":"won","title":"Won","semantics":"success"},{"key":"new","title":"New"}]}),
        )
        .await
        .problem(422, "validation-failed");
    assert!(Reply::error_fields(&p).contains(&"stages[0].semantics".to_string()));
    s.post("/api/v1/types/invoice/funnels", json!({"key":"f","title":"F","stages":[{"key":"a","title":"A"}]}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/types/deal/funnels", json!({"key":"default","title":"F","stages":[{"key":"a","title":"A"}]}))
        .await
        .problem(409, "conflict");
    s.get("/api/v1/types/nope").await.problem(404, "not-found");
    s.get("/api/v1/types/deal/funnels/nope").await.problem(404, "not-found");
    let p = s
        .post("/api/v1/types/deal/fields", json!({"key":"title","title":"T","kind":"string"}))
        .await
        .problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["key"]);
    s.post("/api/v1/types/deal/fields", json!({"key":"e","title":"E","kind":"enum"}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/types/deal/fields", json!({"key":"l","title":"L","kind":"item-link","target":"nope"}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/types/deal/fields", json!({"key":"k","title":"K","kind":"colour"}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/types/deal/fields", json!({"key":"s","title":"S","kind":"string"})).await.ok(201);
    s.post("/api/v1/types/deal/fields", json!({"key":"s","title":"S","kind":"string"})).await.problem(409, "conflict");
    // Nothing half-written: the deal type has exactly the one good field and its one funnel.
    let deal = s.get("/api/v1/types/deal").await.ok(200);
    assert_eq!(deal["fields"].as_array().unwrap().len(), 1);
    assert_eq!(deal["funnels"].as_array().unwrap().len(), 1);
    let types = s.get("/api/v1/types").await.ok(200);
    assert_eq!(types["items"].as_array().unwrap().len(), 4);
}
both!(bad_catalog_input_is_refused);

async fn funnel_stages_change_but_occupied_ones_stay(backend: Backend) {
    let s = Server::start(backend).await;
    let deal = s.post("/api/v1/items/deal", json!({"title":"A"})).await.ok(201);
    s.post(&format!("/api/v1/items/deal/{}/move", deal["id"]), json!({"stage":"in-progress"})).await.ok(200);
    // Removing the occupied stage is refused and changes nothing.
    let without = json!([{"key":"new","title":"New"},{"key":"won","title":"Won","semantics":"success"}]);
    s.patch("/api/v1/types/deal/funnels/default", json!({"stages": without})).await.problem(409, "conflict");
    let funnel = s.get("/api/v1/types/deal/funnels/default").await.ok(200);
    assert_eq!(funnel["stages"].as_array().unwrap().len(), 4);
    // Adding a stage and renaming titles works.
    let stages = json!([
        {"key":"new","title":"Fresh"},{"key":"in-progress","title":"Working"},{"key":"check","title":"Check"},
        {"key":"won","title":"Won","semantics":"success"},{"key":"lost","title":"Lost","semantics":"failure"}
    ]);
    let funnel =
        s.patch("/api/v1/types/deal/funnels/default", json!({"title":"Deals!","stages": stages})).await.ok(200);
    assert_eq!(funnel["stages"][2]["key"], "check");
    s.post(&format!("/api/v1/items/deal/{}/move", deal["id"]), json!({"stage":"check"})).await.ok(200);
    // A second funnel can become the default; new items land there.
    s.post(
        "/api/v1/types/deal/funnels",
        json!({"key":"claims","title":"Claims","stages":[{"key":"open","title":"Open"}]}),
    )
    .await
    .ok(201);
    s.patch("/api/v1/types/deal/funnels/claims", json!({"default": true})).await.ok(200);
    let item = s.post("/api/v1/items/deal", json!({"title":"B"})).await.ok(201);
    assert_eq!(item["funnel"], "claims");
    assert_eq!(item["stage"], "open");
}
both!(funnel_stages_change_but_occupied_ones_stay);
