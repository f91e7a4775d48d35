//! Starts the real `voronka` binary on SQLite or PostgreSQL and talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Environment variable naming a PostgreSQL server for the PostgreSQL variants.
pub const POSTGRES_ENV: &str = "VORONKA_TEST_POSTGRES_URL";

/// Runs a test body on both backends: `both!(name)` expands to `name::sqlite` and
/// `name::postgres`. The PostgreSQL variant needs VORONKA_TEST_POSTGRES_URL; without it, it
/// fails when VORONKA_REQUIRE_POSTGRES=1 (as in CI) and is skipped with a notice otherwise.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::harness::postgres_available() {
                    super::$name($crate::harness::Backend::Postgres).await;
                }
            }
        }
    };
}

/// Whether PostgreSQL variants can run; panics when they are required but not configured.
pub fn postgres_available() -> bool {
    if std::env::var(POSTGRES_ENV).is_ok() {
        return true;
    }
    if std::env::var("VORONKA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("{POSTGRES_ENV} is not set but VORONKA_REQUIRE_POSTGRES=1");
    }
    eprintln!("skipping a PostgreSQL variant: {POSTGRES_ENV} is not set");
    false
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh empty database URL for a backend.
pub async fn fresh_database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("voronka.db").display()),
        Backend::Postgres => {
            let server = std::env::var(POSTGRES_ENV).expect("checked by postgres_available");
            let name =
                format!("vk_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), rand_suffix());
            sqlx::any::install_default_drivers();
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await.expect("connect to PostgreSQL");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create database");
            let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(server);
            format!("{base}/{name}")
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
}

/// A running server with its data directory and an admin client.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub admin: String,
    pub database: String,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    http: reqwest::Client,
    test_hooks: bool,
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Start {
    pub demo: bool,
    /// Leave VORONKA_ADMIN_TOKEN unset so the server generates one.
    pub generated_token: bool,
    /// Serve without the routes for tests (`/api/v1/testing/...`).
    pub without_test_hooks: bool,
}

impl Server {
    /// Starts a server on a fresh database.
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(backend, Start::default()).await
    }

    /// Starts a server on a fresh database with options.
    pub async fn start_with(backend: Backend, start: Start) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let database = fresh_database(backend, &dir).await;
        let admin = if start.generated_token { String::new() } else { format!("vk_test_admin_{}", rand_suffix()) };
        let mut server = Server {
            child: None,
            base: String::new(),
            admin,
            database,
            dir,
            _temp: Some(temp),
            http: reqwest::Client::new(),
            test_hooks: !start.without_test_hooks,
        };
        server.launch(start.demo);
        if start.generated_token {
            server.admin =
                std::fs::read_to_string(server.dir.join("admin-token")).expect("admin-token file").trim().to_string();
        }
        server
    }

    /// Starts the binary on this server's database and data directory.
    fn launch(&mut self, demo: bool) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voronka"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.dir)
            .args(["--database", &self.database])
            .env("RUST_LOG", "warn")
            .env("VORONKA_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"))
            .env_remove("VORONKA_ADMIN_TOKEN")
            .env_remove("VORONKA_TEST_HOOKS")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("server.log")).map(Stdio::from).unwrap_or(Stdio::null()));
        if !self.admin.is_empty() {
            command.env("VORONKA_ADMIN_TOKEN", &self.admin);
        }
        if demo {
            command.arg("--demo");
        }
        if self.test_hooks {
            command.env("VORONKA_TEST_HOOKS", "1");
        }
        let mut child = command.spawn().expect("spawn voronka");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("server did not start:\n{log}")
        });
        self.base = base;
        self.child = Some(child);
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "server exited with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            panic!("server did not stop on SIGTERM");
        }
    }

    /// Kills the server with SIGKILL (no shutdown at all) and waits for it to die.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Another host on this server's database (PostgreSQL), with its own data directory and
    /// the same administrator token.
    pub fn second_host(&self) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Server {
            child: None,
            base: String::new(),
            admin: self.admin.clone(),
            database: self.database.clone(),
            dir: temp.path().to_path_buf(),
            _temp: Some(temp),
            http: reqwest::Client::new(),
            test_hooks: self.test_hooks,
        };
        server.launch(false);
        server
    }

    /// Starts the binary again on the same database after a crash.
    pub fn start_again(&mut self) {
        self.launch(false);
    }

    /// Starts the binary again on the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.launch(false);
    }

    /// Waits until the server's automation has settled: nothing due or under way, every reader
    /// of the event stream caught up. After it, what a change set off has happened, so a test
    /// may assert that something did not.
    pub async fn settled(&self) {
        let reply = self.get("/api/v1/testing/settled?timeout_ms=30000").await;
        assert_eq!(reply.status, 200, "the automation did not settle: {}\n{}", reply.body, self.log());
    }

    /// A request as the administrator.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.admin.clone(), method, path, body).await
    }

    /// A request with a given token (empty: no Authorization header).
    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    /// A raw request builder as the administrator (headers, raw bodies).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request_as(&self.admin, method, path)
    }

    /// A raw request builder with a given token.
    pub fn request_as(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(token)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Creates a user with roles and returns (id, token).
    pub async fn user_with_roles(&self, email: &str, roles: &[&str]) -> (i64, String) {
        let user = self
            .post("/api/v1/users", serde_json::json!({"name": email, "email": email, "roles": roles}))
            .await
            .ok(201);
        let id = user["id"].as_i64().expect("user id");
        let token = self.post(&format!("/api/v1/users/{id}/tokens"), serde_json::json!({})).await.ok(201);
        (id, token["token"].as_str().expect("token").to_string())
    }

    /// Number of items of a type, as the administrator sees them.
    pub async fn count(&self, type_key: &str) -> usize {
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/items/{type_key}?limit=500&cursor={c}"),
                None => format!("/api/v1/items/{type_key}?limit=500"),
            };
            let page = self.get(&path).await.ok(200);
            n += page["items"].as_array().map(Vec::len).unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return n,
            }
        }
    }

    /// Number of events in the outbox.
    pub async fn event_count(&self) -> usize {
        let mut n = 0;
        let mut cursor = 0i64;
        loop {
            let page = self.get(&format!("/api/v1/events?limit=500&cursor={cursor}")).await.ok(200);
            n += page["items"].as_array().map(Vec::len).unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.parse().expect("numeric cursor"),
                None => return n,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test shows what the server said (its warnings and errors).
        if std::thread::panicking() {
            eprintln!("--- server log ({}) ---\n{}--- end of server log ---", self.dir.display(), self.log());
        }
    }
}

