//! Plugin runtime: loads WebAssembly components (stock ones embedded in the
//! binary, or files), checks which world they implement, and runs every call
//! in a fresh sandboxed instance under a deadline and a memory cap.
//!
//! A trapping, looping or memory-hungry plugin fails only its own call: the
//! error is returned to the caller, counted in the plugin's stats, and the
//! host keeps serving. Plugins get an empty WASI context (no files, no
//! environment, no arguments, no network, a frozen clock); their stdout and
//! stderr are captured into the log.
//!
//! Never imports rules, route or notify: callers hand plain values in and get
//! plain values out.

pub mod bindings;
pub mod engine;
mod host;
pub mod stock;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use bindings::composite::CompositePre;
use bindings::detector::DetectorPre;
use bindings::notifier::NotifierPre;
use bindings::types;
pub use engine::{EngineSettings, PluginEngine};
use host::CallState;
pub use host::{HttpCapability, SmtpCapability};

// The notifiers' network sandbox: what the `http` capability may reach.
pub mod netguard;
pub use host::MAX_REDIRECTS;
pub use netguard::NetPolicy;

/// Errors while loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin engine: {0}")]
    Engine(String),
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot compile plugin: {0}")]
    Compile(String),
    #[error(
        "plugin `{name}` does not implement a supported world (klaxon:plugin@0.1 detector, composite or notifier): {reason}"
    )]
    UnsupportedWorld { name: String, reason: String },
    #[error("plugin `{name}`: info() failed: {reason}")]
    Info { name: String, reason: String },
    #[error("plugin `{name}` calls itself `{reported}` in info(); rename the file or the plugin")]
    NameMismatch { name: String, reported: String },
    #[error("no plugin named `{0}` is loaded")]
    NotFound(String),
    #[error("plugin `{name}` is a {actual}, not a {expected}")]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    #[error("plugin `{name}` rejects its config: {reason}")]
    BadConfig { name: String, reason: String },
}

/// Why one plugin call failed. The call's caller records it; nothing else fails.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallError {
    #[error("timed out after {0:?} (plugin deadline)")]
    Timeout(Duration),
    #[error("memory limit of {0} bytes exceeded")]
    MemoryLimit(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("plugin returned an error: {0}")]
    Plugin(String),
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("plugin is a {0}, this call needs another kind")]
    WrongKind(PluginKind),
}

/// The three kinds of plugin (one WIT world each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Detector,
    Composite,
    Notifier,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Detector => "detector",
            Self::Composite => "composite",
            Self::Notifier => "notifier",
        })
    }
}

/// Per-plugin sandbox limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Wall-clock deadline of one call (epoch interruption).
    #[serde(with = "crate::duration::serde_str")]
    pub timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory_bytes: u64,
    /// Longest string a plugin may return (summary, annotation), in bytes.
    pub max_string_bytes: usize,
    /// Log lines (and captured stdout/stderr lines) kept per call.
    pub max_log_lines: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_string_bytes: 16 << 10,
            max_log_lines: 100,
        }
    }
}

/// What `info()` said about the plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub description: String,
    pub config_schema: String,
}

/// Where a plugin came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PluginSource {
    /// Embedded in the binary.
    Stock,
    /// Loaded from a component file.
    File(PathBuf),
}

/// Call counters for one plugin version.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub total_call_micros: AtomicU64,
}

/// A snapshot of `PluginStats`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatsSnapshot {
    pub calls: u64,
    pub errors: u64,
    pub traps: u64,
    pub timeouts: u64,
    pub mean_call_micros: f64,
}

enum Runner {
    Detector(DetectorPre<CallState>),
    Composite(CompositePre<CallState>),
    Notifier(NotifierPre<CallState>),
}

/// One loaded plugin version, ready to be called from any thread.
pub struct Plugin {
    pub info: PluginInfo,
    /// SHA-256 of the component bytes: the version's identity.
    pub hash: String,
    pub source: PluginSource,
    pub limits: PluginLimits,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub stats: PluginStats,
    engine: Engine,
    runner: Runner,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("kind", &self.info.kind)
            .field("hash", &self.hash)
            .finish()
    }
}

