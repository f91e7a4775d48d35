//! Items: create, read, change, move, delete; validation; If-Match; history; timeline; events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn with_deal_fields(s: &Server) {
    for f in [
        json!({"key":"source","title":"Source","kind":"enum","options":["email","phone"]}),
        json!({"key":"budget","title":"Budget","kind":"number"}),
        json!({"key":"install_date","title":"Install date","kind":"date"}),
        json!({"key":"address","title":"Address","kind":"string","required":true}),
    ] {
        s.post("/api/v1/types/deal/fields", f).await.ok(201);
    }
}

async fn item_lifecycle(backend: Backend) {
    let s = Server::start(backend).await;
    with_deal_fields(&s).await;
    let me = s.get("/api/v1/me").await.ok(200);
    let created = s
        .post(
            "/api/v1/items/deal",
            json!({"title":"Kitchen for Ivanov","funnel":"default","stage":"new",
                   "amount":{"value":"150000.00","currency":"RUB"},"responsible":me["id"],
                   "fields":{"source":"email","address":"Lenina 1"}}),
        )
        .await;
    assert_eq!(created.headers["etag"], "\"1\"");
    let created = created.ok(201);
    for key in [
        "id",
        "type",
        "funnel",
        "stage",
        "title",
        "amount",
        "responsible",
        "parents",
        "fields",
        "version",
        "created_at",
    ] {
        assert!(created.get(key).is_some(), "missing {key}");
    }
    assert_eq!(created["amount"], json!({"value":"150000.00","currency":"RUB"}));
    assert_eq!(created["version"], 1);
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/v1/items/deal/{id}");

    let got = s.get(&path).await;
    assert_eq!(got.headers["etag"], "\"1\"");
    assert_eq!(got.ok(200)["fields"]["source"], "email");

    let changed = s.patch(&path, json!({"title":"Kitchen","fields":{"budget":"12.5","source":null}})).await.ok(200);
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["fields"]["budget"], 12.5);
    assert!(changed["fields"].get("source").is_none());
    // An unchanged patch writes nothing.
    let same = s.patch(&path, json!({"title":"Kitchen"})).await.ok(200);
    assert_eq!(same["version"], 2);

    // If-Match: a stale version is refused with 412 and nothing changes.
    let stale = s
        .request(Method::PATCH, &path)
        .header("If-Match", "\"1\"")
        .json(&json!({"title":"Lost update"}))
        .send()
        .await
        .unwrap();
    Reply::from(stale).await.problem(412, "precondition-failed");
    let fresh = s
        .request(Method::PATCH, &path)
        .header("If-Match", "\"2\"")
        .json(&json!({"title":"Kitchen v3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::from(fresh).await.ok(200)["version"], 3);
    let stale_move = s
        .request(Method::POST, &format!("{path}/move"))
        .header("If-Match", "W/\"2\"")
        .json(&json!({"stage":"won"}))
        .send()
        .await
        .unwrap();
    Reply::from(stale_move).await.problem(412, "precondition-failed");
    let bad = s
        .request(Method::PATCH, &path)
        .header("If-Match", "yesterday")
        .json(&json!({"title":"x"}))
        .send()
        .await
        .unwrap();
    Reply::from(bad).await.problem(400, "bad-if-match");
    assert_eq!(s.get(&path).await.ok(200)["title"], "Kitchen v3");

    let deleted = s.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    s.get(&path).await.problem(404, "not-found");
    s.patch(&path, json!({"title":"ghost"})).await.problem(404, "not-found");
    // An id of another type is not found under this type.
    let contact = s.post("/api/v1/items/contact", json!({"title":"Ivan"})).await.ok(201);
    s.get(&format!("/api/v1/items/deal/{}", contact["id"])).await.problem(404, "not-found");
    s.get("/api/v1/items/deal/abc").await.problem(404, "not-found");
}
both!(item_lifecycle);

async fn bad_item_input_writes_nothing(backend: Backend) {
    let s = Server::start(backend).await;
    with_deal_fields(&s).await;
    let good = json!({"title":"T","fields":{"address":"A"}});
    s.post("/api/v1/items/deal", good.clone()).await.ok(201);
    let events = s.event_count().await;
    let cases = [
        (json!({"title":"T","funnel":"nope","fields":{"address":"A"}}), "funnel"),
        (json!({"title":"T","stage":"nope","fields":{"address":"A"}}), "stage"),
        (json!({"title":"T","fields":{"address":"A","colour":"red"}}), "fields.colour"),
        (json!({"title":"T","fields":{"address":"A","budget":"lots"}}), "fields.budget"),
        (json!({"title":"T","fields":{"address":"A","source":"fax"}}), "fields.source"),
        (json!({"title":"T","fields":{"address":"A","install_date":"31.12.2026"}}), "fields.install_date"),
        (json!({"title":"T","fields":{}}), "fields.address"),
        (json!({"title":"","fields":{"address":"A"}}), "title"),
        (json!({"title":"T","amount":{"value":"1.5","currency":"rub"},"fields":{"address":"A"}}), "amount"),
        (json!({"title":"T","responsible":9999,"fields":{"address":"A"}}), "responsible"),
        (json!({"title":"T","contact":9999,"fields":{"address":"A"}}), "contact"),
        (json!({"title":"T","parents":[{"type":"deal","id":1}],"fields":{"address":"A"}}), "parents[0]"),
        (json!({"title":"T","feilds":{}}), "feilds"),
        (json!({"title":"T","amount":{"value":1.5,"currency":"RUB"},"fields":{"address":"A"}}), "amount"),
    ];
    for (body, field) in cases {
        let p = s.post("/api/v1/items/deal", body.clone()).await.problem(422, "validation-failed");
        assert!(Reply::error_fields(&p).iter().any(|f| f.starts_with(field)), "{body} -> {p}");
    }
    s.post("/api/v1/items/nope", good.clone()).await.problem(404, "not-found");
    s.post("/api/v1/items/contact", json!({"title":"C","stage":"new"})).await.problem(422, "validation-failed");
    s.post("/api/v1/items/contact", json!({"title":"C","amount":{"value":"1","currency":"RUB"}}))
        .await
        .problem(422, "validation-failed");
    let malformed = s
        .request(Method::POST, "/api/v1/items/deal")
        .header("content-type", "application/json")
        .body("{\"title\":")
        .send()
        .await
        .unwrap();
    Reply::from(malformed).await.problem(400, "malformed-json");
    let no_type = s.request(Method::POST, "/api/v1/items/deal").body("{}").send().await.unwrap();
    Reply::from(no_type).await.problem(415, "unsupported-media-type");
    let (code, response) = s.post_announcing("/api/v1/items/deal", 2 * 1024 * 1024).await;
    assert_eq!(code, 413, "{response}");
    assert!(response.contains("application/problem+json") && response.contains("payload-too-large"), "{response}");
    let id = s.get("/api/v1/items/deal").await.ok(200)["items"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/items/deal/{id}");
    s.patch(&path, json!({"fields":{"address":null}})).await.problem(422, "validation-failed");
    s.patch(&path, json!({"stage":"won"})).await.problem(422, "validation-failed");
    s.patch(&path, json!({"fields":{"budget":"x"},"title":"changed"})).await.problem(422, "validation-failed");
    s.post(&format!("{path}/move"), json!({"stage":"nope"})).await.problem(422, "validation-failed");
    s.post(&format!("{path}/move"), json!({"funnel":"nope","stage":"new"})).await.problem(422, "validation-failed");
    // Nothing was written by any refused request.
    assert_eq!(s.count("deal").await, 1);
    assert_eq!(s.count("contact").await, 0);
    assert_eq!(s.event_count().await, events);
    let item = s.get(&path).await.ok(200);
    assert_eq!(item["version"], 1);
    assert_eq!(item["title"], "T");
}
both!(bad_item_input_writes_nothing);

async fn claims_round_trip_keeps_history(backend: Backend) {
    let s = Server::start(backend).await;
    let stages = |list: &[(&str, &str)]| {
        serde_json::Value::Array(list.iter().map(|(k, sem)| json!({"key":k,"title":k,"semantics":sem})).collect())
    };
    s.post("/api/v1/types/deal/funnels", json!({"key":"sales","title":"Sales","stages": stages(&[("new","process"),("measuring","process"),("won","success"),("defects","failure")])})).await.ok(201);
    s.post("/api/v1/types/deal/funnels", json!({"key":"claims","title":"Claims","stages": stages(&[("new","process"),("fixing","process"),("done","success")])})).await.ok(201);
    let deal = s.post("/api/v1/items/deal", json!({"title":"Kitchen","funnel":"sales","stage":"new"})).await.ok(201);
    let path = format!("/api/v1/items/deal/{}", deal["id"]);
    s.post(&format!("{path}/move"), json!({"stage":"measuring"})).await.ok(200);
    s.post(&format!("{path}/move"), json!({"stage":"defects"})).await.ok(200);
    let moved = s.post(&format!("{path}/move"), json!({"funnel":"claims","stage":"new"})).await.ok(200);
    assert_eq!((moved["funnel"].as_str(), moved["stage"].as_str()), (Some("claims"), Some("new")));
    s.post(&format!("{path}/move"), json!({"stage":"fixing"})).await.ok(200);
    s.post(&format!("{path}/move"), json!({"funnel":"sales","stage":"measuring"})).await.ok(200);
    // Moving to where it already is changes nothing.
    let same = s.post(&format!("{path}/move"), json!({"stage":"measuring"})).await.ok(200);
    assert_eq!(same["version"], 6);

    let me = s.get("/api/v1/me").await.ok(200);
    let history = s.get(&format!("{path}/history")).await.ok(200);
    let items = history["items"].as_array().unwrap();
    let steps: Vec<(String, String)> = items
        .iter()
        .map(|e| {
            (
                match e["from"].is_null() {
                    true => "created".to_string(),
                    false => {
                        format!("{}/{}", e["from"]["funnel"].as_str().unwrap(), e["from"]["stage"].as_str().unwrap())
                    }
                },
                format!("{}/{}", e["to"]["funnel"].as_str().unwrap(), e["to"]["stage"].as_str().unwrap()),
            )
        })
        .collect();
    let expected = [
        ("created", "sales/new"),
        ("sales/new", "sales/measuring"),
        ("sales/measuring", "sales/defects"),
        ("sales/defects", "claims/new"),
        ("claims/new", "claims/fixing"),
        ("claims/fixing", "sales/measuring"),
    ];
    assert_eq!(steps, expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    assert!(items.iter().all(|e| e["actor"] == json!({"kind":"user","id":me["id"]}) && e["at"].is_string()));
    assert!(history["next_cursor"].is_null());
    // Paginated history.
    let page = s.get(&format!("{path}/history?limit=3")).await.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = s.get(&format!("{path}/history?limit=3&cursor={next}")).await.ok(200);
    assert_eq!(page2["items"][0]["from"]["stage"], "defects");
    assert_eq!(page2["items"][0]["to"]["funnel"], "claims");

    // Events recorded the moves with their kinds.
    let events = s.get(&format!("/api/v1/events?item={}", deal["id"])).await.ok(200);
    let kinds: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "item.created",
            "item.stage_changed",
            "item.stage_changed",
            "item.funnel_changed",
            "item.stage_changed",
            "item.funnel_changed"
        ]
    );
}
both!(claims_round_trip_keeps_history);

async fn timeline_has_comments_and_system_entries(backend: Backend) {
    let s = Server::start(backend).await;
    let deal = s.post("/api/v1/items/deal", json!({"title":"T"})).await.ok(201);
    let path = format!("/api/v1/items/deal/{}", deal["id"]);
    s.post(&format!("{path}/move"), json!({"stage":"in-progress"})).await.ok(200);
    let comment = s.post(&format!("{path}/timeline"), json!({"text":"Called the client"})).await.ok(201);
    assert_eq!(comment["kind"], "comment");
    s.post(&format!("{path}/timeline"), json!({"text":"  "})).await.problem(422, "validation-failed");
    s.post(&format!("{path}/timeline"), json!({})).await.problem(422, "validation-failed");
    let timeline = s.get(&format!("{path}/timeline")).await.ok(200);
    let entries = timeline["items"].as_array().unwrap();
    let texts: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["text"].as_str().unwrap())).collect();
    assert_eq!(
        texts,
        [("comment", "Called the client"), ("system", "Moved to stage in-progress"), ("system", "Created")]
    );
    let first = s.get(&format!("{path}/timeline?limit=1")).await.ok(200);
    let next = first["next_cursor"].as_str().unwrap();
    let second = s.get(&format!("{path}/timeline?limit=1&cursor={next}")).await.ok(200);
    assert_eq!(second["items"][0]["text"], "Moved to stage in-progress");
}
both!(timeline_has_comments_and_system_entries);

