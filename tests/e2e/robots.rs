//! Plugins and robots: upload, bind, run on stage entry, hot swap, sandbox, durability.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Reply, Server, Start};

/// The sandbox-test component built from plugins/testing/hostile.
const HOSTILE: &[u8] = voronka_builtins::test::HOSTILE;

fn rhai_manifest(name: &str, version: &str, capabilities: &[&str]) -> Value {
    json!({"name": name, "version": version, "kind": "rhai", "world": "robot", "capabilities": capabilities})
}

async fn bool_field(s: &Server, key: &str) {
    s.post("/api/v1/types/deal/fields", json!({"key": key, "title": key, "kind": "bool"})).await.ok(201);
}

async fn new_deal(s: &Server, title: &str) -> Value {
    s.post("/api/v1/items/deal", json!({"title": title})).await.ok(201)["id"].clone()
}

async fn move_deal(s: &Server, id: &Value, stage: &str) {
    s.post(&format!("/api/v1/items/deal/{id}/move"), json!({"stage": stage})).await.ok(200);
}

const ROBOTS: &str = "/api/v1/types/deal/funnels/default/stages/in-progress/robots";

async fn rhai_robot_runs_when_an_item_enters_its_stage(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    let script = r#"
        fn run(ctx) {
            items::update_fields(ctx.item["type"], ctx.item.id, #{checked: true});
            timeline::add_entry(ctx.item["type"], ctx.item.id, `Checked ${ctx.item.title} on ${ctx.stage} (${ctx.config.note})`);
            "done"
        }
    "#;
    let uploaded =
        s.upload(rhai_manifest("checker", "1.0.0", &["items:write"]), script.as_bytes().to_vec()).await.ok(201);
    assert_eq!(uploaded["sha256"].as_str().unwrap().len(), 64);
    let robot = s
        .post(ROBOTS, json!({"plugin":"checker","version":"latest","config":{"note":"hi"},"condition":null,"delay_s":0,"mode":"after-previous","order":1}))
        .await
        .ok(201);
    assert_eq!(robot["plugin"], "checker");
    let listed = s.get(ROBOTS).await.ok(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let before = new_deal(&s, "Already there").await;
    let deal = new_deal(&s, "Kitchen").await;
    move_deal(&s, &deal, "in-progress").await;
    s.wait_for(20, "the robot's effect", || async {
        (s.item("deal", &deal).await["fields"]["checked"] == true).then_some(())
    })
    .await;
    let texts = s.timeline_texts("deal", &deal).await;
    assert!(texts.iter().any(|t| t == "Checked Kitchen on in-progress (hi)"), "{texts:?}");
    let timeline = s.get(&format!("/api/v1/items/deal/{deal}/timeline")).await.ok(200);
    let entry = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"].as_str().unwrap().starts_with("Checked"))
        .unwrap()
        .clone();
    assert_eq!(entry["actor"]["kind"], "robot");
    assert_eq!(entry["actor"]["name"], "checker@1.0.0");
    // A deal that did not enter the stage is untouched.
    assert!(s.item("deal", &before).await["fields"].get("checked").is_none());
    // The condition filters.
    let id = robot["id"].as_i64().unwrap();
    s.patch(&format!("{ROBOTS}/{id}"), json!({"condition": "item.title == \"VIP\""})).await.ok(200);
    let other = new_deal(&s, "Not VIP").await;
    let vip = new_deal(&s, "VIP").await;
    move_deal(&s, &other, "in-progress").await;
    move_deal(&s, &vip, "in-progress").await;
    s.wait_for(20, "the VIP robot run", || async {
        (s.item("deal", &vip).await["fields"]["checked"] == true).then_some(())
    })
    .await;
    assert!(s.item("deal", &other).await["fields"].get("checked").is_none());
}
both!(rhai_robot_runs_when_an_item_enters_its_stage);

async fn builtin_robots_set_fields_comment_and_hand_over(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    s.post("/api/v1/types/deal/fields", json!({"key":"size","title":"Size","kind":"string"})).await.ok(201);
    s.post("/api/v1/types", json!({"key":"production","title":"Production","parents":["deal"]})).await.ok(201);
    s.post("/api/v1/types/production/fields", json!({"key":"b_size","title":"Size","kind":"string"})).await.ok(201);
    let plugins = s.get("/api/v1/plugins").await.ok(200);
    let names: Vec<&str> = plugins["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["add-comment", "create-linked-item", "create-task", "move-to-stage", "set-field", "start-process"]
    );
    s.post(ROBOTS, json!({"plugin":"set-field","config":{"fields":{"checked":true}}})).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"add-comment","config":{"text":"Measuring {{item.title}} ({{item.fields.size}})"}}))
        .await
        .ok(201);
    s.post(ROBOTS, json!({"plugin":"create-linked-item","config":{"type":"production","title":"Production: {{item.title}}","copy":{"b_size":"size"}}})).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"move-to-stage","config":{"stage":"won"}})).await.ok(201);
    let deal =
        s.post("/api/v1/items/deal", json!({"title":"Kitchen","fields":{"size":"1200x600"}})).await.ok(201)["id"]
            .clone();
    move_deal(&s, &deal, "in-progress").await;
    s.wait_for(30, "the deal to be moved on by the last robot", || async {
        (s.item("deal", &deal).await["stage"] == "won").then_some(())
    })
    .await;
    let item = s.item("deal", &deal).await;
    assert_eq!(item["fields"]["checked"], true);
    assert!(s.timeline_texts("deal", &deal).await.iter().any(|t| t == "Measuring Kitchen (1200x600)"));
    let children = s.get(&format!("/api/v1/items/deal/{deal}/children")).await.ok(200);
    assert_eq!(children["items"][0]["title"], "Production: Kitchen");
    assert_eq!(children["items"][0]["fields"]["b_size"], "1200x600");
    // The history names the robot that moved the deal.
    let history = s.get(&format!("/api/v1/items/deal/{deal}/history")).await.ok(200);
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"]["kind"], "robot");
    assert_eq!(last["actor"]["name"], "move-to-stage@1.2.0");
}
both!(builtin_robots_set_fields_comment_and_hand_over);