impl Plugin {
    /// Compiles (or loads from cache) and checks a component. When `expected`
    /// is given (the name config refers to it by), `info().name` must agree;
    /// otherwise the plugin is known by the name it reports.
    pub fn load(
        engine: &PluginEngine,
        expected: Option<&str>,
        bytes: &[u8],
        source: PluginSource,
        limits: PluginLimits,
    ) -> Result<Self, PluginError> {
        let label = expected.unwrap_or("(unnamed)");
        let (component, hash) = engine.compile(bytes)?;
        let runner = link(engine.engine(), label, &component)?;
        let mut plugin = Plugin {
            info: PluginInfo {
                name: label.to_string(),
                version: String::new(),
                kind: runner.kind(),
                description: String::new(),
                config_schema: String::new(),
            },
            hash,
            source,
            limits,
            loaded_at: chrono::Utc::now(),
            stats: PluginStats::default(),
            engine: engine.engine().clone(),
            runner,
        };
        let info = plugin.call_info().map_err(|e| PluginError::Info {
            name: label.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(name) = expected
            && info.name != name
        {
            return Err(PluginError::NameMismatch {
                name: name.to_string(),
                reported: info.name,
            });
        }
        if info.kind != plugin.info.kind {
            return Err(PluginError::UnsupportedWorld {
                name: info.name.clone(),
                reason: format!(
                    "info() says {} but the component exports the {} world",
                    info.kind, plugin.info.kind
                ),
            });
        }
        plugin.info = info;
        // Counters start with the first real call, not the load probe.
        plugin.stats = PluginStats::default();
        Ok(plugin)
    }

    /// Reads a component file and loads it under the name it reports.
    pub fn load_file(
        engine: &PluginEngine,
        path: &Path,
        limits: PluginLimits,
    ) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load(
            engine,
            None,
            &bytes,
            PluginSource::File(path.to_path_buf()),
            limits,
        )
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// A snapshot of the call counters.
    pub fn stats(&self) -> PluginStatsSnapshot {
        let calls = self.stats.calls.load(Ordering::Relaxed);
        let micros = self.stats.total_call_micros.load(Ordering::Relaxed);
        PluginStatsSnapshot {
            calls,
            errors: self.stats.errors.load(Ordering::Relaxed),
            traps: self.stats.traps.load(Ordering::Relaxed),
            timeouts: self.stats.timeouts.load(Ordering::Relaxed),
            mean_call_micros: if calls == 0 {
                0.0
            } else {
                micros as f64 / calls as f64
            },
        }
    }

    fn new_store(&self, caps: Capabilities, extra_time: Duration) -> Store<CallState> {
        let state = CallState::new(self.info.name.clone(), &self.limits, caps.http, caps.smtp);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.timeout + extra_time).as_millis() as u64
            / engine::EPOCH_TICK.as_millis().max(1) as u64;
        store.set_epoch_deadline(ticks.max(1));
        store.epoch_deadline_trap();
        store
    }

    /// Runs `f` in a fresh instance, classifying failures and updating stats.
    fn with_call<R>(
        &self,
        caps: Capabilities,
        extra_time: Duration,
        f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let start = Instant::now();
        let mut store = self.new_store(caps, extra_time);
        let result = f(&mut store);
        store.data_mut().flush_stdio();
        let elapsed = start.elapsed();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .total_call_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        result.map_err(|err| {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            let classified = if store.data().limiter.denied {
                CallError::MemoryLimit(self.limits.memory_bytes)
            } else {
                match err.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        CallError::Timeout(self.limits.timeout + extra_time)
                    }
                    Some(trap) => CallError::Trap(trap.to_string()),
                    None => CallError::Trap(format!("{err:#}")),
                }
            };
            if matches!(classified, CallError::Trap(_) | CallError::MemoryLimit(_)) {
                self.stats.traps.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(plugin = %self.info.name, version = %short(&self.hash), error = %classified, "plugin call failed");
            classified
        })
    }

