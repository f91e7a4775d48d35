//! Starting and stopping the host: database, migrations, first administrator, HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use voronka_core::service::Core;
use voronka_store::Store;

/// Settings of `voronka serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Database URL, `sqlite://PATH` or `postgres://...`; migrated before serving.
    pub database: String,
    /// Folder for the database, the admin token and files.
    pub data_dir: PathBuf,
    /// Seed the demo company.
    pub demo: bool,
    /// Token for the first administrator.
    pub admin_token: Option<String>,
    /// Folder for compiled plugin code (default `<data-dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// Serve the routes for tests (`/api/v1/testing/...`).
    pub test_hooks: bool,
}

/// Job workers per host.
const AUTOMATION_WORKERS: usize = 4;

/// The default database: `sqlite://<data-dir>/voronka.db`.
pub fn default_database(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("voronka.db").display())
}

/// Connects and migrates.
pub async fn open_store(database: &str) -> anyhow::Result<Store> {
    let store = Store::connect(database).await.with_context(|| format!("opening database {}", redact(database)))?;
    store.migrate().await.context("running migrations")?;
    Ok(store)
}

/// Hides a password in a database URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = open_store(&config.database).await?;
    let cache = config.cache_dir.clone().unwrap_or_else(|| config.data_dir.join("cache"));
    let runtime = voronka_runtime::Runtime::new(Some(cache)).context("starting the plugin runtime")?;
    let core = Arc::new(Core::new(store.clone(), Arc::new(runtime), config.data_dir.clone()));
    let admin =
        core.people().bootstrap_admin(config.admin_token.as_deref()).await.context("creating the administrator")?;
    if let Some(token) = &admin.generated_token {
        let path = config.data_dir.join("admin-token");
        write_secret(&path, token).with_context(|| format!("writing {}", path.display()))?;
        println!("Administrator token (shown once, also written to {}):\n{token}", path.display());
    }
    core.plugins().install_builtins().await.context("installing the built-in robots")?;
    core.plugins().warm_bound().await.context("loading the plugins robots are bound to")?;
    core.files().clear_staging().await.context("clearing unfinished uploads")?;
    let (runs, processes, deliveries) =
        core.resume_interrupted_work().await.context("resuming work the last stop cut short")?;
    if runs + processes + deliveries > 0 {
        tracing::info!(runs, processes, deliveries, "work cut short by the last stop is taken up again");
    }
    if config.demo {
        crate::demo::seed(&core).await.context("seeding demo data")?;
    }
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(address = %local, database = %redact(&config.database), "voronka is serving");
    println!("listening on http://{local}");
    let stop_automation = tokio_util::sync::CancellationToken::new();
    let tasks = voronka_core::automation::start(core.clone(), AUTOMATION_WORKERS, stop_automation.clone());
    axum::serve(listener, crate::api::router(core, config.test_hooks))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    stop_automation.cancel();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "an automation task ended abnormally");
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Writes a file readable only by its owner.
fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")
}

/// Installs the SIGINT/SIGTERM handlers now (so a signal arriving right after start-up is not
/// lost to the default action) and returns a future that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:secret@localhost/db"), "postgres://***@localhost/db");
        assert_eq!(redact("sqlite://data/v.db"), "sqlite://data/v.db");
    }
}