async fn uploads_are_validated(backend: Backend) {
    let s = Server::start(backend).await;
    let ok = "fn run(ctx) { () }";
    let cases: Vec<(Value, Vec<u8>, &str)> = vec![
        (rhai_manifest("bad", "1.0.0", &[]), b"fn run(ctx) { (".to_vec(), "module"),
        (rhai_manifest("bad", "1.0.0", &[]), b"fn other(x) { 1 }".to_vec(), "module"),
        (rhai_manifest("bad", "one", &[]), ok.as_bytes().to_vec(), "manifest.version"),
        (rhai_manifest("Bad Name", "1.0.0", &[]), ok.as_bytes().to_vec(), "manifest.name"),
        (rhai_manifest("bad", "1.0.0", &["root"]), ok.as_bytes().to_vec(), "manifest.capabilities[0]"),
        (json!({"name":"bad","version":"1.0.0","kind":"wasm","world":"robot"}), b"not wasm".to_vec(), "module"),
        (json!({"name":"bad","version":"1.0.0","kind":"wasm","world":"trigger"}), HOSTILE.to_vec(), "module"),
        (
            json!({"name":"bad","version":"1.0.0","kind":"rhai","world":"robot","limits":{"timeout_ms":0}}),
            ok.as_bytes().to_vec(),
            "manifest.limits",
        ),
        (json!({"name":"bad","version":"1.0.0","kind":"lua","world":"robot"}), ok.as_bytes().to_vec(), "manifest"),
    ];
    for (manifest, module, field) in cases {
        let p = s.upload(manifest.clone(), module).await.problem(422, "validation-failed");
        assert!(Reply::error_fields(&p).iter().any(|f| f == field), "{manifest} -> {p}");
    }
    let missing = reqwest::multipart::Form::new().text("manifest", rhai_manifest("bad", "1.0.0", &[]).to_string());
    let r = s.request(Method::POST, "/api/v1/plugins").multipart(missing).send().await.unwrap();
    Reply::from(r).await.problem(422, "validation-failed");
    assert_eq!(s.get("/api/v1/plugins").await.ok(200)["items"].as_array().unwrap().len(), 6, "only the built-ins");
    s.get("/api/v1/plugins/bad").await.problem(404, "not-found");

    s.upload(rhai_manifest("good", "1.0.0", &[]), ok.as_bytes().to_vec()).await.ok(201);
    s.upload(rhai_manifest("good", "1.0.0", &[]), ok.as_bytes().to_vec()).await.problem(409, "conflict");
    s.upload(rhai_manifest("good", "1.1.0", &[]), ok.as_bytes().to_vec()).await.ok(201);
    let versions = s.get("/api/v1/plugins/good").await.ok(200);
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);
    // Bindings are validated too.
    for (body, field) in [
        (json!({"plugin":"nope"}), "plugin"),
        (json!({"plugin":"good","version":"^2"}), "version"),
        (json!({"plugin":"good","version":"newest"}), "version"),
        (json!({"plugin":"good","condition":"item.title =="}), "condition"),
        (json!({"plugin":"good","delay_s":-1}), "delay_s"),
    ] {
        let p = s.post(ROBOTS, body.clone()).await.problem(422, "validation-failed");
        assert_eq!(Reply::error_fields(&p), vec![field], "{body}");
    }
    s.post("/api/v1/types/deal/funnels/default/stages/nope/robots", json!({"plugin":"good"}))
        .await
        .problem(404, "not-found");
    let robot = s.post(ROBOTS, json!({"plugin":"good","version":"^1"})).await.ok(201);
    s.call(Method::DELETE, "/api/v1/plugins/good", None).await.problem(409, "conflict");
    s.call(Method::DELETE, &format!("{ROBOTS}/{}", robot["id"]), None).await.ok(204);
    s.call(Method::DELETE, "/api/v1/plugins/good", None).await.ok(204);
    s.get("/api/v1/plugins/good").await.problem(404, "not-found");
    // Only administrators upload.
    let (_, token) = s.user_with_roles("u@example.com", &[]).await;
    let form = reqwest::multipart::Form::new()
        .text("manifest", rhai_manifest("mine", "1.0.0", &[]).to_string())
        .part("module", reqwest::multipart::Part::bytes(ok.as_bytes().to_vec()));
    let r = s.request_as(&token, Method::POST, "/api/v1/plugins").multipart(form).send().await.unwrap();
    Reply::from(r).await.problem(403, "forbidden");
}
both!(uploads_are_validated);

