//! Outgoing webhooks: signed deliveries, retries against a receiver that fails then succeeds,
//! filters, the delivery log, validation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::both;
use crate::harness::{Backend, Reply, Server};

/// A local HTTP endpoint that answers 500 to its first `failures` requests, then 200, and keeps
/// every request it got.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        let requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let seen = requests.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().expect("receiver lock");
                    seen.push((headers, body));
                    if seen.len() <= failures {
                        (StatusCode::INTERNAL_SERVER_ERROR, "not yet")
                    } else {
                        (StatusCode::OK, "thanks")
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.requests.lock().expect("receiver lock").clone()
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn deliveries(s: &Server, hook: &Value) -> Vec<Value> {
    let list = s.get(&format!("/api/v1/webhooks/{}/deliveries", hook["id"])).await.ok(200);
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn deliveries_are_signed_and_retried_until_the_target_accepts(backend: Backend) {
    let s = Server::start(backend).await;
    let receiver = Receiver::start(2).await;
    // Moved before anything subscribed: a subscription gets the events from its creation on.
    let earlier = s.post("/api/v1/items/deal", json!({"title": "Earlier"})).await.ok(201)["id"].clone();
    s.post(&format!("/api/v1/items/deal/{earlier}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let hook = s
        .post("/api/v1/webhooks", json!({"url": receiver.url(), "events": ["item.stage_changed"], "secret": "s3cret"}))
        .await
        .ok(201);
    assert_eq!(hook["secret"], "s3cret");
    assert_eq!(hook["active"], true);
    // The secret is shown once.
    assert!(s.get(&format!("/api/v1/webhooks/{}", hook["id"])).await.ok(200).get("secret").is_none());

    let deal = s.post("/api/v1/items/deal", json!({"title": "Kitchen"})).await.ok(201)["id"].clone();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    let delivered = s
        .wait_for(30, "the delivery to succeed", || async {
            deliveries(&s, &hook).await.into_iter().find(|d| d["status"] == "delivered")
        })
        .await;
    assert_eq!(delivered["attempts"], 3);
    assert_eq!(delivered["last_status"], 200);
    let statuses: Vec<Value> =
        delivered["log"].as_array().map(|l| l.iter().map(|a| a["status"].clone()).collect()).unwrap_or_default();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);
    // Only the subscribed kind was queued: the creation of the deal was not.
    assert_eq!(deliveries(&s, &hook).await.len(), 1);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    for (headers, body) in &requests {
        let signature = headers.get("x-voronka-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(signature, format!("sha256={}", hmac_hex("s3cret", body)));
        assert_eq!(headers.get("x-voronka-event").and_then(|v| v.to_str().ok()), Some("item.stage_changed"));
        let event: Value = serde_json::from_slice(body).expect("a JSON body");
        assert_eq!(event["kind"], "item.stage_changed");
        assert_eq!(event["item_id"], deal);
        assert_eq!(event["payload"]["to"]["stage"], "in-progress");
    }
    // A delivered delivery can be sent again.
    let path = format!("/api/v1/webhooks/{}/deliveries/{}/redeliver", hook["id"], delivered["id"]);
    s.call(Method::POST, &path, None).await.ok(202);
    s.wait_for(30, "the redelivery", || async { (receiver.requests().len() == 4).then_some(()) }).await;
}
both!(deliveries_are_signed_and_retried_until_the_target_accepts);

async fn filters_pauses_and_unreachable_targets(backend: Backend) {
    let s = Server::start(backend).await;
    let receiver = Receiver::start(0).await;
    let contacts_only = json!({"url": receiver.url(), "events": ["*"], "filter": {"type": "contact"}});
    let contacts = s.post("/api/v1/webhooks", contacts_only).await.ok(201);
    assert!(contacts["secret"].as_str().is_some_and(|k| k.len() == 64), "a generated secret: {contacts}");
    let won = json!({"url": receiver.url(), "events": ["item.stage_changed"], "filter": {"stage": "won"}});
    let won = s.post("/api/v1/webhooks", won).await.ok(201);
    let paused = json!({"url": receiver.url(), "events": ["*"], "active": false});
    let paused = s.post("/api/v1/webhooks", paused).await.ok(201);
    // Nothing listens on this port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_url = format!("http://{}/hook", closed.local_addr().expect("address"));
    drop(closed);
    let unreachable = s.post("/api/v1/webhooks", json!({"url": closed_url, "events": ["item.created"]})).await.ok(201);

    let deal = s.post("/api/v1/items/deal", json!({"title": "Kitchen"})).await.ok(201)["id"].clone();
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "in-progress"})).await.ok(200);
    s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": "won"})).await.ok(200);
    s.post("/api/v1/items/contact", json!({"title": "Ivanov"})).await.ok(201);
    s.wait_for(30, "the filtered deliveries", || async {
        let won = deliveries(&s, &won).await;
        let contacts = deliveries(&s, &contacts).await;
        (won.iter().any(|d| d["status"] == "delivered") && contacts.iter().any(|d| d["status"] == "delivered"))
            .then_some(())
    })
    .await;
    // Only the move to `won`, only the contact's creation, nothing for the paused one.
    assert_eq!(deliveries(&s, &won).await.len(), 1);
    assert_eq!(deliveries(&s, &contacts).await.len(), 1);
    assert_eq!(deliveries(&s, &paused).await.len(), 0);
    let failing = s
        .wait_for(30, "an attempt at the closed port", || async {
            deliveries(&s, &unreachable).await.into_iter().find(|d| d["attempts"].as_i64() >= Some(1))
        })
        .await;
    assert_eq!(failing["status"], "pending", "{failing}");
    assert!(failing["last_error"].as_str().unwrap_or_default().contains("could not connect"), "{failing}");
    assert!(failing["next_at"].is_string(), "{failing}");
    // A delivery still being attempted cannot be redelivered.
    let path = format!("/api/v1/webhooks/{}/deliveries/{}/redeliver", unreachable["id"], failing["id"]);
    s.call(Method::POST, &path, None).await.problem(409, "conflict");
    // Deleting the subscription deletes its log.
    s.call(Method::DELETE, &format!("/api/v1/webhooks/{}", unreachable["id"]), None).await.ok(204);
    s.get(&format!("/api/v1/webhooks/{}/deliveries", unreachable["id"])).await.problem(404, "not-found");
}
both!(filters_pauses_and_unreachable_targets);

async fn bad_subscriptions_are_refused(backend: Backend) {
    let s = Server::start(backend).await;
    let cases = [
        (json!({"url": "file:///etc/passwd", "events": ["*"]}), "url"),
        (json!({"url": "ftp://example.com/x", "events": ["*"]}), "url"),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"url": "http://example.com/", "events": []}), "events"),
        (json!({"url": "http://example.com/", "events": ["item.moved"]}), "events"),
        (json!({"url": "http://example.com/", "events": ["*"], "secret": ""}), "secret"),
    ];
    for (body, field) in cases {
        let problem = s.post("/api/v1/webhooks", body.clone()).await.problem(422, "validation-failed");
        assert!(Reply::error_fields(&problem).iter().any(|f| f == field), "{body}: {problem}");
    }
    let unknown_filter = json!({"url": "http://example.com/", "events": ["*"], "filter": {"colour": "red"}});
    let reply = s.post("/api/v1/webhooks", unknown_filter).await;
    assert_eq!(reply.status.as_u16(), 422, "{:?}", reply.body);
    assert_eq!(s.get("/api/v1/webhooks").await.ok(200)["items"].as_array().map(Vec::len), Some(0));
    // Administrators only.
    s.post("/api/v1/roles", json!({"key":"sales","permissions":[{"type":"deal","access":"admin"}]})).await.ok(201);
    let (_, token) = s.user_with_roles("sales@example.com", &["sales"]).await;
    let body = json!({"url": "http://example.com/", "events": ["*"]});
    s.call_as(&token, Method::POST, "/api/v1/webhooks", Some(body)).await.problem(403, "forbidden");
    s.call_as(&token, Method::GET, "/api/v1/webhooks", None).await.problem(403, "forbidden");
    s.get("/api/v1/webhooks/77").await.problem(404, "not-found");
}
both!(bad_subscriptions_are_refused);
