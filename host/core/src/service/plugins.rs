//! The plugin registry: upload (validated), list, versions, delete, and resolving a version
//! requirement to a loaded plugin at each invocation (so a new version takes effect at the next
//! call, on every host sharing the database).
//!
//! The [`super::Plugins`] aggregate (`core.plugins()`).

use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Caller, Plugins, ServiceError, ServiceResult, require_admin};
use voronka_model::capability::Capability;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};
use voronka_model::{FieldError, is_valid_key};
use voronka_runtime::Loaded;
use voronka_store::plugins::{self as repo, PluginVersion};

/// The `manifest` part of an upload.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name (a key: lower-case letters, digits, `-`, `_`).
    pub name: String,
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// How the module is written: `wasm` (a WebAssembly component) or `rhai` (a Rhai script).
    pub kind: PluginKind,
    /// `robot`, `trigger`, `bp-step` or `payment-schedule`.
    pub world: World,
    /// Capabilities granted, e.g. `items:read`, `items:write`, `kv`.
    #[serde(default)]
    #[schema(value_type = Vec<Capability>)]
    pub capabilities: Vec<String>,
    /// Limits (defaults: 1000 ms, 64 MiB, no fuel limit).
    #[serde(default)]
    pub limits: Limits,
}

/// Largest module accepted, in bytes (components built from Python reach about 20 MB).
pub const MAX_MODULE: usize = 48 * 1024 * 1024;

/// A plugin version resolved and loaded for a call.
pub struct ResolvedPlugin {
    /// Its stored description.
    pub version: PluginVersion,
    /// That version compiled for its world, ready to call (shared with the runtime's cache).
    pub loaded: Arc<Loaded>,
}

/// Loads a stored version for its world: compiled once, then from memory.
async fn load(
    runtime: &voronka_runtime::Runtime,
    reader: voronka_store::Reader,
    version: &PluginVersion,
) -> Result<Arc<Loaded>, String> {
    let (name, number) = (version.name.clone(), version.version.clone());
    runtime
        .load(version.kind, version.world, &version.sha256, || async move {
            repo::module(&reader, &name, &number)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "the module vanished".to_string())
        })
        .await
}

/// Whether `version` satisfies `requirement` (`latest`, `*` or a semver requirement).
fn matches(requirement: &str, version: &semver::Version) -> bool {
    match requirement.trim() {
        "latest" | "*" | "" => true,
        req => semver::VersionReq::parse(req).is_ok_and(|r| r.matches(version)),
    }
}

/// Checks a version requirement; returns the problem in words.
pub fn check_requirement(requirement: &str) -> Result<(), String> {
    match requirement.trim() {
        "latest" | "*" => Ok(()),
        req => semver::VersionReq::parse(req)
            .map(|_| ())
            .map_err(|e| format!("`{req}` is not `latest` or a semver requirement: {e}")),
    }
}

/// The highest version of `versions` satisfying `requirement`.
/// `latest` prefers releases and falls back to pre-releases when there is no release.
pub fn pick<'a>(versions: &'a [PluginVersion], requirement: &str) -> Option<&'a PluginVersion> {
    let parsed: Vec<(semver::Version, &PluginVersion)> = versions
        .iter()
        .filter_map(|v| semver::Version::parse(&v.version).ok().map(|sv| (sv, v)))
        .filter(|(sv, _)| matches(requirement, sv))
        .collect();
    let latest = matches!(requirement.trim(), "latest" | "*" | "");
    let releases = parsed.iter().filter(|(sv, _)| sv.pre.is_empty());
    let best = if latest { releases.max_by(|a, b| a.0.cmp(&b.0)) } else { None };
    best.or_else(|| parsed.iter().max_by(|a, b| a.0.cmp(&b.0))).map(|(_, v)| *v)
}

