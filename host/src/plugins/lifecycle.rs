//! The one load pipeline every way of loading a plugin version goes through
//! (plugins directory, `PUT /api/v1/plugins/NAME`, config files at start),
//! plus rollback and removal. Runs on a blocking thread, never on the
//! evaluation path:
//!
//! signature check → compile (or load the compiled component from the disk
//! cache by content hash) → WIT package version check → link → `info()` →
//! every rule's and receiver's config that uses the plugin against its JSON
//! schema and its `check-config` → the manifest's self-tests → atomic swap.
//!
//! A version that fails any step is not loaded; the live one stays and the
//! reason is kept per plugin name (`last_failure`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestError};
use super::signing::{SignatureError, TrustPolicy};
use super::{Plugin, PluginEngine, PluginError, PluginRegistry, PluginSource};
use crate::config::{Config, PluginUse};

/// A component offered for loading.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The name it is offered under (`info().name` must agree).
    pub name: String,
    pub bytes: bytes::Bytes,
    pub source: PluginSource,
    pub manifest: Option<Manifest>,
    /// Detached signature text (see `signing`).
    pub signature: Option<String>,
}

/// Why a version was not loaded (or not rolled back, or not removed).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{name}`: {source}")]
    Signature {
        name: String,
        source: SignatureError,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("plugin `{name}`: {source}")]
    Manifest { name: String, source: ManifestError },
    #[error("plugin `{name}`: its config schema is not a valid JSON Schema: {reason}")]
    BadSchema { name: String, reason: String },
    #[error("plugin `{name}` would break {user}: {reason}")]
    User {
        name: String,
        user: String,
        reason: String,
    },
    #[error("plugin `{name}` is used by {}; change the config first", .users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("`{0}` is not a plugin name (letters, digits, `_` and `-`)")]
    BadName(String),
}

impl LoadError {
    /// Whether the plugin is still in use (a conflict with the config).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::InUse { .. })
    }

    /// Whether the named plugin or version does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Plugin(PluginError::NotFound(_) | PluginError::NoSuchVersion { .. })
        )
    }
}

/// What a successful load did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loaded {
    pub name: String,
    pub hash: String,
    pub kind: super::PluginKind,
    pub version: String,
    /// The hash live before, if any.
    pub previous: Option<String>,
    /// The offered bytes were the live version already: nothing changed.
    pub unchanged: bool,
    /// Signing key (hex), when validly signed by a trusted key.
    pub signed_by: Option<String>,
    /// The compiled component came from the disk cache (no compile).
    pub from_cache: bool,
    /// `quick` when the baseline compiler built what went live (the
    /// optimized build follows in the background), else `optimized`.
    pub tier: super::Tier,
    /// Time from the offer to the swap.
    pub load_micros: u64,
}

/// A failed load, kept per name for the API.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub hash: String,
    pub source: PluginSource,
    pub error: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Loads, rolls back and removes plugin versions.
pub struct PluginManager {
    engine: Arc<PluginEngine>,
    registry: Arc<PluginRegistry>,
    trust: TrustPolicy,
    /// One load, rollback or removal at a time.
    lock: parking_lot::Mutex<()>,
    failures: parking_lot::Mutex<HashMap<String, Failure>>,
    /// New live versions watched for automatic rollback: name → (the
    /// version replaced, the new version).
    probation: parking_lot::Mutex<HashMap<String, (String, Arc<Plugin>)>>,
    /// Compile new versions with the baseline compiler first (once serving:
    /// see [`PluginManager::set_quick_compile`]).
    quick: std::sync::atomic::AtomicBool,
    /// Where versions made live through the API are written, so a restart
    /// finds them (the plugins directory), once serving.
    persist_dir: parking_lot::Mutex<Option<std::path::PathBuf>>,
}

/// An automatic rollback that happened.
#[derive(Debug, Clone)]
pub struct RolledBack {
    pub name: String,
    /// The failing version, no longer live.
    pub from: String,
    /// The version live again.
    pub to: String,
    pub calls: u64,
    pub errors: u64,
}