async fn hostile_plugins_are_contained(backend: Backend) {
    let s = Server::start(backend).await;
    // Long enough for the loud robot to print its 6 MiB on a machine busy with other tests.
    let limits = json!({"timeout_ms": 2000, "memory_mb": 16});
    s.upload(json!({"name":"hostile","version":"1.0.0","kind":"wasm","world":"robot","capabilities":["items:read","items:write"],"limits":limits}), HOSTILE.to_vec()).await.ok(201);
    let rhai_limits = json!({"timeout_ms": 300, "memory_mb": 16});
    s.upload(
        json!({"name":"spin","version":"1.0.0","kind":"rhai","world":"robot","limits":rhai_limits}),
        b"fn run(ctx) { loop { } }".to_vec(),
    )
    .await
    .ok(201);
    s.upload(
        json!({"name":"deep","version":"1.0.0","kind":"rhai","world":"robot"}),
        b"fn down(n) { down(n + 1) } fn run(ctx) { down(0) }".to_vec(),
    )
    .await
    .ok(201);
    s.upload(
        json!({"name":"sneaky","version":"1.0.0","kind":"rhai","world":"robot"}),
        b"fn run(ctx) { kv::set(\"k\", \"v\") }".to_vec(),
    )
    .await
    .ok(201);
    s.upload(
        json!({"name":"hoarder","version":"1.0.0","kind":"rhai","world":"robot"}),
        b"fn run(ctx) { let s = \"x\"; loop { s += s; } }".to_vec(),
    )
    .await
    .ok(201);
    // The same loops with fuel that ends before their time does.
    let fueled = json!({"timeout_ms": 20000, "memory_mb": 16, "fuel": 1_000_000});
    s.upload(
        json!({"name":"fueled","version":"1.0.0","kind":"wasm","world":"robot","limits":fueled}),
        HOSTILE.to_vec(),
    )
    .await
    .ok(201);
    s.upload(
        json!({"name":"fueled-spin","version":"1.0.0","kind":"rhai","world":"robot","limits":fueled}),
        b"fn run(ctx) { loop { } }".to_vec(),
    )
    .await
    .ok(201);
    let modes = ["loop", "memory", "stack", "panic", "output", "denied"];
    let mut stages: Vec<Value> = vec![json!({"key": "start", "title": "Start"})];
    stages.extend(modes.iter().map(|m| json!({"key": m, "title": m})));
    for extra in ["rhai-loop", "rhai-deep", "rhai-denied", "fuel", "rhai-fuel", "rhai-memory"] {
        stages.push(json!({"key": extra, "title": extra}));
    }
    s.post("/api/v1/types/deal/funnels", json!({"key":"sandbox","title":"Sandbox","stages": stages})).await.ok(201);
    for mode in modes {
        let path = format!("/api/v1/types/deal/funnels/sandbox/stages/{mode}/robots");
        s.post(&path, json!({"plugin":"hostile","config":{"mode": mode}})).await.ok(201);
    }
    for (stage, plugin) in [
        ("rhai-loop", "spin"),
        ("rhai-deep", "deep"),
        ("rhai-denied", "sneaky"),
        ("fuel", "fueled"),
        ("rhai-fuel", "fueled-spin"),
        ("rhai-memory", "hoarder"),
    ] {
        let config = json!({"mode": "loop"});
        s.post(
            &format!("/api/v1/types/deal/funnels/sandbox/stages/{stage}/robots"),
            json!({"plugin": plugin, "config": config}),
        )
        .await
        .ok(201);
    }
    let expected = [
        ("loop", "timeout"),
        ("memory", "memory-limit"),
        ("stack", "trap"),
        ("panic", "trap"),
        ("output", "none"),
        ("denied", "denied"),
        ("rhai-loop", "timeout"),
        ("rhai-deep", "trap"),
        ("rhai-denied", "denied"),
        ("fuel", "out-of-fuel"),
        ("rhai-fuel", "out-of-fuel"),
        ("rhai-memory", "memory-limit"),
    ];
    let mut deals = Vec::new();
    for (stage, _) in expected {
        let deal =
            s.post("/api/v1/items/deal", json!({"title": stage, "funnel": "sandbox", "stage": "start"})).await.ok(201)
                ["id"]
                .clone();
        deals.push(deal);
    }
    for (deal, (stage, _)) in deals.iter().zip(expected) {
        s.post(&format!("/api/v1/items/deal/{deal}/move"), json!({"stage": stage})).await.ok(200);
    }
    // The server keeps answering while plugins misbehave.
    for _ in 0..20 {
        let started = std::time::Instant::now();
        s.get("/api/v1/me").await.ok(200);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "the API stalled");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for (deal, (stage, kind)) in deals.iter().zip(expected) {
        if kind == "none" {
            s.wait_for(60, "the loud robot", || async {
                s.timeline_texts("deal", deal).await.into_iter().find(|t| t == "printed 6 MiB")
            })
            .await;
            assert!(!s.timeline_texts("deal", deal).await.iter().any(|t| t.contains("failed")));
            continue;
        }
        let text = s
            .wait_for(60, &format!("the failure of {stage}"), || async {
                s.timeline_texts("deal", deal)
                    .await
                    .into_iter()
                    .find(|t| t.starts_with("Robot ") && t.contains("failed"))
            })
            .await;
        assert!(text.contains(&format!("failed ({kind})")), "{stage}: {text}");
        if kind == "denied" {
            assert!(text.contains("kv"), "the denial names the capability: {text}");
        }
    }
    // Nothing half-written: the failed robots changed no item.
    for deal in &deals {
        assert_eq!(s.item("deal", deal).await["fields"], json!({}));
    }
}
both!(hostile_plugins_are_contained);

async fn hot_swap_takes_effect_at_the_next_run(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"v","title":"v","kind":"number"})).await.ok(201);
    let script =
        |v: u32| format!("fn run(ctx) {{ items::update_fields(ctx.item[\"type\"], ctx.item.id, #{{v: {v}}}); }}");
    s.upload(rhai_manifest("versioned", "1.0.0", &["items:write"]), script(1).into_bytes()).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"versioned"})).await.ok(201);
    let first = new_deal(&s, "one").await;
    move_deal(&s, &first, "in-progress").await;
    s.wait_for(20, "v1", || async { (s.item("deal", &first).await["fields"]["v"] == 1).then_some(()) }).await;
    s.upload(rhai_manifest("versioned", "2.0.0", &["items:write"]), script(2).into_bytes()).await.ok(201);
    let mut later = Vec::new();
    for i in 0..10 {
        let deal = new_deal(&s, &format!("d{i}")).await;
        move_deal(&s, &deal, "in-progress").await;
        later.push(deal);
    }
    for deal in &later {
        s.wait_for(20, "v2", || async { (s.item("deal", deal).await["fields"]["v"] == 2).then_some(()) }).await;
    }
    for deal in later.iter().chain([&first]) {
        assert!(!s.timeline_texts("deal", deal).await.iter().any(|t| t.contains("failed")));
    }
}
both!(hot_swap_takes_effect_at_the_next_run);