impl Plugins<'_> {
    /// Validates and stores a plugin version (administrators only).
    pub async fn install(&self, caller: &Caller, manifest: Manifest, module: Vec<u8>) -> ServiceResult<PluginVersion> {
        require_admin(caller)?;
        self.install_unchecked(manifest, module, false).await
    }

    /// Stores a plugin version after validating it; used for uploads and built-in plugins.
    async fn install_unchecked(
        &self,
        manifest: Manifest,
        module: Vec<u8>,
        builtin: bool,
    ) -> ServiceResult<PluginVersion> {
        let mut errors = Vec::new();
        if !is_valid_key(&manifest.name) {
            errors.push(FieldError::new(
                "manifest.name",
                "a name is lower-case letters, digits, `-` or `_`, starting with a letter",
            ));
        }
        if semver::Version::parse(&manifest.version).is_err() {
            errors.push(FieldError::new(
                "manifest.version",
                format!("`{}` is not a semantic version like 1.2.0", manifest.version),
            ));
        }
        let mut capabilities = Vec::new();
        for (i, name) in manifest.capabilities.iter().enumerate() {
            match serde_json::from_value::<Capability>(serde_json::Value::String(name.clone())) {
                Ok(c) if !capabilities.contains(&c) => capabilities.push(c),
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(
                    format!("manifest.capabilities[{i}]"),
                    format!("unknown capability `{name}`; use items:read, items:write, kv, notify, tasks:write or processes:start"),
                )),
            }
        }
        if let Err(e) = manifest.limits.validate() {
            errors.push(FieldError::new("manifest.limits", e));
        }
        if module.is_empty() {
            errors.push(FieldError::new("module", "the module is empty"));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let sha256 = hex::encode(Sha256::digest(&module));
        let loaded = self
            .core
            .runtime
            .compile(manifest.kind, manifest.world, &sha256, module.clone())
            .await
            .map_err(|e| ServiceError::invalid("module", e))?;
        drop(loaded);
        let version = PluginVersion {
            name: manifest.name,
            version: manifest.version,
            kind: manifest.kind,
            world: manifest.world,
            capabilities,
            limits: manifest.limits,
            sha256,
            builtin,
            created_at: voronka_model::time::to_rfc3339(voronka_model::time::now_micros()),
        };
        // A configuration change: every host's caches of plugin versions see it.
        let mut tx = self.core.begin_config().await?;
        if !repo::insert(&mut tx, &version, &module).await? {
            return Err(ServiceError::Conflict(format!(
                "{} {} exists; versions are immutable, upload a new version",
                version.name, version.version
            )));
        }
        self.core.commit_config(tx).await?;
        Ok(version)
    }

    /// Installs the built-in robots of this build unless their version is stored already.
    /// They are compiled at first use, so a start does not wait for the compiler.
    pub async fn install_builtins(&self) -> ServiceResult<()> {
        for (name, module) in voronka_builtins::ROBOTS {
            let stored = repo::versions(self.core.store.reader(), name).await?;
            let sha256 = hex::encode(Sha256::digest(module));
            match stored.iter().find(|v| v.version == super::builtins::BUILTIN_VERSION) {
                Some(v) if v.sha256 != sha256 => {
                    tracing::warn!(
                        plugin = name,
                        "the stored built-in differs from this build's; keeping the stored one"
                    );
                }
                Some(_) => {}
                None => {
                    let manifest = super::builtins::manifest(name);
                    let version = PluginVersion {
                        name: manifest.name,
                        version: manifest.version,
                        kind: manifest.kind,
                        world: manifest.world,
                        capabilities: manifest
                            .capabilities
                            .iter()
                            .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.clone())).ok())
                            .collect(),
                        limits: manifest.limits,
                        sha256,
                        builtin: true,
                        created_at: voronka_model::time::to_rfc3339(voronka_model::time::now_micros()),
                    };
                    let mut tx = self.core.begin_config().await?;
                    repo::insert(&mut tx, &version, module).await?;
                    self.core.commit_config(tx).await?;
                }
            }
        }
        Ok(())
    }

    /// Every stored plugin version, by name, then oldest first.
    pub async fn list(&self) -> ServiceResult<Vec<PluginVersion>> {
        Ok(repo::list(self.core.store.reader()).await?)
    }

    /// The stored versions of one plugin, oldest first; `NotFound` when it has none.
    pub async fn versions(&self, name: &str) -> ServiceResult<Vec<PluginVersion>> {
        let versions = repo::versions(self.core.store.reader(), name).await?;
        if versions.is_empty() {
            return Err(ServiceError::NotFound(format!("no plugin `{name}`")));
        }
        Ok(versions)
    }

    /// Deletes a plugin with all its versions, unless a robot, trigger or schedule uses it (administrators
    /// only).
    pub async fn delete(&self, caller: &Caller, name: &str) -> ServiceResult<()> {
        require_admin(caller)?;
        let mut tx = self.core.begin_config().await?;
        let robots = voronka_store::robots::count_using(&mut tx, name).await?;
        let triggers = voronka_store::triggers::count_using(&mut tx, name).await?;
        let schedules = voronka_store::schedules::count_using(&mut tx, name).await?;
        if robots + triggers + schedules > 0 {
            return Err(ServiceError::Conflict(format!(
                "{robots} robot(s), {triggers} trigger(s) and {schedules} schedule(s) use plugin `{name}`; remove them first"
            )));
        }
        if repo::delete(&mut tx, name).await? == 0 {
            return Err(ServiceError::NotFound(format!("no plugin `{name}`")));
        }
        self.core.commit_config(tx).await?;
        Ok(())
    }

    /// Resolves `requirement` against the stored versions now and loads the winner.
    pub async fn resolve(&self, name: &str, requirement: &str, world: World) -> ServiceResult<ResolvedPlugin> {
        let version = self.matching_version(name, requirement, world).await?;
        let loaded = load(&self.core.runtime, self.core.store.reader().clone(), &version)
            .await
            .map_err(|e| ServiceError::Store(voronka_store::StoreError::Corrupt { table: "plugins", message: e }))?;
        Ok(ResolvedPlugin { version, loaded })
    }

    /// The stored version `requirement` resolves to now, without loading it.
    pub async fn matching_version(&self, name: &str, requirement: &str, world: World) -> ServiceResult<PluginVersion> {
        let versions = self.versions_cached(name).await?;
        pick(&versions, requirement)
            .filter(|v| v.world == world)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("no {world} plugin `{name}` matching `{requirement}`")))
    }

    /// Loads, in the background, the plugins that robot bindings name, so that no robot's
    /// first run waits for its plugin to compile (at start, and after a binding changes).
    pub async fn warm_bound(&self) -> ServiceResult<()> {
        for (name, requirement) in voronka_store::robots::bound_plugins(self.core.store.reader()).await? {
            let versions = self.versions_cached(&name).await?;
            let Some(version) = pick(&versions, &requirement).filter(|v| v.world == World::Robot).cloned() else {
                continue;
            };
            let (runtime, reader) = (self.core.runtime.clone(), self.core.store.reader().clone());
            tokio::spawn(async move {
                if let Err(e) = load(&runtime, reader, &version).await {
                    tracing::warn!(
                        plugin = version.name,
                        version = version.version,
                        error = e,
                        "could not load a bound plugin"
                    );
                }
            });
        }
        Ok(())
    }

    /// A plugin's stored versions, read once per configuration generation (an upload or a
    /// deletion moves the generation, on every host).
    async fn versions_cached(&self, name: &str) -> ServiceResult<Vec<PluginVersion>> {
        let generation = self.core.store.generation().await?;
        if let Ok(cache) = self.core.caches.plugin_versions.lock()
            && cache.0 == generation
            && let Some(versions) = cache.1.get(name)
        {
            return Ok(versions.clone());
        }
        let versions = repo::versions(self.core.store.reader(), name).await?;
        if let Ok(mut cache) = self.core.caches.plugin_versions.lock() {
            if cache.0 != generation {
                *cache = (generation, Default::default());
            }
            cache.1.insert(name.to_string(), versions.clone());
        }
        Ok(versions)
    }

    /// Checks that a binding names an existing plugin of `world` with a version matching
    /// `requirement`: the version it resolves to now, or the error naming the offending key
    /// (`plugin` or `version`).
    pub(super) async fn check_binding(
        &self,
        plugin: &str,
        requirement: &str,
        world: World,
    ) -> ServiceResult<Result<PluginVersion, FieldError>> {
        let versions = voronka_store::plugins::versions(self.core.store.reader(), plugin).await?;
        Ok(binding(&versions, plugin, requirement, world).cloned())
    }
}

