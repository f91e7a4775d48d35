//! `voronka`: the command line of the host.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use voronka::server::{self, ServeConfig};

/// mimalloc: the server allocates many small short-lived buffers on several threads, where
/// glibc's allocator spent a fifth of the CPU time under write load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "voronka", version, about = "Voronka: CRM automation platform")]
struct Cli {
    /// Format of the log lines on stderr: human-readable text or one JSON object per line (level
    /// from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(clap::Args)]
struct Storage {
    /// Data directory (database, admin token, files).
    #[arg(long, env = "VORONKA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH (default <data-dir>/voronka.db) or postgres://...
    #[arg(long, env = "VORONKA_DATABASE_URL")]
    database: Option<String>,
}

impl Storage {
    fn database(&self) -> String {
        self.database.clone().unwrap_or_else(|| server::default_database(&self.data_dir))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Migrates the database, then serves the API and runs the automation until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "VORONKA_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        storage: Storage,
        /// Seed the demo company (sales and claims funnels, production, people, deals).
        #[arg(long)]
        demo: bool,
    },
    /// Runs the database migrations and exits.
    Migrate {
        #[command(flatten)]
        storage: Storage,
    },
    /// Uploads and lists plugins on a running server (token in VORONKA_TOKEN).
    Plugin {
        #[command(flatten)]
        remote: voronka::cli::Remote,
        #[command(subcommand)]
        command: voronka::cli::PluginCommand,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { listen, storage, demo } => {
            let admin_token = std::env::var("VORONKA_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
            let config = ServeConfig {
                listen,
                database: storage.database(),
                data_dir: storage.data_dir.clone(),
                demo,
                admin_token,
                cache_dir: std::env::var_os("VORONKA_CACHE_DIR").map(PathBuf::from),
                test_hooks: std::env::var("VORONKA_TEST_HOOKS").is_ok_and(|v| v == "1"),
            };
            server::serve(config).await
        }
        Command::Plugin { remote, command } => voronka::cli::run(remote, command).await,
        Command::Migrate { storage } => {
            std::fs::create_dir_all(&storage.data_dir)?;
            let store = server::open_store(&storage.database()).await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
    }
}