/// A response: status, headers and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts a problem document with this status and code; returns it.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        let content_type = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        self.body
    }

    /// The fields named by a validation problem.
    pub fn error_fields(body: &Value) -> Vec<String> {
        body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
}

impl Server {
    /// Status of a GET with one custom header (and no bearer token).
    pub async fn http_get_with_header(&self, path: &str, name: &str, value: &str) -> u16 {
        self.http
            .get(format!("{}{}", self.base, path))
            .header(name, value)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Starts the binary again on the same database with `--demo`.
    pub fn restart_with_demo(&mut self) {
        self.stop();
        self.launch(true);
    }
}

impl Server {
    /// Sends only the head of a POST announcing a `length`-byte JSON body and returns the status
    /// line's code and the response: the server must refuse an oversized body without reading it.
    pub async fn post_announcing(&self, path: &str, length: usize) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"title\":",
            self.admin
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut response = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
            .await
            .expect("answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&response[..n]).to_string();
        let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, text)
    }
}

impl Server {
    /// Uploads a plugin: `manifest` JSON and `module` bytes as multipart/form-data.
    pub async fn upload(&self, manifest: Value, module: Vec<u8>) -> Reply {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_string())
            .part("module", reqwest::multipart::Part::bytes(module).file_name("module"));
        let response = self.request(Method::POST, "/api/v1/plugins").multipart(form).send().await.expect("upload");
        Reply::from(response).await
    }

    /// What the server has logged since it (last) started: warnings and errors.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits until `check` returns `Some`, polling every 50 ms for at most `seconds`.
    pub async fn wait_for<T, F, Fut>(&self, seconds: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("timed out waiting for {what}\nserver log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An item as the administrator sees it.
    pub async fn item(&self, type_key: &str, id: &Value) -> Value {
        self.get(&format!("/api/v1/items/{type_key}/{id}")).await.ok(200)
    }

    /// Texts of an item's timeline, newest first.
    pub async fn timeline_texts(&self, type_key: &str, id: &Value) -> Vec<String> {
        let t = self.get(&format!("/api/v1/items/{type_key}/{id}/timeline?limit=500")).await.ok(200);
        t["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["text"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
}
