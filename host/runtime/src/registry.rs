//! Loaded plugins: compiled once per module (keyed by SHA-256), shared by every call, with
//! compiled Wasm code cached on disk per engine (wasmtime's version and compilation settings).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rhai::AST;
use tokio::sync::OnceCell;

use voronka_model::item::Item;
use voronka_model::limits::{Failure, Limits};
use voronka_model::plugin::{PluginKind, World};

use crate::host::HostCalls;
use crate::rhai::RhaiRuntime;
use crate::wasm::{Prepared, WasmRuntime};
use crate::world::PluginWorld;

/// A plugin ready to run.
pub enum Loaded {
    /// A prepared component (it knows its world).
    Wasm(Prepared),
    /// A compiled script, checked for the entry function of `world`.
    Rhai {
        /// The compiled script, shared by every call of the module.
        ast: Arc<AST>,
        /// The world it was checked for.
        world: World,
    },
}

/// Both runtimes and the loaded plugins.
pub struct Runtime {
    wasm: Arc<WasmRuntime>,
    rhai: RhaiRuntime,
    cache_dir: Option<PathBuf>,
    /// One cell per (module SHA-256, world): the first caller compiles, the others wait for it.
    loaded: RwLock<HashMap<(String, World), Arc<LoadCell>>>,
}

/// Where one loaded plugin lands, once.
type LoadCell = OnceCell<Arc<Loaded>>;

impl Runtime {
    /// Builds the runtimes; compiled Wasm is cached under `cache_dir` when given, in a folder
    /// named after the engine's compatibility hash (wasmtime's version and settings), so code
    /// compiled by another build is never looked at.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let wasm = WasmRuntime::new()?;
        let cache_dir = cache_dir.map(|dir| {
            use std::hash::Hash;
            let mut hasher = StableHasher(sha2::Sha256::default());
            wasm.engine().precompile_compatibility_hash().hash(&mut hasher);
            let digest = sha2::Digest::finalize(hasher.0);
            let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            dir.join(format!("wasmtime-{name}"))
        });
        Ok(Runtime { wasm, rhai: RhaiRuntime::new(), cache_dir, loaded: RwLock::new(HashMap::new()) })
    }

    /// The plugin compiled for `world`, from memory, the disk cache, or compiled now off the
    /// async threads. `bytes` is fetched only when the plugin is not in memory yet.
    pub async fn load<F, Fut>(
        &self,
        kind: PluginKind,
        world: World,
        sha256: &str,
        bytes: F,
    ) -> Result<Arc<Loaded>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        let key = (sha256.to_string(), world);
        let cell = self.loaded.read().ok().and_then(|m| m.get(&key).cloned());
        let cell = match cell {
            Some(cell) => cell,
            None => match self.loaded.write() {
                Ok(mut map) => map.entry(key).or_default().clone(),
                Err(_) => Arc::new(OnceCell::new()),
            },
        };
        // Concurrent first calls compile once; a failed compilation leaves the cell empty, so
        // the next call tries again.
        cell.get_or_try_init(|| async {
            let bytes = bytes().await?;
            Ok(Arc::new(self.compile(kind, world, sha256, bytes).await?))
        })
        .await
        .cloned()
    }

    /// Compiles and type-checks a module for a world (the upload check).
    pub async fn compile(
        &self,
        kind: PluginKind,
        world: World,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<Loaded, String> {
        match kind {
            PluginKind::Rhai => {
                let script = String::from_utf8(bytes).map_err(|_| "a Rhai script must be UTF-8 text".to_string())?;
                Ok(Loaded::Rhai { ast: Arc::new(self.rhai.compile(&script, world)?), world })
            }
            PluginKind::Wasm => {
                let wasm = self.wasm.clone();
                let cached = self.cache_path(sha256);
                let task = tokio::task::spawn_blocking(move || -> Result<Prepared, String> {
                    let component = match cached.as_ref().and_then(|p| load_cached(&wasm, p)) {
                        Some(component) => component,
                        None => {
                            let component = wasm
                                .compile(&bytes)
                                .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
                            if let Some(path) = &cached {
                                store_cached(&component, path);
                            }
                            component
                        }
                    };
                    wasm.prepare(&component, world)
                        .map_err(|e| format!("the component does not fit the `{world}` world: {e:#}"))
                });
                match task.await {
                    Ok(prepared) => prepared.map(Loaded::Wasm),
                    Err(e) => Err(format!("compilation failed: {e}")),
                }
            }
        }
    }

    /// Calls a loaded plugin of world `W` with `input`, within `limits`, with `host` as its
    /// access to the host; returns what it answered and the host calls (with their buffered
    /// writes), or why it failed.
    pub async fn call<W: PluginWorld>(
        &self,
        loaded: &Loaded,
        host: HostCalls,
        limits: &Limits,
        input: W::Input,
    ) -> Result<(W::Output, HostCalls), Failure> {
        match loaded {
            Loaded::Wasm(prepared) => self.wasm.call::<W>(prepared, host, limits, input).await,
            Loaded::Rhai { ast, world } if *world == W::WORLD => {
                self.rhai.call::<W>(ast.clone(), host, limits, input).await
            }
            Loaded::Rhai { world, .. } => {
                Err(Failure::Host(format!("the plugin is a {world} plugin, not a {}", W::WORLD)))
            }
        }
    }

    /// Evaluates a condition, a Rhai expression over `item`.
    pub fn condition(&self, expression: &str, item: &Item) -> Result<bool, String> {
        self.rhai.condition(expression, item)
    }

    /// Evaluates a process condition, a Rhai expression over `vars` (the process variables)
    /// and `item`.
    pub fn process_condition(&self, expression: &str, vars: &serde_json::Value, item: &Item) -> Result<bool, String> {
        self.rhai.process_condition(expression, vars, item)
    }

    /// Checks that a condition expression compiles.
    pub fn check_expression(&self, expression: &str) -> Result<(), String> {
        self.rhai.check_expression(expression)
    }

    /// `interface.function` of every host function the Rhai engine offers.
    pub fn rhai_host_functions(&self) -> &[String] {
        self.rhai.host_functions()
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit());
        valid.then(|| self.cache_dir.as_ref().map(|dir| dir.join(format!("{sha256}.cwasm"))))?
    }
}

