//! Lists: filters, sorting, cursor pagination (also while others insert).

use std::collections::HashSet;

use serde_json::json;

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn filters_and_sorting(backend: Backend) {
    let s = Server::start(backend).await;
    for f in [
        json!({"key":"source","title":"Source","kind":"enum","options":["email","phone"]}),
        json!({"key":"budget","title":"Budget","kind":"number"}),
        json!({"key":"install_date","title":"Install date","kind":"date"}),
        json!({"key":"vip","title":"VIP","kind":"bool"}),
        json!({"key":"price","title":"Price","kind":"money"}),
        json!({"key":"tags","title":"Tags","kind":"string","multiple":true}),
        json!({"key":"measurer","title":"Measurer","kind":"user"}),
    ] {
        s.post("/api/v1/types/deal/fields", f).await.ok(201);
    }
    let me = s.get("/api/v1/me").await.ok(200)["id"].as_i64().unwrap();
    let rows = [
        ("Kitchen Ivanov", "email", 100, "2026-01-10", true, "10.50", json!(["a", "b"])),
        ("Wardrobe Petrova", "phone", 250, "2026-02-10", false, "99.99", json!(["b"])),
        ("Kitchen Sidorov", "email", 400, "2026-03-10", false, "1000.00", json!([])),
        ("Office 50% off_", "phone", 50, "2026-04-10", true, "5.00", json!(["c"])),
    ];
    let mut ids = Vec::new();
    for (title, source, budget, date, vip, price, tags) in rows {
        let item = s
            .post(
                "/api/v1/items/deal",
                json!({"title":title,"responsible": if vip { Some(me) } else { None },"fields":{"source":source,"budget":budget,"install_date":date,"vip":vip,
                       "price":{"value":price,"currency":"RUB"},"tags":tags,"measurer":me}}),
            )
            .await
            .ok(201);
        ids.push(item["id"].as_i64().unwrap());
    }
    s.post(&format!("/api/v1/items/deal/{}/move", ids[1]), json!({"stage":"won"})).await.ok(200);
    let contact = s.post("/api/v1/items/contact", json!({"title":"Ivan"})).await.ok(201);
    s.patch(&format!("/api/v1/items/deal/{}", ids[0]), json!({"contact": contact["id"]})).await.ok(200);

    let titles = |q: &'static str| {
        let s = &s;
        async move {
            let page = s.get(&format!("/api/v1/items/deal?{q}")).await.ok(200);
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(titles("field.source=email").await, ["Kitchen Ivanov", "Kitchen Sidorov"]);
    assert_eq!(titles("field.budget.gte=100&field.budget.lt=400").await, ["Kitchen Ivanov", "Wardrobe Petrova"]);
    assert_eq!(titles("field.install_date.gt=2026-02-10").await, ["Kitchen Sidorov", "Office 50% off_"]);
    assert_eq!(titles("field.vip=true").await, ["Kitchen Ivanov", "Office 50% off_"]);
    assert_eq!(titles("field.price.gte=99.99").await, ["Wardrobe Petrova", "Kitchen Sidorov"]);
    assert_eq!(titles("field.tags=b").await, ["Kitchen Ivanov", "Wardrobe Petrova"]);
    assert_eq!(titles("field.measurer=1").await.len(), if me == 1 { 4 } else { 0 });
    assert_eq!(titles("stage=won").await, ["Wardrobe Petrova"]);
    assert_eq!(titles("funnel=default&stage=new").await.len(), 3);
    assert_eq!(titles("q=kitchen").await, ["Kitchen Ivanov", "Kitchen Sidorov"]);
    assert_eq!(titles("q=50%25 off_").await, ["Office 50% off_"]);
    assert_eq!(titles("q=0%25").await, ["Office 50% off_"], "% is literal");
    assert_eq!(titles("responsible=1").await.len(), if me == 1 { 2 } else { 0 });
    assert_eq!(titles(Box::leak(format!("contact={}", contact["id"]).into_boxed_str())).await, ["Kitchen Ivanov"]);
    assert_eq!(
        titles("sort=-title").await,
        ["Wardrobe Petrova", "Office 50% off_", "Kitchen Sidorov", "Kitchen Ivanov"]
    );
    assert_eq!(titles("sort=-id&limit=2").await, ["Office 50% off_", "Kitchen Sidorov"]);
    assert_eq!(titles("created_at.gte=2000-01-01T00:00:00Z&sort=created_at").await.len(), 4);
    assert!(titles("created_at.lt=2000-01-01T00:00:00Z").await.is_empty());

    // Pages under each sort visit every row once.
    for sort in ["id", "-id", "title", "-title", "created_at", "-updated_at"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/items/deal?sort={sort}&limit=1&cursor={c}"),
                None => format!("/api/v1/items/deal?sort={sort}&limit=1"),
            };
            let page = s.get(&path).await.ok(200);
            seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "sort {sort}");
    }

    for (q, field) in [
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("colour=red", "colour"),
        ("field.nope=1", "field.nope"),
        ("field.budget=lots", "field.budget"),
        ("field.budget.near=1", "field.budget.near"),
        ("field.vip=maybe", "field.vip"),
        ("sort=colour", "sort"),
        ("cursor=zz", "cursor"),
        ("responsible=me", "responsible"),
        ("created_at.gte=yesterday", "created_at.gte"),
    ] {
        let p = s.get(&format!("/api/v1/items/deal?{q}")).await.problem(422, "validation-failed");
        assert_eq!(Reply::error_fields(&p), vec![field], "{q}");
    }
    let first = s.get("/api/v1/items/deal?sort=title&limit=1").await.ok(200);
    let c = first["next_cursor"].as_str().unwrap();
    s.get(&format!("/api/v1/items/deal?sort=id&cursor={c}")).await.problem(422, "validation-failed");
    s.get("/api/v1/items/nope").await.problem(404, "not-found");
}
both!(filters_and_sorting);