async fn delayed_robots_are_cancelled_when_the_item_leaves(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    s.post(ROBOTS, json!({"plugin":"set-field","config":{"fields":{"checked":true}},"delay_s":2})).await.ok(201);
    let stays = new_deal(&s, "stays").await;
    let leaves = new_deal(&s, "leaves").await;
    move_deal(&s, &stays, "in-progress").await;
    move_deal(&s, &leaves, "in-progress").await;
    move_deal(&s, &leaves, "won").await;
    s.wait_for(20, "the delayed robot", || async {
        (s.item("deal", &stays).await["fields"]["checked"] == true).then_some(())
    })
    .await;
    s.settled().await;
    assert!(s.item("deal", &leaves).await["fields"].get("checked").is_none());
}
both!(delayed_robots_are_cancelled_when_the_item_leaves);

async fn queued_robots_survive_a_crash_and_run_once(backend: Backend) {
    let mut s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"runs","title":"runs","kind":"number"})).await.ok(201);
    let script = "fn run(ctx) { let n = ctx.item.fields.runs ?? 0; items::update_fields(ctx.item[\"type\"], ctx.item.id, #{runs: n + 1}); }";
    s.upload(rhai_manifest("counter", "1.0.0", &["items:write"]), script.as_bytes().to_vec()).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"counter","delay_s":1})).await.ok(201);
    let mut deals = Vec::new();
    for i in 0..30 {
        let deal = new_deal(&s, &format!("d{i}")).await;
        move_deal(&s, &deal, "in-progress").await;
        deals.push(deal);
    }
    s.crash();
    s.start_again();
    for deal in &deals {
        s.wait_for(30, "every queued robot after the crash", || async {
            (s.item("deal", deal).await["fields"]["runs"] == 1).then_some(())
        })
        .await;
    }
    s.settled().await;
    for deal in &deals {
        assert_eq!(s.item("deal", deal).await["fields"]["runs"], 1, "ran exactly once");
    }
}
both!(queued_robots_survive_a_crash_and_run_once);

async fn robot_chains_are_bounded(backend: Backend) {
    let s = Server::start(backend).await;
    s.post(
        "/api/v1/types/deal/funnels/default/stages/in-progress/robots",
        json!({"plugin":"move-to-stage","config":{"stage":"new"}}),
    )
    .await
    .ok(201);
    s.post(
        "/api/v1/types/deal/funnels/default/stages/new/robots",
        json!({"plugin":"move-to-stage","config":{"stage":"in-progress"}}),
    )
    .await
    .ok(201);
    let deal = s.post("/api/v1/items/deal", json!({"title":"ping-pong","stage":"won"})).await.ok(201)["id"].clone();
    move_deal(&s, &deal, "in-progress").await;
    let text = s
        .wait_for(30, "the chain to stop", || async {
            s.timeline_texts("deal", &deal).await.into_iter().find(|t| t.starts_with("Automation chain stopped"))
        })
        .await;
    assert!(text.contains("10 steps"), "{text}");
    let history = s.get(&format!("/api/v1/items/deal/{deal}/history?limit=500")).await.ok(200);
    assert_eq!(history["items"].as_array().unwrap().len(), 12, "the creation, the person's move and ten robot moves");
}
both!(robot_chains_are_bounded);

/// The Rust example robot, built from examples/rust-robot.
const SET_DEADLINE: &[u8] = voronka_builtins::test::SET_DEADLINE;
/// The Rhai example robot.
const VIP_FLAG: &str = include_str!("../../examples/rhai/vip-flag.rhai");

async fn example_robots_work(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"install_date","title":"Install","kind":"date"})).await.ok(201);
    bool_field(&s, "vip").await;
    s.upload(
        json!({"name":"set-deadline","version":"0.1.0","kind":"wasm","world":"robot","capabilities":["items:write"]}),
        SET_DEADLINE.to_vec(),
    )
    .await
    .ok(201);
    s.upload(json!({"name":"vip-flag","version":"0.1.0","kind":"rhai","world":"robot","capabilities":["items:read","items:write"]}), VIP_FLAG.as_bytes().to_vec()).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"set-deadline","config":{"field":"install_date","days":3},"mode":"parallel"}))
        .await
        .ok(201);
    s.post(ROBOTS, json!({"plugin":"vip-flag","config":{"threshold":"100000"},"mode":"parallel"})).await.ok(201);
    let deal = s
        .post("/api/v1/items/deal", json!({"title":"Big kitchen","amount":{"value":"150000.00","currency":"RUB"}}))
        .await
        .ok(201)["id"]
        .clone();
    move_deal(&s, &deal, "in-progress").await;
    let expected = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d").to_string();
    s.wait_for(30, "both example robots", || async {
        let item = s.item("deal", &deal).await;
        (item["fields"]["vip"] == true && item["fields"]["install_date"].is_string()).then_some(())
    })
    .await;
    let item = s.item("deal", &deal).await;
    let date = item["fields"]["install_date"].as_str().unwrap().to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(4)).format("%Y-%m-%d").to_string();
    assert!(date == expected || date == tomorrow, "{date} vs {expected}");
    let texts = s.timeline_texts("deal", &deal).await;
    assert!(texts.iter().any(|t| t == &format!("Deadline set to {date}")), "{texts:?}");
    assert!(texts.iter().any(|t| t == "VIP: 150000.00 RUB"), "{texts:?}");
}
both!(example_robots_work);