/// Of a plugin's stored `versions`, the one a binding of `world` with `requirement` resolves
/// to; else the error naming the offending key (`plugin` or `version`).
pub fn binding<'a>(
    versions: &'a [PluginVersion],
    plugin: &str,
    requirement: &str,
    world: World,
) -> Result<&'a PluginVersion, FieldError> {
    check_requirement(requirement).map_err(|e| FieldError::new("version", e))?;
    match pick(versions, requirement) {
        None if versions.is_empty() => Err(FieldError::new("plugin", format!("no plugin `{plugin}`"))),
        None => Err(FieldError::new("version", format!("no version of `{plugin}` matches `{requirement}`"))),
        Some(v) if v.world != world => {
            Err(FieldError::new("plugin", format!("plugin `{plugin}` is of world {}, not {world}", v.world)))
        }
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str) -> PluginVersion {
        PluginVersion {
            name: "p".into(),
            version: version.into(),
            kind: PluginKind::Rhai,
            world: World::Robot,
            capabilities: vec![],
            limits: Limits::DEFAULT,
            sha256: String::new(),
            builtin: false,
            created_at: String::new(),
        }
    }

    #[test]
    fn picks_the_highest_matching_version() {
        let versions = vec![v("1.2.0"), v("1.10.0"), v("2.0.0-beta.1"), v("0.9.0")];
        assert_eq!(pick(&versions, "latest").unwrap().version, "1.10.0");
        assert_eq!(pick(&[v("2.0.0-beta.1")], "latest").unwrap().version, "2.0.0-beta.1");
        assert_eq!(pick(&versions, "^1").unwrap().version, "1.10.0");
        assert_eq!(pick(&versions, "~1.2").unwrap().version, "1.2.0");
        assert!(pick(&versions, "^3").is_none());
        assert!(check_requirement("^1.2").is_ok());
        assert!(check_requirement("newest").is_err());
    }

    #[test]
    fn a_binding_names_the_world_a_plugin_is_of() {
        let versions = vec![v("1.0.0")];
        let wrong = binding(&versions, "p", "latest", World::Trigger).err().map(|e| (e.field, e.message));
        assert_eq!(wrong, Some(("plugin".into(), "plugin `p` is of world robot, not trigger".into())));
        assert_eq!(binding(&[], "q", "latest", World::Robot).err().map(|e| e.message), Some("no plugin `q`".into()));
        assert!(binding(&versions, "p", "^1", World::Robot).is_ok());
    }
}