async fn pagination_is_stable_while_others_insert(backend: Backend) {
    let s = Server::start(backend).await;
    for i in 0..120 {
        s.post("/api/v1/items/deal", json!({"title": format!("before {i}")})).await.ok(201);
    }
    let existing: HashSet<i64> = {
        let page = s.get("/api/v1/items/deal?limit=500").await.ok(200);
        page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(existing.len(), 120);
    let writer = {
        let base = s.base.clone();
        let token = s.admin.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..150 {
                let r = http
                    .post(format!("{base}/api/v1/items/deal"))
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("during {i}")}))
                    .send()
                    .await;
                assert_eq!(r.expect("insert").status(), 201);
            }
        })
    };
    for sort in ["id", "-id"] {
        let mut seen: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/items/deal?sort={sort}&limit=7&cursor={c}"),
                None => format!("/api/v1/items/deal?sort={sort}&limit=7"),
            };
            let page = s.get(&path).await.ok(200);
            seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a row was listed twice under sort {sort}");
        assert!(existing.is_subset(&unique), "a row that existed before was skipped under sort {sort}");
        let mut ordered = seen.clone();
        ordered.sort();
        if sort == "-id" {
            ordered.reverse();
        }
        assert_eq!(ordered, seen, "order under sort {sort}");
        if sort == "id" {
            // Ascending pages end at the newest row committed when the last page was read,
            // with no gap: every id in between was listed.
            let max = *seen.iter().max().unwrap();
            let all: HashSet<i64> = s.get("/api/v1/items/deal?limit=500").await.ok(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap())
                .filter(|id| *id <= max)
                .collect();
            assert_eq!(all, unique, "ascending pagination skipped a row inserted meanwhile");
        }
    }
    writer.await.unwrap();
    assert_eq!(s.count("deal").await, 270);
}
both!(pagination_is_stable_while_others_insert);
