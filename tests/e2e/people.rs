//! Users, departments, roles and tokens.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn users_departments_roles_tokens(backend: Backend) {
    let s = Server::start(backend).await;
    let sales = s.post("/api/v1/departments", json!({"name":"Sales"})).await.ok(201);
    let east = s.post("/api/v1/departments", json!({"name":"Sales East","parent":sales["id"]})).await.ok(201);
    s.post("/api/v1/roles", json!({"key":"sales","title":"Sales","permissions":[{"type":"deal","access":"write"}]}))
        .await
        .ok(201);
    let olga = s
        .post(
            "/api/v1/users",
            json!({"name":"Olga","email":"olga@example.com","department":sales["id"],"roles":["sales"]}),
        )
        .await
        .ok(201);
    assert_eq!(olga["roles"], json!(["sales"]));
    assert_eq!(olga["department"], sales["id"]);
    let head = s
        .call(Method::PATCH, &format!("/api/v1/departments/{}", sales["id"]), Some(json!({"head": olga["id"]})))
        .await
        .ok(200);
    assert_eq!(head["head"], olga["id"]);
    let departments = s.get("/api/v1/departments").await.ok(200);
    assert_eq!(departments["items"][1]["parent"], sales["id"]);
    s.patch(&format!("/api/v1/departments/{}", sales["id"]), json!({"parent": east["id"]}))
        .await
        .problem(422, "validation-failed");
    s.patch(&format!("/api/v1/departments/{}", sales["id"]), json!({"head": 999}))
        .await
        .problem(422, "validation-failed");
    s.patch("/api/v1/departments/999", json!({"name":"x"})).await.problem(404, "not-found");

    let token = s.post(&format!("/api/v1/users/{}/tokens", olga["id"]), json!({"name":"laptop"})).await.ok(201);
    let token = token["token"].as_str().unwrap().to_string();
    let me = s.call_as(&token, Method::GET, "/api/v1/me", None).await.ok(200);
    assert_eq!(me["email"], "olga@example.com");
    // A user may issue a token for itself; the body is optional.
    let own = s.request_as(&token, Method::POST, &format!("/api/v1/users/{}/tokens", olga["id"])).send().await.unwrap();
    assert_eq!(own.status(), 201);
    s.post("/api/v1/users/999/tokens", json!({})).await.problem(404, "not-found");

    let p = s.post("/api/v1/users", json!({"name":"","email":"not-an-email"})).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["name", "email"]);
    s.post("/api/v1/users", json!({"name":"O","email":"OLGA@example.com"})).await.problem(409, "conflict");
    s.post("/api/v1/users", json!({"name":"O","email":"o2@example.com","roles":["nope"]}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/users", json!({"name":"O","email":"o2@example.com","department":999}))
        .await
        .problem(422, "validation-failed");
    let p = s.post("/api/v1/roles", json!({"key":"x","permissions":[{"type":"nope","access":"read"},{"type":"deal","funnel":"nope","access":"read"}]})).await.problem(422, "validation-failed");
    assert_eq!(Reply::error_fields(&p), vec!["permissions[0].type", "permissions[1].funnel"]);
    s.post("/api/v1/roles", json!({"key":"x","permissions":[{"type":"deal","access":"root"}]}))
        .await
        .problem(422, "validation-failed");
    s.post("/api/v1/roles", json!({"key":"sales"})).await.problem(409, "conflict");
    let roles = s.get("/api/v1/roles").await.ok(200);
    assert_eq!(roles["items"].as_array().unwrap().len(), 1);
    assert_eq!(roles["items"][0]["permissions"], json!([{"type":"deal","access":"write"}]));

    // Users list paginates by id.
    for i in 0..4 {
        s.post("/api/v1/users", json!({"name":format!("U{i}"),"email":format!("u{i}@example.com")})).await.ok(201);
    }
    let first = s.get("/api/v1/users?limit=3").await.ok(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let next = first["next_cursor"].as_str().unwrap();
    let rest = s.get(&format!("/api/v1/users?limit=3&cursor={next}")).await.ok(200);
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert!(rest["next_cursor"].is_null());
    s.get("/api/v1/users?limit=0").await.problem(422, "validation-failed");
    let one = s.get(&format!("/api/v1/users/{}", olga["id"])).await.ok(200);
    assert_eq!(one["name"], "Olga");
    s.get("/api/v1/users/999").await.problem(404, "not-found");
}
both!(users_departments_roles_tokens);
