//! `Idempotency-Key`: a repeated POST returns the first response and writes nothing new.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Reply, Server};

async fn repeated_key_replays_first_response(backend: Backend) {
    let s = Server::start(backend).await;
    let send = |key: &str, body: serde_json::Value| {
        s.request(Method::POST, "/api/v1/items/deal").header("Idempotency-Key", key).json(&body).send()
    };
    let first = Reply::from(send("k1", json!({"title":"Once"})).await.unwrap()).await;
    let first = first.ok(201);
    let again = Reply::from(send("k1", json!({"title":"Once"})).await.unwrap()).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.ok(201), first);
    assert_eq!(s.count("deal").await, 1);
    // The same key with another body is refused; a new key creates.
    Reply::from(send("k1", json!({"title":"Other"})).await.unwrap()).await.problem(422, "idempotency-key-reused");
    Reply::from(send("k2", json!({"title":"Other"})).await.unwrap()).await.ok(201);
    assert_eq!(s.count("deal").await, 2);
    // A refused request is replayed as refused, and still writes nothing.
    Reply::from(send("k3", json!({"title":""})).await.unwrap()).await.problem(422, "validation-failed");
    Reply::from(send("k3", json!({"title":""})).await.unwrap()).await.problem(422, "validation-failed");
    assert_eq!(s.count("deal").await, 2);
    // Keys belong to their user: another user's same key is independent.
    let (_, token) = s.user_with_roles("u@example.com", &[]).await;
    let other = s
        .request_as(&token, Method::POST, "/api/v1/items/deal")
        .header("Idempotency-Key", "k1")
        .json(&json!({"title":"Once"}))
        .send()
        .await
        .unwrap();
    Reply::from(other).await.problem(403, "forbidden");
    // Concurrent repeats create exactly one item.
    let tasks: Vec<_> = (0..8).map(|_| send("k4", json!({"title":"Race"}))).collect();
    let mut created = 0;
    for r in futures::future::join_all(tasks).await {
        let status = r.expect("request").status().as_u16();
        assert!(status == 201 || status == 409, "{status}");
        created += usize::from(status == 201);
    }
    assert!(created >= 1);
    assert_eq!(s.count("deal").await, 3);
    let bad = s
        .request(Method::POST, "/api/v1/items/deal")
        .header("Idempotency-Key", "")
        .json(&json!({"title":"x"}))
        .send()
        .await
        .unwrap();
    Reply::from(bad).await.problem(400, "bad-idempotency-key");
}
both!(repeated_key_replays_first_response);