/// Plugin names: what a file name or URL segment may carry.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl PluginManager {
    pub fn new(
        engine: Arc<PluginEngine>,
        registry: Arc<PluginRegistry>,
        trust: TrustPolicy,
    ) -> Self {
        Self {
            engine,
            registry,
            trust,
            lock: parking_lot::Mutex::new(()),
            failures: parking_lot::Mutex::new(HashMap::new()),
            probation: parking_lot::Mutex::new(HashMap::new()),
            quick: std::sync::atomic::AtomicBool::new(false),
            persist_dir: parking_lot::Mutex::new(None),
        }
    }

    /// Versions made live through the API (upload, rollback, promotion) are
    /// written to `dir` as `NAME.wasm` (and `NAME.wasm.sig`), and a removed
    /// plugin's files are deleted there, so a restart serves what was live.
    pub fn set_persist_dir(&self, dir: Option<std::path::PathBuf>) {
        *self.persist_dir.lock() = dir;
    }

    /// Writes `plugin` to the plugins directory (temporary name, then
    /// rename: the directory watcher never sees half a file, and loading
    /// the same bytes again changes nothing). A failure is logged: the
    /// version is live but would not survive a restart.
    fn persist(&self, plugin: &Plugin) {
        let Some(dir) = self.persist_dir.lock().clone() else {
            return;
        };
        let name = &plugin.info.name;
        let write = |file: String, bytes: &[u8]| -> std::io::Result<()> {
            let tmp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, dir.join(file))
        };
        let sig = format!("{name}.wasm.sig");
        let result = match &plugin.signature {
            Some(signature) => write(sig, signature.as_bytes()),
            None => match std::fs::remove_file(dir.join(&sig)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
        .and_then(|()| write(format!("{name}.wasm"), &plugin.bytes));
        match result {
            Ok(()) => {
                tracing::info!(plugin = %name, hash = %short(&plugin.hash), dir = %dir.display(), "live plugin version written to the plugins directory")
            }
            Err(e) => {
                tracing::error!(plugin = %name, dir = %dir.display(), error = %e, "cannot write the live plugin version to the plugins directory; it will not survive a restart")
            }
        }
    }

    /// Deletes a removed plugin's files from the plugins directory.
    fn unpersist(&self, name: &str) {
        let Some(dir) = self.persist_dir.lock().clone() else {
            return;
        };
        for file in [format!("{name}.wasm"), format!("{name}.wasm.sig")] {
            if let Err(e) = std::fs::remove_file(dir.join(&file))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!(plugin = %name, file = %file, error = %e, "cannot delete the removed plugin's file");
            }
        }
    }

    /// From now on, a version not in the disk cache goes live after a quick
    /// baseline compile, and its optimized build replaces it when ready (a
    /// background thread). Off at start, where the optimized build is wanted
    /// at once and nothing waits.
    pub fn set_quick_compile(&self, on: bool) {
        self.quick.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    /// The last failed load of `name`, if it failed after its last success.
    pub fn last_failure(&self, name: &str) -> Option<Failure> {
        self.failures.lock().get(name).cloned()
    }

    /// Runs the pipeline and, when every step passes, makes the version
    /// live. `config` is the config in force: its users of the plugin are
    /// checked against the new version. Blocks: call from a blocking thread.
    pub fn load(&self, candidate: Candidate, config: &Config) -> Result<Loaded, LoadError> {
        self.load_as(candidate, config, false)
    }

    /// Runs the pipeline and, when every step passes, runs the version in
    /// shadow of the live one (see `shadow`); the live version stays.
    pub fn load_shadow(&self, candidate: Candidate, config: &Config) -> Result<Loaded, LoadError> {
        self.load_as(candidate, config, true)
    }

    fn load_as(
        &self,
        candidate: Candidate,
        config: &Config,
        shadow: bool,
    ) -> Result<Loaded, LoadError> {
        let start = Instant::now();
        let _one_at_a_time = self.lock.lock();
        let name = candidate.name.clone();
        let hash = hex::encode(Sha256::digest(&candidate.bytes));
        let source = candidate.source.clone();
        let result = self.load_locked(candidate, &hash, config, start, shadow);
        match &result {
            Ok(loaded) => {
                self.failures.lock().remove(&name);
                if !loaded.unchanged {
                    tracing::info!(plugin = %name, hash = %short(&loaded.hash), previous = ?loaded.previous.as_deref().map(short), source = ?source, micros = loaded.load_micros, "plugin version live");
                }
            }
            Err(e) => {
                tracing::error!(plugin = %name, hash = %short(&hash), source = ?source, error = %e, "plugin version refused; the live version stays");
                self.failures.lock().insert(
                    name,
                    Failure {
                        hash,
                        source,
                        error: e.to_string(),
                        at: chrono::Utc::now(),
                    },
                );
            }
        }
        result
    }

    fn load_locked(
        &self,
        candidate: Candidate,
        hash: &str,
        config: &Config,
        start: Instant,
        shadow: bool,
    ) -> Result<Loaded, LoadError> {
        let Candidate {
            name,
            bytes,
            source,
            manifest,
            signature,
        } = candidate;
        if !valid_name(&name) {
            return Err(LoadError::BadName(name));
        }
        let signed_by = self
            .trust
            .check(&bytes, signature.as_deref())
            .map_err(|source| LoadError::Signature {
                name: name.clone(),
                source,
            })?;
        let limits = manifest
            .as_ref()
            .and_then(|m| m.limits.clone())
            .unwrap_or_else(|| config.plugins.limits_for(&name));
        let live = self.registry.get(&name);
        if shadow && live.is_none() {
            return Err(PluginError::NotFound(name).into());
        }
        if let Some(live) = &live
            && live.hash == hash
            && live.limits == limits
            && !shadow
        {
            return Ok(Loaded {
                name,
                hash: hash.to_string(),
                kind: live.info.kind,
                version: live.info.version.clone(),
                previous: Some(live.hash.clone()),
                unchanged: true,
                signed_by,
                from_cache: live.from_cache,
                tier: live.tier,
                load_micros: micros(start.elapsed()),
            });
        }
        let quick = self.quick.load(std::sync::atomic::Ordering::Relaxed);
        let mut plugin =
            Plugin::load_tiered(&self.engine, Some(&name), bytes, source, limits, quick)?;
        plugin.signature = signature;
        if let Some(manifest) = &manifest {
            plugin.allowed_hosts = manifest.allowed_hosts.clone();
        }
        check_users(&plugin, &config.plugin_users(&name))?;
        if let Some(manifest) = &manifest {
            manifest
                .run_self_tests(&plugin)
                .map_err(|source| LoadError::Manifest {
                    name: name.clone(),
                    source,
                })?;
        }
        // The checks above called the plugin; its counters start now.
        plugin.reset_stats();
        if shadow {
            let plugin = Arc::new(plugin);
            self.registry.set_shadow(
                &name,
                Some(Arc::new(super::shadow::Shadow::new(plugin.clone()))),
            )?;
            return Ok(Loaded {
                name,
                hash: plugin.hash.clone(),
                kind: plugin.info.kind,
                version: plugin.info.version.clone(),
                previous: live.map(|l| l.hash.clone()),
                unchanged: false,
                signed_by,
                from_cache: plugin.from_cache,
                tier: plugin.tier,
                load_micros: micros(start.elapsed()),
            });
        }
        let swap = self.registry.insert_arc(Arc::new(plugin));
        if let Some(previous) = &swap.previous {
            self.probation.lock().insert(
                swap.name.clone(),
                (previous.hash.clone(), swap.live.clone()),
            );
        }
        if swap.live.tier == super::Tier::Quick {
            self.optimize_in_background(&swap.live);
        }
        if swap.live.source == PluginSource::Upload {
            self.persist(&swap.live);
        }
        Ok(Loaded {
            name,
            hash: swap.live.hash.clone(),
            kind: swap.live.info.kind,
            version: swap.live.info.version.clone(),
            previous: swap.previous.map(|p| p.hash.clone()),
            unchanged: false,
            signed_by,
            from_cache: swap.live.from_cache,
            tier: swap.live.tier,
            load_micros: micros(start.elapsed()),
        })
    }

    /// Compiles `quick`'s optimized build off every request path (it is
    /// cached on disk), then swaps it in for the quick build.
    fn optimize_in_background(&self, quick: &Arc<Plugin>) {
        let (engine, registry) = (self.engine.clone(), self.registry.clone());
        let (name, bytes, source, limits, hosts, signature) = (
            quick.info.name.clone(),
            quick.bytes.clone(),
            quick.source.clone(),
            quick.limits.clone(),
            quick.allowed_hosts.clone(),
            quick.signature.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("klaxon-optimize".into())
            .spawn(move || {
                let start = Instant::now();
                match Plugin::load_bytes(&engine, Some(&name), bytes, source, limits) {
                    Ok(mut optimized) => {
                        optimized.allowed_hosts = hosts;
                        optimized.signature = signature;
                        optimized.reset_stats();
                        let hash = optimized.hash.clone();
                        let live = registry.upgrade(optimized);
                        tracing::info!(plugin = %name, hash = %short(&hash), live, micros = micros(start.elapsed()), "optimized build of the plugin version ready");
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %name, error = %e, "optimized build failed; the quick build stays")
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(plugin = %quick.info.name, error = %e, "cannot start the optimizing compile; the quick build stays");
        }
    }

    /// Makes a kept version live again: the previous one, or `hash` (a
    /// unique prefix of 8+ hex digits). The config's users are re-checked.
    pub fn rollback(
        &self,
        name: &str,
        hash: Option<&str>,
        config: &Config,
    ) -> Result<super::Swap, LoadError> {
        let _one_at_a_time = self.lock.lock();
        let versions = self
            .registry
            .versions(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        // Find the target without swapping, check it, then swap.
        let live = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        let target = match hash {
            Some(h) => versions
                .iter()
                .find(|v| h.len() >= 8 && v.hash.starts_with(h))
                .cloned(),
            None => versions
                .iter()
                .position(|v| v.hash == live.hash)
                .and_then(|i| i.checked_sub(1))
                .map(|i| versions[i].clone()),
        };
        if let Some(target) = &target {
            check_users(target, &config.plugin_users(name))?;
        }
        let swap = self.registry.activate(name, hash)?;
        tracing::info!(plugin = %name, from = %short(&live.hash), to = %short(&swap.live.hash), "plugin rolled back");
        // The plugins directory follows: a restart serves what is live now.
        if swap.live.source == PluginSource::Stock {
            self.unpersist(name);
        } else {
            self.persist(&swap.live);
        }
        Ok(swap)
    }

    /// Ends the probation of new live versions that made `policy.calls`
    /// calls: one whose error rate exceeds `policy.max_error_rate` is
    /// replaced by the version it replaced. Returns the rollbacks done.
    pub fn check_probation(&self, policy: &crate::config::AutoRollbackConfig) -> Vec<RolledBack> {
        let _one_at_a_time = self.lock.lock();
        let mut done = Vec::new();
        let mut probation = self.probation.lock();
        probation.retain(|name, (from, version)| {
            let Some(live) = self.registry.get(name).filter(|l| l.hash == version.hash) else {
                return false; // replaced or removed meanwhile
            };
            // The live build: the quick one, or the optimized one that took
            // over its counters.
            let version = &live;
            let calls = version.stats.calls.load(std::sync::atomic::Ordering::Relaxed);
            if calls < policy.calls.max(1) {
                return true;
            }
            let errors = version.stats.errors.load(std::sync::atomic::Ordering::Relaxed);
            let rate = errors as f64 / calls as f64;
            if rate <= policy.max_error_rate {
                return false;
            }
            match self.registry.activate(name, Some(from.as_str())) {
                Ok(swap) => {
                    tracing::error!(plugin = %name, from = %short(&version.hash), to = %short(&swap.live.hash), calls, errors, "new plugin version fails too often: rolled back");
                    if swap.live.source == PluginSource::Stock {
                        self.unpersist(name);
                    } else {
                        self.persist(&swap.live);
                    }
                    done.push(RolledBack {
                        name: name.clone(),
                        from: version.hash.clone(),
                        to: swap.live.hash.clone(),
                        calls,
                        errors,
                    });
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "automatic rollback impossible");
                }
            }
            false
        });
        done
    }

    /// Makes the shadow version live (the config's users re-checked) and
    /// stops shadowing. The promoted version is on probation like any new one.
    pub fn promote(&self, name: &str, config: &Config) -> Result<super::Swap, LoadError> {
        let _one_at_a_time = self.lock.lock();
        let shadow = self
            .registry
            .shadow(name)
            .ok_or_else(|| PluginError::NoSuchVersion {
                name: name.to_string(),
                version: "in shadow".into(),
            })?;
        check_users(&shadow.plugin, &config.plugin_users(name))?;
        let swap = self.registry.insert_arc(shadow.plugin.clone());
        self.registry.set_shadow(name, None)?;
        if let Some(previous) = &swap.previous {
            self.probation
                .lock()
                .insert(name.to_string(), (previous.hash.clone(), swap.live.clone()));
        }
        tracing::info!(plugin = %name, hash = %short(&swap.live.hash), "shadow version promoted");
        if swap.live.tier == super::Tier::Quick {
            self.optimize_in_background(&swap.live);
        }
        self.persist(&swap.live);
        Ok(swap)
    }

    /// Forgets a plugin, refused while the config uses it.
    pub fn remove(&self, name: &str, config: &Config) -> Result<Arc<Plugin>, LoadError> {
        let _one_at_a_time = self.lock.lock();
        let users: Vec<String> = config
            .plugin_users(name)
            .into_iter()
            .map(|u| u.user)
            .collect();
        if !users.is_empty() {
            return Err(LoadError::InUse {
                name: name.to_string(),
                users,
            });
        }
        let removed = self
            .registry
            .remove(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        self.failures.lock().remove(name);
        tracing::info!(plugin = %name, hash = %short(&removed.hash), "plugin removed");
        if removed.source != PluginSource::Stock {
            self.unpersist(name);
        }
        Ok(removed)
    }
}

/// Checks every user's config against the plugin: the kind they need, the
/// plugin's JSON schema, then its `check-config`.
pub fn check_users(plugin: &Plugin, users: &[PluginUse]) -> Result<(), LoadError> {
    if users.is_empty() {
        return Ok(());
    }
    let name = &plugin.info.name;
    let schema_text = plugin.info.config_schema.trim();
    let validator = if schema_text.is_empty() {
        None
    } else {
        let schema: serde_json::Value =
            serde_json::from_str(schema_text).map_err(|e| LoadError::BadSchema {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        Some(
            jsonschema::validator_for(&schema).map_err(|e| LoadError::BadSchema {
                name: name.clone(),
                reason: e.to_string(),
            })?,
        )
    };
    for user in users {
        let fail = |reason: String| LoadError::User {
            name: name.clone(),
            user: user.user.clone(),
            reason,
        };
        if user.kind != plugin.info.kind {
            return Err(fail(format!(
                "it needs a {}, this version is a {}",
                user.kind, plugin.info.kind
            )));
        }
        if let Some(validator) = &validator
            && let Err(e) = validator.validate(&user.config)
        {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            return Err(fail(format!(
                "config at `{at}` fails the plugin's schema: {e}"
            )));
        }
        plugin
            .check_config(&user.config.to_string())
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
