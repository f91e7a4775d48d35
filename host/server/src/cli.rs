//! `voronka plugin ...`: the integrator's commands against a running server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

/// The `voronka plugin` subcommands: `push` uploads a plugin version, `list` shows the stored ones.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Uploads a `.wasm` component or `.rhai` script as a new plugin version.
    Push {
        /// Path of the module: a `.wasm` component or a `.rhai` script.
        file: PathBuf,
        /// Plugin name: a lower-case letter, then lower-case letters, digits, `-` or `_`.
        #[arg(long)]
        name: String,
        /// Semantic version, e.g. 1.2.0.
        #[arg(long)]
        version: String,
        /// World: robot, trigger, bp-step or payment-schedule.
        #[arg(long, default_value = "robot")]
        world: String,
        /// `wasm` or `rhai` (default: from the file's extension).
        #[arg(long)]
        kind: Option<String>,
        /// A capability to grant (repeat): items:read, items:write, kv, notify.
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Wall-clock budget of one call, in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Memory limit, in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// Fuel of one call (Wasm instructions, roughly, or Rhai operations); unlimited when absent.
        #[arg(long)]
        fuel: Option<u64>,
    },
    /// Lists the stored plugin versions.
    List,
}

/// Where the server is and who is asking.
#[derive(clap::Args)]
pub struct Remote {
    /// Base URL of the server.
    #[arg(long, env = "VORONKA_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token sent with each request; uploading needs an administrator's.
    #[arg(long, env = "VORONKA_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Runs a plugin command.
pub async fn run(remote: Remote, command: PluginCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let base = remote.server.trim_end_matches('/');
    match command {
        PluginCommand::Push { file, name, version, world, kind, capabilities, timeout_ms, memory_mb, fuel } => {
            let module = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let kind = match kind {
                Some(k) => k,
                None => match file.extension().and_then(|e| e.to_str()) {
                    Some("wasm") => "wasm".to_string(),
                    Some("rhai") => "rhai".to_string(),
                    _ => bail!("cannot tell the kind from {}; pass --kind wasm or --kind rhai", file.display()),
                },
            };
            let mut limits = serde_json::Map::new();
            if let Some(v) = timeout_ms {
                limits.insert("timeout_ms".into(), v.into());
            }
            if let Some(v) = memory_mb {
                limits.insert("memory_mb".into(), v.into());
            }
            if let Some(v) = fuel {
                limits.insert("fuel".into(), v.into());
            }
            let manifest = serde_json::json!({
                "name": name, "version": version, "kind": kind, "world": world,
                "capabilities": capabilities, "limits": limits,
            });
            let form = reqwest::multipart::Form::new()
                .text("manifest", manifest.to_string())
                .part("module", reqwest::multipart::Part::bytes(module).file_name("module"));
            let response = http
                .post(format!("{base}/api/v1/plugins"))
                .bearer_auth(&remote.token)
                .multipart(form)
                .send()
                .await
                .with_context(|| format!("uploading to {base}"))?;
            print_answer(response).await
        }
        PluginCommand::List => {
            let response = http
                .get(format!("{base}/api/v1/plugins"))
                .bearer_auth(&remote.token)
                .send()
                .await
                .with_context(|| format!("asking {base}"))?;
            if !response.status().is_success() {
                return print_answer(response).await;
            }
            let page: serde_json::Value = response.json().await.context("reading the answer")?;
            println!("{:<24} {:<12} {:<6} {:<18} SHA-256", "NAME", "VERSION", "KIND", "WORLD");
            for p in page["items"].as_array().into_iter().flatten() {
                let text = |k: &str| p[k].as_str().unwrap_or("").to_string();
                let sha = text("sha256");
                println!(
                    "{:<24} {:<12} {:<6} {:<18} {}",
                    text("name"),
                    text("version"),
                    text("kind"),
                    text("world"),
                    &sha[..sha.len().min(16)]
                );
            }
            Ok(())
        }
    }
}

async fn print_answer(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let body = response.text().await.context("reading the answer")?;
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("{pretty}");
    if status.is_success() { Ok(()) } else { bail!("the server answered {status}") }
}
