//! The binary: health, authentication, OpenAPI, restart, generated admin token, demo data.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Server, Start};

async fn health_and_authentication(backend: Backend) {
    let s = Server::start(backend).await;
    let health = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    s.call_as("", Method::GET, "/api/v1/me", None).await.problem(401, "unauthorized");
    s.call_as("vk_wrong", Method::GET, "/api/v1/me", None).await.problem(401, "unauthorized");
    let raw = s.http_get_with_header("/api/v1/me", "Authorization", "Basic abc").await;
    assert_eq!(raw, 401);
    let me = s.get("/api/v1/me").await.ok(200);
    assert_eq!(me["admin"], true);
    s.get("/api/v1/no-such-route").await.problem(404, "not-found");
}
both!(health_and_authentication);

async fn openapi_document(backend: Backend) {
    let s = Server::start(backend).await;
    // The document holds no data: served without a token (issue 17).
    let doc = s.call_as("", Method::GET, "/api/v1/openapi.json", None).await.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in [
        "/api/v1/types",
        "/api/v1/types/{type}/funnels/{funnel}",
        "/api/v1/items/{type}",
        "/api/v1/items/{type}/{id}/move",
        "/api/v1/items/{type}/{id}/history",
        "/api/v1/users/{id}/tokens",
        "/api/v1/roles",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["Item"].is_object());
}
both!(openapi_document);

async fn data_survives_restart(backend: Backend) {
    let mut s = Server::start(backend).await;
    let deal = s.post("/api/v1/items/deal", json!({"title": "Kept"})).await.ok(201);
    s.post(&format!("/api/v1/items/deal/{}/move", deal["id"]), json!({"stage": "in-progress"})).await.ok(200);
    s.restart();
    let again = s.get(&format!("/api/v1/items/deal/{}", deal["id"])).await.ok(200);
    assert_eq!(again["stage"], "in-progress");
    assert_eq!(again["version"], 2);
    let history = s.get(&format!("/api/v1/items/deal/{}/history", deal["id"])).await.ok(200);
    assert_eq!(history["items"].as_array().unwrap().len(), 2, "the creation and the move");
}
both!(data_survives_restart);

async fn generated_admin_token_is_written_once(backend: Backend) {
    let mut s = Server::start_with(backend, Start { generated_token: true, ..Start::default() }).await;
    let path = s.dir.join("admin-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(s.admin.starts_with("vk_"));
    s.get("/api/v1/me").await.ok(200);
    let before = std::fs::read_to_string(&path).unwrap();
    s.restart();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "a second start keeps the first token");
    s.get("/api/v1/me").await.ok(200);
    let users = s.get("/api/v1/users").await.ok(200);
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "one administrator only");
}
both!(generated_admin_token_is_written_once);

async fn demo_seeds_the_case_once(backend: Backend) {
    let mut s = Server::start_with(backend, Start { demo: true, ..Start::default() }).await;
    let deal = s.get("/api/v1/types/deal").await.ok(200);
    let funnels: Vec<&str> = deal["funnels"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert!(funnels.contains(&"sales") && funnels.contains(&"claims"), "{funnels:?}");
    let production = s.get("/api/v1/types/production").await.ok(200);
    assert_eq!(production["parents"], json!(["deal"]));
    let deals = s.count("deal").await;
    assert!(deals >= 4);
    let departments = s.get("/api/v1/departments").await.ok(200);
    assert_eq!(departments["items"].as_array().unwrap().len(), 3);
    assert!(departments["items"].as_array().unwrap().iter().all(|d| d["head"].is_i64()));
    s.stop();
    s.restart_with_demo();
    assert_eq!(s.count("deal").await, deals, "a second --demo start seeds nothing");
}
both!(demo_seeds_the_case_once);

#[tokio::test]
async fn migrate_command_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voronka"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("voronka.db").exists());
}

#[tokio::test]
async fn unsupported_database_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voronka"))
        .args(["migrate", "--database", "mysql://x", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

/// A second host on a SQLite database in use refuses to start, says why, and leaves the
/// running one serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_serves_one_host() {
    let s = Server::start(Backend::Sqlite).await;
    let deal = s.post("/api/v1/items/deal", json!({"title": "Kitchen"})).await.ok(201);
    let other = tempfile::tempdir().unwrap();
    for args in [&["serve", "--listen", "127.0.0.1:0"][..], &["migrate"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voronka"))
            .args(args)
            .args(["--database", &s.database, "--data-dir"])
            .arg(other.path())
            .env("VORONKA_ADMIN_TOKEN", "vk_second_host")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("in use by another Voronka host"), "{args:?}: {said}");
    }
    assert_eq!(s.item("deal", &deal["id"]).await["title"], "Kitchen");
}

#[tokio::test]
async fn json_logs_on_request() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voronka"))
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("VORONKA_ADMIN_TOKEN", "vk_json_logs")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.starts_with("listening on "));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(started && status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "voronka is serving"), "{text}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "stopped"), "{text}");
}