async fn cli_pushes_and_lists_plugins(backend: Backend) {
    let s = Server::start(backend).await;
    let script = s.dir.join("hello.rhai");
    std::fs::write(&script, "fn run(ctx) { \"hello\" }").unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_voronka"))
            .args(args)
            .env("VORONKA_URL", &s.base)
            .env("VORONKA_TOKEN", &s.admin)
            .output()
            .unwrap()
    };
    let script_path = script.to_str().unwrap();
    let pushed =
        cli(&["plugin", "push", script_path, "--name", "hello", "--version", "1.0.0", "--capability", "items:read"]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("\"sha256\""));
    let again = cli(&["plugin", "push", script_path, "--name", "hello", "--version", "1.0.0"]);
    assert!(!again.status.success(), "a repeated version is refused");
    assert!(String::from_utf8_lossy(&again.stdout).contains("conflict"));
    let listed = cli(&["plugin", "list"]);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.lines().any(|l| l.starts_with("hello ") && l.contains("1.0.0") && l.contains("rhai")), "{text}");
    let versions = s.get("/api/v1/plugins/hello").await.ok(200);
    assert_eq!(versions["items"][0]["capabilities"], json!(["items:read"]));
}
both!(cli_pushes_and_lists_plugins);

/// The JavaScript example robot, built by `npm run build` in examples/js-robot (scripts/test
/// does it and sets VORONKA_REQUIRE_EXAMPLES=1, so a missing build fails instead of skipping).
fn js_robot() -> Option<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/js-robot/dist/robot.wasm");
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(_) if std::env::var("VORONKA_REQUIRE_EXAMPLES").as_deref() == Ok("1") => {
            panic!("{path} is missing: build it with `npm ci && npm run build` in examples/js-robot")
        }
        Err(_) => {
            eprintln!("skipping the JavaScript robot: {path} is not built");
            None
        }
    }
}

async fn javascript_robot_runs(backend: Backend) {
    let Some(module) = js_robot() else { return };
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"greeting","title":"Greeting","kind":"text"})).await.ok(201);
    let manifest = json!({"name":"js-greeter","version":"1.0.0","kind":"wasm","world":"robot","capabilities":["items:write"],"limits":{"timeout_ms":5000}});
    s.upload(manifest, module).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"js-greeter","config":{"field":"greeting"}})).await.ok(201);
    let deal = new_deal(&s, "Kitchen").await;
    move_deal(&s, &deal, "in-progress").await;
    s.wait_for(60, "the JavaScript robot", || async {
        (s.item("deal", &deal).await["fields"]["greeting"] == "Hello from JavaScript, Kitchen!").then_some(())
    })
    .await;
    assert!(s.timeline_texts("deal", &deal).await.iter().any(|t| t == "JS robot greeted Kitchen"));
}
both!(javascript_robot_runs);

async fn robots_do_not_run_for_items_already_in_the_stage(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    let earlier = new_deal(&s, "earlier").await;
    move_deal(&s, &earlier, "in-progress").await;
    s.post(ROBOTS, json!({"plugin":"set-field","config":{"fields":{"checked":true}}})).await.ok(201);
    let later = new_deal(&s, "later").await;
    move_deal(&s, &later, "in-progress").await;
    s.wait_for(20, "the robot on the later deal", || async {
        (s.item("deal", &later).await["fields"]["checked"] == true).then_some(())
    })
    .await;
    s.settled().await;
    assert!(
        s.item("deal", &earlier).await["fields"].get("checked").is_none(),
        "the robot ran for an item already there"
    );
}
both!(robots_do_not_run_for_items_already_in_the_stage);

async fn after_previous_robots_wait_and_refused_moves_queue_nothing(backend: Backend) {
    let s = Server::start(backend).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"trail","title":"Trail","kind":"string"})).await.ok(201);
    let script = r#"fn run(ctx) { let t = ctx.item.fields.trail ?? ""; items::update_fields(ctx.item["type"], ctx.item.id, #{trail: t + ctx.config.tag}); }"#;
    s.upload(rhai_manifest("appender", "1.0.0", &["items:write"]), script.as_bytes().to_vec()).await.ok(201);
    // `a` is delayed; `b` and `c` wait for the robot before them, `p` runs at once beside them.
    s.post(ROBOTS, json!({"plugin":"appender","config":{"tag":"a"},"delay_s":1,"order":1})).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"appender","config":{"tag":"b"},"order":2})).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"appender","config":{"tag":"c"},"order":3})).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"appender","config":{"tag":"p"},"mode":"parallel","order":4})).await.ok(201);
    let moved = new_deal(&s, "moved").await;
    move_deal(&s, &moved, "in-progress").await;
    // Created straight into the stage: it enters it too.
    let created =
        s.post("/api/v1/items/deal", json!({"title":"created","stage":"in-progress"})).await.ok(201)["id"].clone();
    // Refused moves queue nothing: a stale version, an unknown stage.
    let refused = new_deal(&s, "refused").await;
    let path = format!("/api/v1/items/deal/{refused}/move");
    let stale = s.request(Method::POST, &path).header("If-Match", "\"7\"").json(&json!({"stage":"in-progress"}));
    Reply::from(stale.send().await.unwrap()).await.problem(412, "precondition-failed");
    s.post(&path, json!({"stage":"nowhere"})).await.problem(422, "validation-failed");
    for deal in [&moved, &created] {
        s.wait_for(20, "every robot of the stage", || async {
            let trail = s.item("deal", deal).await["fields"]["trail"].as_str().unwrap_or_default().to_string();
            (trail.len() == 4).then_some(trail)
        })
        .await;
        let trail = s.item("deal", deal).await["fields"]["trail"].as_str().unwrap().to_string();
        assert_eq!(&trail[1..], "abc", "after-previous robots ran in order after the delayed one: {trail}");
        assert_eq!(&trail[..1], "p", "the parallel robot did not wait: {trail}");
    }
    let refused = s.item("deal", &refused).await;
    assert_eq!(refused["stage"], "new");
    assert!(refused["fields"].get("trail").is_none(), "a refused move ran robots");
}
both!(after_previous_robots_wait_and_refused_moves_queue_nothing);