/// A hasher whose result does not change with the Rust release (std's may), so a toolchain
/// update does not move the compiled-code cache.
struct StableHasher(sha2::Sha256);

impl std::hash::Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// Unused: the digest is read from the SHA-256 state.
    fn finish(&self) -> u64 {
        0
    }
}

fn load_cached(wasm: &WasmRuntime, path: &std::path::Path) -> Option<wasmtime::component::Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store_cached` of this host for this engine from a
    // component it compiled itself (the name is the module's SHA-256 and the folder the
    // engine's compatibility hash); wasmtime also checks the header and engine compatibility and errors on
    // a mismatch, in which case the module is compiled again.
    match unsafe { wasmtime::component::Component::deserialize_file(wasm.engine(), path) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable compiled-code cache entry");
            None
        }
    }
}

fn store_cached(component: &wasmtime::component::Component, path: &std::path::Path) {
    let written = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
        let dir = path.parent().ok_or("no cache folder")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        // Unique per writer: two hosts (or an upload and a first run) may write at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&temp, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&temp, path).map_err(|e| e.to_string())
    });
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not cache compiled code");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[tokio::test]
    async fn concurrent_first_loads_compile_once() {
        let runtime = Runtime::new(None).unwrap();
        let fetched = AtomicUsize::new(0);
        let load = || {
            runtime.load(PluginKind::Rhai, World::Robot, SHA, || async {
                fetched.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(b"fn run(ctx) { () }".to_vec())
            })
        };
        let loads = futures::future::join_all((0..8).map(|_| load())).await;
        assert!(loads.iter().all(Result::is_ok));
        assert_eq!(fetched.load(Ordering::SeqCst), 1, "the module is fetched and compiled once");
    }

    #[tokio::test]
    async fn compiled_code_is_cached_on_disk_for_the_next_start() {
        const NOOP: &[u8] = voronka_builtins::test::NOOP;
        let dir = tempfile::tempdir().unwrap();
        let first = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
        first.load(PluginKind::Wasm, World::Robot, SHA, || async { Ok(NOOP.to_vec()) }).await.unwrap();
        let cached: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.ends_with(format!("{SHA}.cwasm"))).collect();
        assert_eq!(cached.len(), 1, "one compiled file: {cached:?}");
        // A host started later loads it without compiling the module (bytes that are no
        // component load, as the module of that SHA-256)...
        let garbage = || async { Ok(b"not a component".to_vec()) };
        let second = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
        assert!(second.load(PluginKind::Wasm, World::Robot, SHA, garbage).await.is_ok());
        // ... and one whose cached file is unusable compiles the module again. (A loaded file
        // is mapped: it is replaced, never written over, as the cache itself does.)
        drop(second);
        let spoiled = cached[0].with_extension("spoiled");
        std::fs::write(&spoiled, b"not compiled code").unwrap();
        std::fs::rename(&spoiled, &cached[0]).unwrap();
        let third = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
        let refused = third.load(PluginKind::Wasm, World::Robot, SHA, garbage).await.err().unwrap_or_default();
        assert!(refused.starts_with("not a valid WebAssembly component"), "{refused}");
        assert!(third.load(PluginKind::Wasm, World::Robot, SHA, || async { Ok(NOOP.to_vec()) }).await.is_ok());
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
        }
        found
    }

    #[tokio::test]
    async fn a_failed_load_is_tried_again() {
        let runtime = Runtime::new(None).unwrap();
        let fetched = AtomicUsize::new(0);
        for expected in [1, 2] {
            let loaded = runtime
                .load(PluginKind::Rhai, World::Robot, SHA, || async {
                    fetched.fetch_add(1, Ordering::SeqCst);
                    Err("the database is away".to_string())
                })
                .await;
            assert_eq!(loaded.err().as_deref(), Some("the database is away"));
            assert_eq!(fetched.load(Ordering::SeqCst), expected);
        }
    }
}
