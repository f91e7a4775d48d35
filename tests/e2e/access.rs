//! Roles: 401/403 per route and role, lists narrowed to readable funnels.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Server};

async fn setup(s: &Server) -> (String, String, String) {
    s.post("/api/v1/types/deal/funnels", json!({"key":"sales","title":"Sales","stages":[{"key":"new","title":"New"},{"key":"won","title":"Won","semantics":"success"}]})).await.ok(201);
    s.post("/api/v1/types/deal/funnels", json!({"key":"claims","title":"Claims","stages":[{"key":"new","title":"New"},{"key":"done","title":"Done","semantics":"success"}]})).await.ok(201);
    s.post("/api/v1/types", json!({"key":"production","title":"Production","parents":["deal"]})).await.ok(201);
    s.post("/api/v1/roles", json!({"key":"sales","permissions":[{"type":"deal","funnel":"sales","access":"write"},{"type":"production","access":"read"}]})).await.ok(201);
    s.post("/api/v1/roles", json!({"key":"claims","permissions":[{"type":"deal","access":"read"},{"type":"deal","funnel":"claims","access":"write"}]})).await.ok(201);
    let (_, sales) = s.user_with_roles("anna@example.com", &["sales"]).await;
    let (_, claims) = s.user_with_roles("pavel@example.com", &["claims"]).await;
    let (_, nobody) = s.user_with_roles("guest@example.com", &[]).await;
    (sales, claims, nobody)
}

async fn roles_decide_per_type_and_funnel(backend: Backend) {
    let s = Server::start(backend).await;
    let (sales, claims, nobody) = setup(&s).await;
    let call = |t: &str, m: Method, p: &str, b: Option<serde_json::Value>| {
        let (t, p) = (t.to_string(), p.to_string());
        let s = &s;
        async move { s.call_as(&t, m, &p, b).await }
    };
    // Sales writes in its funnel only.
    let mine =
        call(&sales, Method::POST, "/api/v1/items/deal", Some(json!({"title":"A","funnel":"sales"}))).await.ok(201);
    call(&sales, Method::POST, "/api/v1/items/deal", Some(json!({"title":"B","funnel":"claims"})))
        .await
        .problem(403, "forbidden");
    call(&sales, Method::POST, "/api/v1/items/deal", Some(json!({"title":"C","funnel":"default"})))
        .await
        .problem(403, "forbidden");
    let mine_path = format!("/api/v1/items/deal/{}", mine["id"]);
    call(&sales, Method::POST, &format!("{mine_path}/move"), Some(json!({"funnel":"claims","stage":"new"})))
        .await
        .problem(403, "forbidden");
    call(&sales, Method::POST, &format!("{mine_path}/move"), Some(json!({"stage":"won"}))).await.ok(200);
    call(&sales, Method::DELETE, &mine_path, None).await.problem(403, "forbidden");
    // Production: read but not write.
    call(&sales, Method::GET, "/api/v1/items/production", None).await.ok(200);
    call(&sales, Method::POST, "/api/v1/items/production", Some(json!({"title":"P"}))).await.problem(403, "forbidden");
    // Admin puts a deal in claims; sales cannot see it, claims can and can move it.
    let claim = s.post("/api/v1/items/deal", json!({"title":"Claim","funnel":"claims"})).await.ok(201);
    let claim_path = format!("/api/v1/items/deal/{}", claim["id"]);
    call(&sales, Method::GET, &claim_path, None).await.problem(404, "not-found");
    call(&sales, Method::PATCH, &claim_path, Some(json!({"title":"x"}))).await.problem(404, "not-found");
    let listed = call(&sales, Method::GET, "/api/v1/items/deal", None).await.ok(200);
    let ids: Vec<i64> = listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![mine["id"].as_i64().unwrap()]);
    call(&claims, Method::GET, &mine_path, None).await.ok(200);
    call(&claims, Method::PATCH, &mine_path, Some(json!({"title":"x"}))).await.problem(403, "forbidden");
    call(&claims, Method::POST, &format!("{claim_path}/move"), Some(json!({"stage":"done"}))).await.ok(200);
    let all = call(&claims, Method::GET, "/api/v1/items/deal", None).await.ok(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    // No role: no items at all, but the user can see who they are.
    call(&nobody, Method::GET, "/api/v1/items/deal", None).await.problem(403, "forbidden");
    call(&nobody, Method::POST, "/api/v1/items/deal", Some(json!({"title":"x"}))).await.problem(403, "forbidden");
    call(&nobody, Method::GET, &mine_path, None).await.problem(403, "forbidden");
    call(&nobody, Method::GET, "/api/v1/me", None).await.ok(200);
    let types = call(&nobody, Method::GET, "/api/v1/types", None).await.ok(200);
    assert!(types["items"].as_array().unwrap().is_empty());
    // Administration is for administrators.
    for (m, p, b) in [
        (Method::POST, "/api/v1/types", json!({"key":"x","title":"X"})),
        (Method::POST, "/api/v1/types/deal/fields", json!({"key":"x","title":"X","kind":"string"})),
        (Method::POST, "/api/v1/types/deal/funnels", json!({"key":"x","title":"X","stages":[{"key":"a","title":"A"}]})),
        (Method::PATCH, "/api/v1/types/deal/funnels/sales", json!({"title":"X"})),
        (Method::PATCH, "/api/v1/types/deal", json!({"title":"X"})),
        (Method::POST, "/api/v1/users", json!({"name":"x","email":"x@x.x"})),
        (Method::POST, "/api/v1/roles", json!({"key":"x"})),
        (Method::POST, "/api/v1/departments", json!({"name":"x"})),
        (Method::POST, "/api/v1/users/1/tokens", json!({})),
        (Method::GET, "/api/v1/events", json!(null)),
    ] {
        let body = if b.is_null() { None } else { Some(b) };
        call(&sales, m, p, body).await.problem(403, "forbidden");
    }
    // Role changes take effect at once.
    s.patch("/api/v1/roles/sales", json!({"permissions":[{"type":"deal","access":"admin"}]})).await.ok(200);
    call(&sales, Method::DELETE, &mine_path, None).await.ok(204);
    // A deactivated user's token stops working.
    let users = s.get("/api/v1/users").await.ok(200);
    let anna =
        users["items"].as_array().unwrap().iter().find(|u| u["email"] == "anna@example.com").unwrap()["id"].clone();
    s.patch(&format!("/api/v1/users/{anna}"), json!({"active": false})).await.ok(200);
    call(&sales, Method::GET, "/api/v1/me", None).await.problem(401, "unauthorized");
}
both!(roles_decide_per_type_and_funnel);