/// Parallel robots of one stage are stored together when they can be; one whose writes are
/// invalid fails alone, with none of its writes stored, and every other robot's effect is
/// stored exactly once.
async fn robots_of_one_stage_fail_alone(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    bool_field(&s, "half").await;
    s.post("/api/v1/types/deal/fields", json!({"key":"count","title":"Count","kind":"number"})).await.ok(201);
    let script = r#"
        fn run(ctx) {
            items::update_fields(ctx.item["type"], ctx.item.id, #{half: true});
            items::update_fields(ctx.item["type"], ctx.item.id, #{count: "many"});
        }
    "#;
    s.upload(rhai_manifest("half-writer", "1.0.0", &["items:write"]), script.as_bytes().to_vec()).await.ok(201);
    // Reads the stored item, so it must see what the robots before it wrote.
    let counter = r#"
        fn run(ctx) {
            let item = items::get(ctx.item["type"], ctx.item.id);
            let n = item.fields.n;
            if n == () { n = 0; }
            items::update_fields(ctx.item["type"], ctx.item.id, #{n: n + 1});
        }
    "#;
    let counting = &["items:read", "items:write"];
    s.upload(rhai_manifest("counter", "1.0.0", counting), counter.as_bytes().to_vec()).await.ok(201);
    s.post("/api/v1/types/deal/fields", json!({"key":"n","title":"N","kind":"number"})).await.ok(201);
    let parallel = |plugin: &str, config: Value, order: i64| json!({"plugin": plugin, "config": config, "mode": "parallel", "order": order});
    s.post(ROBOTS, parallel("set-field", json!({"fields":{"checked":true}}), 1)).await.ok(201);
    s.post(ROBOTS, parallel("counter", json!({}), 2)).await.ok(201);
    s.post(ROBOTS, parallel("counter", json!({}), 3)).await.ok(201);
    s.post(ROBOTS, parallel("add-comment", json!({"text":"Noted {{item.title}}"}), 4)).await.ok(201);
    s.post(ROBOTS, parallel("half-writer", json!({}), 5)).await.ok(201);
    s.post(ROBOTS, parallel("set-field", json!({"fields":{"count":"seven"}}), 6)).await.ok(201);
    s.post(ROBOTS, parallel("add-comment", json!({"text":"Checked: {{item.fields.checked}}"}), 7)).await.ok(201);
    let deals = [new_deal(&s, "Kitchen").await, new_deal(&s, "Wardrobe").await];
    for deal in &deals {
        move_deal(&s, deal, "in-progress").await;
    }
    for deal in &deals {
        let texts = s
            .wait_for(30, "every robot of the stage to end", || async {
                let texts = s.timeline_texts("deal", deal).await;
                let ended = texts
                    .iter()
                    .filter(|t| t.contains("failed (error)") || t.starts_with("Noted") || t.starts_with("Checked:"))
                    .count();
                let counted = s.item("deal", deal).await["fields"]["n"] == 2;
                (ended >= 4 && counted).then_some(texts)
            })
            .await;
        let item = s.item("deal", deal).await;
        assert_eq!(item["fields"]["checked"], true, "{texts:?}");
        // The invalid robots wrote nothing, not even their valid first write.
        assert!(item["fields"].get("half").is_none(), "{}", item["fields"]);
        assert!(item["fields"].get("count").is_none(), "{}", item["fields"]);
        let failed: Vec<&String> = texts.iter().filter(|t| t.contains("failed (error)")).collect();
        assert_eq!(failed.len(), 2, "{texts:?}");
        assert!(failed.iter().any(|t| t.starts_with("Robot half-writer@1.0.0 failed") && t.contains("invalid-write")));
        assert!(failed.iter().any(|t| t.starts_with("Robot set-field@1.2.0 failed") && t.contains("count")));
        // Each effect once, and the later comment saw the earlier robot's write.
        let title = item["title"].as_str().unwrap();
        assert_eq!(texts.iter().filter(|t| *t == &format!("Noted {title}")).count(), 1, "{texts:?}");
        assert_eq!(texts.iter().filter(|t| *t == "Checked: true").count(), 1, "{texts:?}");
        assert_eq!(texts.iter().filter(|t| t.starts_with("Changed fields.checked")).count(), 1, "{texts:?}");
    }
}
both!(robots_of_one_stage_fail_alone);

/// The test hook that waits for the automation to settle says what still runs, is for
/// administrators only, and is not served without test hooks.
async fn the_settled_hook_waits_for_running_robots(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    let script = r#"fn run(ctx) {
        let start = clock::now();
        while clock::now() - start < 3000000 { }
        items::update_fields(ctx.item["type"], ctx.item.id, #{checked: true});
    }"#;
    let manifest = json!({"name": "slow", "version": "1.0.0", "kind": "rhai", "world": "robot",
        "capabilities": ["items:write"], "limits": {"timeout_ms": 8000}});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    s.post(ROBOTS, json!({"plugin": "slow"})).await.ok(201);
    let deal = new_deal(&s, "Slow").await;
    move_deal(&s, &deal, "in-progress").await;
    // The trigger dispatcher, with no trigger to apply, passes over the move's events within a
    // quarter of a second; the robot computes for three.
    let busy = s.get("/api/v1/testing/settled?timeout_ms=1000").await.problem(503, "not-settled");
    assert!(busy["detail"].as_str().is_some_and(|d| d.contains("robot runs")), "{busy}");
    let (_, manager) = s.user_with_roles("manager@example.com", &[]).await;
    s.call_as(&manager, Method::GET, "/api/v1/testing/settled", None).await.problem(403, "forbidden");
    s.get("/api/v1/testing/settled?timeout_ms=soon").await.problem(400, "bad-query");
    s.settled().await;
    assert_eq!(s.item("deal", &deal).await["fields"]["checked"], true);

    let plain = Server::start_with(backend, Start { without_test_hooks: true, ..Start::default() }).await;
    plain.get("/api/v1/testing/settled").await.problem(404, "not-found");
}
both!(the_settled_hook_waits_for_running_robots);

/// A Rhai robot computing for its whole time budget holds up only its own item: the robots of
/// other items claimed with it run meanwhile. (The runs are delayed, by more than the moves
/// and the stop take, and the server stopped until they are due, so one worker claims them
/// together after the restart.)
async fn a_computing_script_holds_up_only_its_item(backend: Backend) {
    let mut s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    let manifest = json!({"name":"spin","version":"1.0.0","kind":"rhai","world":"robot","limits":{"timeout_ms":8000}});
    s.upload(manifest, b"fn run(ctx) { loop { } }".to_vec()).await.ok(201);
    let robot = |plugin: &str, config: Value, condition: &str| json!({"plugin": plugin, "config": config, "condition": condition, "delay_s": 4, "mode": "parallel"});
    s.post(ROBOTS, robot("spin", json!({}), r#"item.title == "Spinner""#)).await.ok(201);
    s.post(ROBOTS, robot("set-field", json!({"fields":{"checked":true}}), r#"item.title != "Spinner""#)).await.ok(201);
    let spinner = new_deal(&s, "Spinner").await;
    let quick = new_deal(&s, "Quick").await;
    move_deal(&s, &spinner, "in-progress").await;
    move_deal(&s, &quick, "in-progress").await;
    s.stop();
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    s.start_again();
    s.wait_for(6, "the quick item's robot while the script computes", || async {
        (s.item("deal", &quick).await["fields"]["checked"] == true).then_some(())
    })
    .await;
    let texts = s.timeline_texts("deal", &spinner).await;
    assert!(!texts.iter().any(|t| t.contains("failed")), "the script was still running: {texts:?}");
    s.wait_for(20, "the script's timeout on its timeline", || async {
        s.timeline_texts("deal", &spinner).await.iter().any(|t| t.contains("spin@1.0.0 failed (timeout)")).then_some(())
    })
    .await;
}
both!(a_computing_script_holds_up_only_its_item);

/// Robot runs cut short by a crash while they ran are run again as soon as the host is back,
/// once each, with nothing of the interrupted attempt stored. (SQLite: the database's only host
/// resumes them at start. On PostgreSQL another host may hold them, so they wait for their
/// lease; `queued_robots_survive_a_crash_and_run_once` covers queued runs on both.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_robots_cut_short_by_a_crash_run_again_at_once() {
    let mut s = Server::start(Backend::Sqlite).await;
    s.post("/api/v1/types/deal/fields", json!({"key":"runs","title":"runs","kind":"number"})).await.ok(201);
    // Says it started, computes for 1.5 s, then counts its run.
    let script = r#"
        fn run(ctx) {
            log::write("warn", `slow run of ${ctx.item.id} started`);
            let started = clock::now();
            while clock::now() - started < 1_500_000 { }
            let n = ctx.item.fields.runs ?? 0;
            items::update_fields(ctx.item["type"], ctx.item.id, #{runs: n + 1});
        }
    "#;
    let manifest = json!({"name":"slow","version":"1.0.0","kind":"rhai","world":"robot",
        "capabilities":["items:write"],"limits":{"timeout_ms":10000}});
    s.upload(manifest, script.as_bytes().to_vec()).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"slow"})).await.ok(201);
    let mut deals = Vec::new();
    for i in 0..4 {
        let deal = new_deal(&s, &format!("d{i}")).await;
        move_deal(&s, &deal, "in-progress").await;
        deals.push(deal);
    }
    // A run is computing: a crash cuts it short.
    s.wait_for(20, "a run to start", || async { s.log().contains("slow run of").then_some(()) }).await;
    s.crash();
    s.start_again();
    for deal in &deals {
        s.wait_for(20, "every interrupted robot run", || async {
            (s.item("deal", deal).await["fields"]["runs"] == 1).then_some(())
        })
        .await;
    }
    s.settled().await;
    for deal in &deals {
        assert_eq!(s.item("deal", deal).await["fields"]["runs"], 1, "ran once");
    }
}

/// A condition that fails as it runs fails its robot, named with the version that would have
/// run, and the robot writes nothing.
async fn a_failing_condition_is_reported_with_the_plugin_version(backend: Backend) {
    let s = Server::start(backend).await;
    bool_field(&s, "checked").await;
    let binding =
        json!({"plugin":"set-field","config":{"fields":{"checked":true}},"condition":"item.fields.nope.len() > 1"});
    s.post(ROBOTS, binding).await.ok(201);
    let deal = new_deal(&s, "Kitchen").await;
    move_deal(&s, &deal, "in-progress").await;
    let text = s
        .wait_for(30, "the condition's failure", || async {
            s.timeline_texts("deal", &deal).await.into_iter().find(|t| t.contains("failed"))
        })
        .await;
    assert!(text.starts_with("Robot set-field@1.2.0 failed (error)"), "{text}");
    assert!(text.contains("condition"), "{text}");
    assert!(s.item("deal", &deal).await["fields"].get("checked").is_none());
}
both!(a_failing_condition_is_reported_with_the_plugin_version);

/// The built-in `add-comment` component, uploaded again under another name to be swapped.
const ADD_COMMENT: &[u8] = voronka_builtins::ADD_COMMENT;

/// A Wasm plugin swapped while items keep moving into its stage: no run fails, every item gets
/// its comment once, from the version that was the latest when its run started: the first
/// (run before the swap) from 1.0.0, every item moved after the swap from 2.0.0.
async fn wasm_hot_swap_while_items_move(backend: Backend) {
    let s = Server::start(backend).await;
    let manifest = |version: &str| json!({"name":"comment","version":version,"kind":"wasm","world":"robot","capabilities":["items:write"]});
    s.upload(manifest("1.0.0"), ADD_COMMENT.to_vec()).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"comment","config":{"text":"Noted {{item.title}}"}})).await.ok(201);
    let comments = |deal: Value| {
        let s = &s;
        async move {
            let t = s.get(&format!("/api/v1/items/deal/{deal}/timeline?limit=500")).await.ok(200);
            let entries = t["items"].as_array().cloned().unwrap_or_default();
            entries
                .into_iter()
                .filter(|e| e["text"].as_str().is_some_and(|t| t.starts_with("Noted") || t.contains("failed")))
                .map(|e| (e["text"].as_str().unwrap_or_default().to_string(), e["actor"]["name"].clone()))
                .collect::<Vec<_>>()
        }
    };
    let first = new_deal(&s, "first").await;
    move_deal(&s, &first, "in-progress").await;
    s.wait_for(20, "the first comment", || async { (!comments(first.clone()).await.is_empty()).then_some(()) }).await;
    // Items keep moving while version 2.0.0 is uploaded.
    let (before, after) = tokio::join!(
        async {
            let mut moved = Vec::new();
            for i in 0..15 {
                let deal = new_deal(&s, &format!("b{i}")).await;
                move_deal(&s, &deal, "in-progress").await;
                moved.push(deal);
            }
            moved
        },
        async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            s.upload(manifest("2.0.0"), ADD_COMMENT.to_vec()).await.ok(201);
            let mut moved = Vec::new();
            for i in 0..5 {
                let deal = new_deal(&s, &format!("a{i}")).await;
                move_deal(&s, &deal, "in-progress").await;
                moved.push(deal);
            }
            moved
        }
    );
    let all: Vec<Value> =
        [first.clone()].into_iter().chain(before.iter().cloned()).chain(after.iter().cloned()).collect();
    for deal in &all {
        let found = s
            .wait_for(30, "every item's comment", || async {
                let found = comments(deal.clone()).await;
                (!found.is_empty()).then_some(found)
            })
            .await;
        assert_eq!(found.len(), 1, "{deal}: {found:?}");
        let (text, actor) = &found[0];
        assert!(text.starts_with("Noted "), "{deal}: {text}");
        let expected: &[&str] = if deal == &first {
            &["comment@1.0.0"]
        } else if after.contains(deal) {
            &["comment@2.0.0"]
        } else {
            &["comment@1.0.0", "comment@2.0.0"]
        };
        assert!(expected.iter().any(|e| actor == e), "{deal}: {actor}");
    }
    // Once: no second comment comes later.
    s.settled().await;
    for deal in &all {
        assert_eq!(comments(deal.clone()).await.len(), 1, "{deal}");
    }
}
both!(wasm_hot_swap_while_items_move);