    fn call_info(&self) -> Result<PluginInfo, CallError> {
        let runner = &self.runner;
        let info = self.with_call(
            Capabilities::default(),
            Duration::ZERO,
            |store| match runner {
                Runner::Detector(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
                Runner::Composite(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
                Runner::Notifier(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
            },
        )?;
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            kind: match info.kind {
                types::PluginKind::Detector => PluginKind::Detector,
                types::PluginKind::Composite => PluginKind::Composite,
                types::PluginKind::Notifier => PluginKind::Notifier,
            },
            description: info.description,
            config_schema: info.config_schema,
        })
    }

    /// Asks the plugin whether `config` (JSON text) is acceptable.
    pub fn check_config(&self, config: &str) -> Result<(), PluginError> {
        let runner = &self.runner;
        let result = self.with_call(
            Capabilities::default(),
            Duration::ZERO,
            |store| match runner {
                Runner::Detector(pre) => pre
                    .instantiate(&mut *store)?
                    .call_check_config(&mut *store, config),
                Runner::Composite(pre) => pre
                    .instantiate(&mut *store)?
                    .call_check_config(&mut *store, config),
                Runner::Notifier(pre) => pre
                    .instantiate(&mut *store)?
                    .call_check_config(&mut *store, config),
            },
        );
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(PluginError::BadConfig {
                name: self.info.name.clone(),
                reason,
            }),
            Err(e) => Err(PluginError::BadConfig {
                name: self.info.name.clone(),
                reason: format!("check-config failed: {e}"),
            }),
        }
    }

    /// Judges a batch. Returns exactly one output per input series.
    pub fn evaluate(
        &self,
        config: &str,
        batch: &types::Batch,
    ) -> Result<Vec<types::SeriesOutput>, CallError> {
        let Runner::Detector(pre) = &self.runner else {
            return Err(CallError::WrongKind(self.info.kind));
        };
        let result = self.with_call(Capabilities::default(), Duration::ZERO, |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance.call_evaluate(&mut *store, config, batch)
        })?;
        let outputs = result.map_err(|e| {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            CallError::Plugin(e)
        })?;
        if outputs.len() != batch.series.len() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::InvalidOutput(format!(
                "{} verdicts for {} series",
                outputs.len(),
                batch.series.len()
            )));
        }
        for out in &outputs {
            self.check_verdict(&out.verdict)?;
        }
        Ok(outputs)
    }

    /// Evaluates a composite over signal groups. One output per group.
    pub fn evaluate_composite(
        &self,
        config: &str,
        groups: &[types::SignalGroup],
    ) -> Result<Vec<types::SeriesOutput>, CallError> {
        let Runner::Composite(pre) = &self.runner else {
            return Err(CallError::WrongKind(self.info.kind));
        };
        let result = self.with_call(Capabilities::default(), Duration::ZERO, |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance.call_evaluate(&mut *store, config, groups)
        })?;
        let outputs = result.map_err(CallError::Plugin)?;
        if outputs.len() != groups.len() {
            return Err(CallError::InvalidOutput(format!(
                "{} verdicts for {} groups",
                outputs.len(),
                groups.len()
            )));
        }
        for out in &outputs {
            self.check_verdict(&out.verdict)?;
        }
        Ok(outputs)
    }

    /// Delivers a notification. `http` is the receiver's capability; the
    /// deadline is the plugin's timeout plus the capability's request budget.
    /// The plugin gets no `smtp`; see [`Plugin::send_with`].
    pub fn send(
        &self,
        config: &str,
        notification: &types::Notification,
        http: Arc<HttpCapability>,
    ) -> Result<Result<types::Delivery, types::DeliveryError>, CallError> {
        self.send_with(config, notification, http, None)
    }

    /// Like [`Plugin::send`], with the integration's `smtp` capability too;
    /// the deadline then also covers the SMTP budget.
    pub fn send_with(
        &self,
        config: &str,
        notification: &types::Notification,
        http: Arc<HttpCapability>,
        smtp: Option<Arc<SmtpCapability>>,
    ) -> Result<Result<types::Delivery, types::DeliveryError>, CallError> {
        let Runner::Notifier(pre) = &self.runner else {
            return Err(CallError::WrongKind(self.info.kind));
        };
        let budget = http.call_budget() + smtp.as_ref().map_or(Duration::ZERO, |s| s.call_budget());
        let caps = Capabilities {
            http: Some(http),
            smtp,
        };
        self.with_call(caps, budget, |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance.call_send(&mut *store, config, notification)
        })
    }

    fn check_verdict(&self, v: &types::Verdict) -> Result<(), CallError> {
        let max = self.limits.max_string_bytes;
        let too_long = v.summary.len() > max
            || v.annotations.len() > 64
            || v.annotations
                .iter()
                .any(|l| l.name.len() > max || l.value.len() > max);
        if too_long {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::InvalidOutput(format!(
                "verdict strings exceed {max} bytes or more than 64 annotations"
            )));
        }
        Ok(())
    }
}

