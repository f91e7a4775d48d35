//! The README's shell examples, run one after another by bash against a demo server, so they
//! cannot drift from the API: every block must exit 0 and every HTTP call in it must succeed.
//!
//! What the test supplies, as a reader would: `data/` (the server's data directory, with its
//! `admin-token`), the server's address in place of `http://127.0.0.1:8080`, and `drawing.pdf`
//! (the reader's own file to upload). `curl` fails on an HTTP error status (`--fail-with-body`),
//! and between blocks the test waits for the server's automation to settle, as a reader reading
//! the text between them would. A block preceded by `<!-- readme-test: skip (why) -->` is not
//! run; the test names the few that are.

use std::process::Command;

use serde_json::Value;

use crate::both;
use crate::harness::{Backend, Server, Start};

const README: &str = include_str!("../../README.md");

/// The marker that keeps the next shell block from being run, followed by the reason.
const SKIP: &str = "<!-- readme-test: skip (";

/// The blocks that are not run: they start a server or run the test suite.
const SKIPPED: [&str; 2] = ["cargo run --release -p voronka -- serve --demo", "scripts/test"];

/// A ```sh block of the README.
#[derive(Debug)]
struct Block {
    /// Line of its opening fence (1-based).
    line: usize,
    /// Its text.
    text: String,
    /// Why it is not run, when it is marked so.
    skipped: Option<String>,
}

/// The README's ```sh blocks, in order.
fn shell_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
        let skipped = before.trim().strip_prefix(SKIP).map(|reason| reason.trim_end_matches(") -->").to_string());
        let end = lines[i + 1..].iter().position(|l| l.trim_end() == "```").map(|n| i + 1 + n).unwrap_or(lines.len());
        blocks.push(Block { line: i + 1, text: lines[i + 1..end].join("\n"), skipped });
        i = end + 1;
    }
    blocks
}

#[test]
fn only_the_set_up_blocks_are_skipped() {
    let blocks = shell_blocks(README);
    assert!(blocks.len() >= 8, "the README's shell blocks are found: {blocks:?}");
    let skipped: Vec<&str> = blocks.iter().filter(|b| b.skipped.is_some()).map(|b| b.text.trim()).collect();
    assert_eq!(skipped, SKIPPED);
    assert!(blocks.iter().filter_map(|b| b.skipped.as_deref()).all(|why| why.len() > 10), "each skip says why");
    // Every fence is closed, and no shell example hides under another name.
    assert_eq!(README.lines().filter(|l| l.starts_with("```")).count() % 2, 0);
    let hidden = ["```bash", "```shell", "```console", "```zsh"];
    assert!(!README.lines().any(|l| hidden.contains(&l.trim_end())), "write shell examples as ```sh");
}

async fn the_readme_examples_run(backend: Backend) {
    let s = Server::start_with(backend, Start { demo: true, generated_token: true, ..Start::default() }).await;
    let work = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&s.dir, work.path().join("data")).expect("data link");
    std::fs::write(work.path().join("drawing.pdf"), b"%PDF-1.4\n% a drawing\n%%EOF\n").expect("drawing");
    let settle = format!(
        "command curl -sS --fail-with-body -o /dev/null -H 'Authorization: Bearer {}' '{}/api/v1/testing/settled?timeout_ms=30000'\n",
        s.admin, s.base
    );
    let mut script = String::from("set -euo pipefail\ncurl() { command curl --fail-with-body --show-error \"$@\"; }\n");
    let mut run = 0;
    for block in shell_blocks(README).iter().filter(|b| b.skipped.is_none()) {
        script.push_str(&format!("echo '>>> README.md line {}' >&2\n", block.line));
        script.push_str(&block.text.replace("http://127.0.0.1:8080", &s.base));
        script.push('\n');
        script.push_str(&settle);
        run += 1;
    }
    assert!(run >= 6, "the README's examples are found");
    let output = Command::new("bash").arg("-c").arg(&script).current_dir(work.path()).output().expect("run bash");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "a README example failed ({}); the last `>>>` names its block\nstderr:\n{stderr}\nstdout:\n{stdout}\nserver log:\n{}",
        output.status,
        s.log()
    );
    // The examples did what they say.
    let deals = s.get("/api/v1/items/deal?q=Orlova").await.ok(200);
    let deal = &deals["items"][0];
    assert_eq!((&deal["funnel"], &deal["stage"]), (&Value::from("claims"), &Value::from("new")), "{deals}");
    let history = s.get(&format!("/api/v1/items/deal/{}/history", deal["id"])).await.ok(200);
    assert_eq!(history["items"].as_array().map(Vec::len), Some(3), "created, measuring, claims: {history}");
    assert_eq!(s.get("/api/v1/files/1").await.ok(200)["name"], "drawing.pdf");
    assert_eq!(
        std::fs::read(work.path().join("drawing.pdf")).ok().as_deref(),
        Some(&b"%PDF-1.4\n% a drawing\n%%EOF\n"[..])
    );
    let done = s.get("/api/v1/assignments?all=true&status=done").await.ok(200);
    assert_eq!(done["items"].as_array().map(Vec::len), Some(2), "the form and one approval: {done}");
    let plugins = s.get("/api/v1/plugins/vip").await.ok(200);
    assert_eq!(plugins["items"][0]["version"], "1.0.0");
}
both!(the_readme_examples_run);