async fn many_concurrent_writers_all_succeed(backend: Backend) {
    let s = Server::start(backend).await;
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let (http, base, token) = (http.clone(), s.base.clone(), s.admin.clone());
            tokio::spawn(async move {
                let created = http
                    .post(format!("{base}/api/v1/items/deal"))
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("c{i}")}))
                    .send()
                    .await
                    .expect("create");
                assert_eq!(created.status(), 201, "{:?}", created.text().await);
                let id = created.json::<serde_json::Value>().await.expect("json")["id"].clone();
                let moved = http
                    .post(format!("{base}/api/v1/items/deal/{id}/move"))
                    .bearer_auth(&token)
                    .json(&json!({"stage": "in-progress"}))
                    .send()
                    .await
                    .expect("move");
                assert_eq!(moved.status(), 200);
            })
        })
        .collect();
    let started = std::time::Instant::now();
    for t in tasks {
        t.await.expect("writer");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "writers waited on each other: {:?}",
        started.elapsed()
    );
    assert_eq!(s.count("deal").await, 48);
}
both!(many_concurrent_writers_all_succeed);

async fn concurrent_changes_of_one_item_all_land(backend: Backend) {
    let s = Server::start(backend).await;
    let id = s.post("/api/v1/items/deal", json!({"title": "Contended"})).await.ok(201)["id"].clone();
    let http = reqwest::Client::new();
    let writers = 16;
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let (http, base, token, id) = (http.clone(), s.base.clone(), s.admin.clone(), id.clone());
            tokio::spawn(async move {
                let (path, body) = if i % 4 == 0 {
                    (format!("{base}/api/v1/items/deal/{id}"), json!({"title": format!("title {i}")}))
                } else {
                    let stage = if i % 2 == 1 { "in-progress" } else { "new" };
                    (format!("{base}/api/v1/items/deal/{id}/move"), json!({"stage": stage}))
                };
                let method = if i % 4 == 0 { Method::PATCH } else { Method::POST };
                let reply = http.request(method, path).bearer_auth(&token).json(&body).send().await.expect("send");
                assert_eq!(reply.status(), 200, "{:?}", reply.text().await);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    // Every change read the version it replaced: versions, history and timeline agree.
    let item = s.item("deal", &id).await;
    let history = s.get(&format!("/api/v1/items/deal/{id}/history?limit=500")).await.ok(200)["items"].clone();
    let mut history = history.as_array().cloned().unwrap_or_default();
    // The first entry is the creation (from nowhere); the moves follow it.
    assert_eq!(history.remove(0)["from"], Value::Null);
    // A move that read a stale stage would record a `from` that is not where the item stood.
    let mut stood = json!("new");
    for entry in &history {
        assert_eq!(entry["from"]["stage"], stood, "history is continuous: {history:?}");
        assert_ne!(entry["to"]["stage"], stood, "every recorded move changed the stage");
        stood = entry["to"]["stage"].clone();
    }
    assert_eq!(item["stage"], stood);
    let changes = s.timeline_texts("deal", &id).await.iter().filter(|t| t.starts_with("Changed title")).count();
    assert_eq!(changes, writers / 4, "every title change is on the timeline");
    assert_eq!(item["version"], json!(1 + changes + history.len()), "one version per recorded change");
}
both!(concurrent_changes_of_one_item_all_land);