/// The outbound capabilities one call gets (none for detectors, composites,
/// `info` and `check-config`).
#[derive(Default)]
struct Capabilities {
    http: Option<Arc<HttpCapability>>,
    smtp: Option<Arc<SmtpCapability>>,
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

impl Runner {
    fn kind(&self) -> PluginKind {
        match self {
            Runner::Detector(_) => PluginKind::Detector,
            Runner::Composite(_) => PluginKind::Composite,
            Runner::Notifier(_) => PluginKind::Notifier,
        }
    }
}

/// Decides the world by the component's exports, then links it against a
/// linker offering exactly that world's imports (detectors and composites get
/// no `http`), so a component importing more is refused here, naming the import.
fn link(engine: &Engine, name: &str, component: &Component) -> Result<Runner, PluginError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(n, _)| n.to_string())
        .collect();
    let unsupported = |reason: String| PluginError::UnsupportedWorld {
        name: name.to_string(),
        reason,
    };
    let has = |n: &str| exports.iter().any(|e| e == n);
    if has("send") {
        let mut linker: Linker<CallState> = Linker::new(engine);
        host::add_base_imports(&mut linker).map_err(|e| unsupported(format!("{e:#}")))?;
        bindings::notifier::Notifier::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| unsupported(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| unsupported(format!("{e:#}")))?;
        return NotifierPre::new(pre)
            .map(Runner::Notifier)
            .map_err(|e| unsupported(format!("{e:#}")));
    }
    let mut linker: Linker<CallState> = Linker::new(engine);
    host::add_base_imports(&mut linker).map_err(|e| unsupported(format!("{e:#}")))?;
    bindings::detector::Detector::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
        &mut linker,
        |s| s,
    )
    .map_err(|e| unsupported(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| unsupported(format!("{e:#}")))?;
    if !has("evaluate") {
        return Err(unsupported(format!(
            "exports {exports:?}; expected `evaluate` or `send`"
        )));
    }
    // Detector and composite both export `evaluate`; their parameter types differ.
    match DetectorPre::new(pre.clone()) {
        Ok(p) => Ok(Runner::Detector(p)),
        Err(detector_err) => {
            CompositePre::new(pre)
                .map(Runner::Composite)
                .map_err(|composite_err| {
                    unsupported(format!(
                        "not a detector ({detector_err:#}) nor a composite ({composite_err:#})"
                    ))
                })
        }
    }
}

/// The plugins the host knows, by name. Lookups are cheap and lock-free for
/// readers in practice (a read lock held for a map lookup).
#[derive(Default)]
pub struct PluginRegistry {
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a plugin; returns the previous version, if any.
    pub fn insert(&self, plugin: Plugin) -> Option<Arc<Plugin>> {
        self.plugins
            .write()
            .insert(plugin.info.name.clone(), Arc::new(plugin))
    }

    /// The live version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.read().get(name).cloned()
    }

    /// The live version of a plugin, checked to be of the given kind.
    pub fn get_kind(&self, name: &str, kind: PluginKind) -> Result<Arc<Plugin>, PluginError> {
        let plugin = self
            .get(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        if plugin.info.kind != kind {
            return Err(PluginError::WrongKind {
                name: name.to_string(),
                expected: kind,
                actual: plugin.info.kind,
            });
        }
        Ok(plugin)
    }

    /// Every loaded plugin, sorted by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.plugins.read().values().cloned().collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// Loads the stock plugins embedded in the binary.
    pub fn load_stock(
        &self,
        engine: &PluginEngine,
        limits: &PluginLimits,
    ) -> Result<(), PluginError> {
        for (name, bytes) in stock::STOCK {
            let plugin = Plugin::load(
                engine,
                Some(name),
                bytes,
                PluginSource::Stock,
                limits.clone(),
            )?;
            tracing::info!(plugin = name, kind = %plugin.info.kind, version = %plugin.info.version, hash = %short(&plugin.hash), "loaded stock plugin");
            self.insert(plugin);
        }
        Ok(())
    }
}