/// A run in flight when a new version is uploaded ends on the version it started with; the
/// next run takes the new one.
async fn a_run_in_flight_ends_on_its_version(backend: Backend) {
    let s = Server::start(backend).await;
    let script = |text: &str, busy_ms: u32| {
        format!(
            r#"fn run(ctx) {{
                log::write("warn", `{text}: run of ${{ctx.item.id}} started`);
                let started = clock::now();
                while clock::now() - started < {busy_ms} * 1000 {{ }}
                timeline::add_entry("deal", ctx.item.id, "{text}");
            }}"#
        )
        .into_bytes()
    };
    let manifest = |version: &str| {
        let mut manifest = rhai_manifest("slow", version, &["items:write"]);
        manifest["limits"] = json!({"timeout_ms": 10000});
        manifest
    };
    s.upload(manifest("1.0.0"), script("from 1.0.0", 2500)).await.ok(201);
    s.post(ROBOTS, json!({"plugin":"slow"})).await.ok(201);
    let early = new_deal(&s, "early").await;
    move_deal(&s, &early, "in-progress").await;
    // Its run has started (it computes for 2.5 s) when the new version comes.
    s.wait_for(20, "the early run to start", || async {
        s.log().contains(&format!("from 1.0.0: run of {early} started")).then_some(())
    })
    .await;
    s.upload(manifest("2.0.0"), script("from 2.0.0", 0)).await.ok(201);
    let late = new_deal(&s, "late").await;
    move_deal(&s, &late, "in-progress").await;
    for (deal, text) in [(&early, "from 1.0.0"), (&late, "from 2.0.0")] {
        s.wait_for(20, text, || async {
            s.timeline_texts("deal", deal).await.into_iter().any(|t| t.starts_with("from")).then_some(())
        })
        .await;
        let texts = s.timeline_texts("deal", deal).await;
        assert_eq!(texts.iter().filter(|t| t.starts_with("from")).collect::<Vec<_>>(), vec![text], "{texts:?}");
    }
}
both!(a_run_in_flight_ends_on_its_version);
