//! Plugin runtime: loads WebAssembly components (stock ones embedded in the
//! binary, or files), checks which world they implement, and runs every call
//! in a fresh sandboxed instance under a deadline and a memory cap.
//!
//! Detector and composite calls are synchronous (callers run them on a
//! blocking thread). Notifier calls are asynchronous ([`Plugin::send_with`]
//! is an `async fn`): the instance runs on a wasmtime fiber, its `http` and
//! `smtp` imports await the network on the caller's runtime, and a guest
//! computing for long yields to the runtime every epoch tick, so a delivery
//! needs no thread of its own and no hand-off between threads. Their load
//! probes (`info`, `check-config`) drive the same async calls to completion
//! in place (they get no network, so they never wait).
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
pub mod lifecycle;
pub mod manifest;
pub mod shadow;
pub mod signing;
pub mod stock;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use bindings::batch_notifier::BatchNotifierPre;
pub use bindings::borrowed;
use bindings::composite::CompositePre;
use bindings::detector::DetectorPre;
use bindings::notifier::NotifierPre;
use bindings::types;
pub use engine::{EngineSettings, PluginEngine, Tier};
use host::{CallState, Deadline};
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
    #[error("plugin `{name}` has no kept version {version}")]
    NoSuchVersion { name: String, version: String },
    #[error("plugin `{name}` is a {actual}, not a {expected}")]
    WrongKind {
        name: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    #[error("plugin `{name}` rejects its config: {reason}")]
    BadConfig { name: String, reason: String },
    #[error(
        "plugin `{name}` was built for {package}@{found}; this host implements {package}@{host} (needs the same major version and a minor version ≤ {host_minor})"
    )]
    IncompatibleWit {
        name: String,
        package: String,
        found: String,
        host: String,
        host_minor: u64,
    },
}

/// The WIT package every plugin world belongs to.
pub const WIT_PACKAGE: &str = "klaxon:plugin";

/// The version of [`WIT_PACKAGE`] this host implements (`wit/klaxon.wit`).
pub const WIT_VERSION: &str = "0.1.0";

/// Why one plugin call failed. The call's caller records it; nothing else fails.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallError {
    #[error("timed out after {0:?} (plugin deadline)")]
    Timeout(Duration),
    #[error("memory limit of {0} bytes exceeded")]
    MemoryLimit(u64),
    #[error("ran out of fuel (budget {0} units)")]
    OutOfFuel(u64),
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
    /// A deterministic budget per call, in Wasm fuel units (about one per
    /// instruction), beside the wall-clock deadline: the same input always
    /// stops at the same point, whatever the machine's load. Unset: no budget.
    /// Setting it anywhere turns fuel metering on for the whole engine (a few
    /// per cent slower calls), so it is read at start only.
    pub fuel: Option<u64>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_string_bytes: 16 << 10,
            max_log_lines: 100,
            fuel: None,
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
    /// Uploaded through `PUT /api/v1/plugins/NAME`.
    Upload,
}

/// Call counters for one plugin version.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub total_call_micros: AtomicU64,
    /// Largest linear memory any call of this version grew to, in bytes.
    pub peak_memory_bytes: AtomicU64,
    /// Call durations, for percentiles.
    pub call_times: CallTimes,
}

impl PluginStats {
    /// Adds `other`'s counts to these (a version's optimized build takes
    /// over the counts of its quick build).
    pub fn absorb(&self, other: &PluginStats) {
        for (mine, theirs) in [
            (&self.calls, &other.calls),
            (&self.errors, &other.errors),
            (&self.traps, &other.traps),
            (&self.timeouts, &other.timeouts),
            (&self.total_call_micros, &other.total_call_micros),
        ] {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.peak_memory_bytes.fetch_max(
            other.peak_memory_bytes.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        for (mine, theirs) in self
            .call_times
            .buckets
            .iter()
            .zip(&other.call_times.buckets)
        {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Buckets of call durations in microseconds: four equal sub-buckets per
/// power of two, so a percentile is known to within 25 %.
#[derive(Debug)]
pub struct CallTimes {
    buckets: [AtomicU64; CALL_TIME_BUCKETS],
}

const CALL_TIME_BUCKETS: usize = 128;

impl Default for CallTimes {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl CallTimes {
    fn bucket(micros: u64) -> usize {
        if micros == 0 {
            return 0;
        }
        // 4 * log2(micros), from the integer log and the next two bits.
        let log = 63 - u64::from(micros.leading_zeros());
        let frac = if log >= 2 {
            (micros >> (log - 2)) & 0b11
        } else {
            (micros << (2 - log)) & 0b11
        };
        ((log * 4 + frac) as usize).min(CALL_TIME_BUCKETS - 1)
    }

    /// Counts one call.
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q`-quantile (0..=1) in microseconds: the upper bound of the
    /// bucket holding it; 0 without calls.
    pub fn quantile_micros(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper_bound(i);
            }
        }
        Self::upper_bound(CALL_TIME_BUCKETS - 1)
    }

    /// The exclusive upper bound of bucket `i`, in microseconds.
    fn upper_bound(i: usize) -> f64 {
        let (log, frac) = (i / 4, i % 4);
        (5 + frac) as f64 * 2f64.powi(log as i32) / 4.0
    }
}

/// A snapshot of `PluginStats`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatsSnapshot {
    pub calls: u64,
    pub errors: u64,
    pub traps: u64,
    pub timeouts: u64,
    pub mean_call_micros: f64,
    /// Median call time (its bucket's upper bound, within 25 %).
    pub p50_call_micros: f64,
    /// 99th percentile call time (its bucket's upper bound, within 25 %).
    pub p99_call_micros: f64,
    pub peak_memory_bytes: u64,
}

enum Runner {
    Detector(DetectorPre<CallState>),
    Composite(CompositePre<CallState>),
    /// The `notifier` world's bindings, and the `batch-notifier` world's
    /// when the component exports `send-batch` too.
    Notifier(NotifierPre<CallState>, Option<BatchNotifierPre<CallState>>),
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
    /// The component as loaded (what `export` writes and rollback re-checks).
    pub bytes: bytes::Bytes,
    /// The compiled component came from the disk cache (no compile).
    pub from_cache: bool,
    /// Which compiler built the running code.
    pub tier: Tier,
    /// Hosts this version may reach (notifiers; its `NAME.toml`'s
    /// `allowed_hosts`), beside those of each receiver's config.
    pub allowed_hosts: Vec<String>,
    /// The detached signature it was offered with, kept so the version can
    /// be written back to the plugins directory as it came.
    pub signature: Option<String>,
    engine: Engine,
    /// The engine meters fuel: every call's store gets a budget.
    fuel_metered: bool,
    /// Advances `engine`'s epoch while a call of this plugin runs.
    ticker: Arc<engine::Ticker>,
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
        Self::load_bytes(
            engine,
            expected,
            bytes::Bytes::copy_from_slice(bytes),
            source,
            limits,
        )
    }

    /// Like [`Plugin::load`], keeping `bytes` without a copy (stock plugins
    /// pass `Bytes::from_static`).
    pub fn load_bytes(
        engine: &PluginEngine,
        expected: Option<&str>,
        bytes: bytes::Bytes,
        source: PluginSource,
        limits: PluginLimits,
    ) -> Result<Self, PluginError> {
        Self::load_tiered(engine, expected, bytes, source, limits, false)
    }

    /// Like [`Plugin::load_bytes`]; with `quick`, a component not in the
    /// disk cache is compiled by the baseline compiler (see
    /// [`PluginEngine::compile_quick`]) and runs on the quick engine until
    /// [`PluginRegistry::upgrade`] replaces it with its optimized build.
    pub fn load_tiered(
        engine: &PluginEngine,
        expected: Option<&str>,
        bytes: bytes::Bytes,
        source: PluginSource,
        limits: PluginLimits,
        quick: bool,
    ) -> Result<Self, PluginError> {
        let label = expected.unwrap_or("(unnamed)");
        if limits.fuel.is_some() && !engine.settings().consume_fuel {
            return Err(PluginError::Engine(format!(
                "plugin `{label}`: a fuel budget needs fuel metering, which is chosen when Klaxon starts; restart to apply it"
            )));
        }
        let (component, hash, from_cache, tier) = if quick {
            engine.compile_quick(&bytes)?
        } else {
            let (c, h, cached) = engine.compile_cached(&bytes)?;
            (c, h, cached, Tier::Optimized)
        };
        let wasm_engine = match tier {
            Tier::Quick => engine.quick_engine().unwrap_or(engine.engine()),
            Tier::Optimized => engine.engine(),
        };
        check_wit_version(wasm_engine, label, &component)?;
        let runner = link(wasm_engine, label, &component)?;
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
            bytes,
            from_cache,
            tier,
            allowed_hosts: Vec::new(),
            signature: None,
            engine: wasm_engine.clone(),
            ticker: engine.ticker().clone(),
            fuel_metered: engine.settings().consume_fuel,
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
        Self::load_bytes(
            engine,
            None,
            bytes.into(),
            PluginSource::File(path.to_path_buf()),
            limits,
        )
    }

    /// Zeroes the call counters (after the load pipeline's own calls).
    pub fn reset_stats(&self) {
        let s = &self.stats;
        for c in [
            &s.calls,
            &s.errors,
            &s.traps,
            &s.timeouts,
            &s.total_call_micros,
            &s.peak_memory_bytes,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for b in &s.call_times.buckets {
            b.store(0, Ordering::Relaxed);
        }
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
            p50_call_micros: self.stats.call_times.quantile_micros(0.5),
            p99_call_micros: self.stats.call_times.quantile_micros(0.99),
            peak_memory_bytes: self.stats.peak_memory_bytes.load(Ordering::Relaxed),
        }
    }

    /// A store for one call with these capabilities: the plugin's memory
    /// limit, and the epoch ticking while it lives. Deadline and fuel are
    /// the caller's.
    fn store_with(&self, caps: Capabilities) -> Store<CallState> {
        let state = CallState::new(
            self.info.name.clone(),
            &self.limits,
            caps.http,
            caps.smtp,
            self.ticker.ticking(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    fn new_store(&self, caps: Capabilities, extra_time: Duration) -> Store<CallState> {
        let mut store = self.store_with(caps);
        // Whole ticks, rounded up: the tick under way when the store is
        // made ends early, so a call gets its time to within a tick.
        let tick = engine::EPOCH_TICK.as_micros().max(1);
        let allowed = (self.limits.timeout + extra_time).as_micros();
        let ticks = u64::try_from(allowed.div_ceil(tick)).unwrap_or(u64::MAX);
        store.set_epoch_deadline(ticks.max(1));
        store.epoch_deadline_trap();
        self.meter_fuel(&mut store);
        store
    }

    /// A store for an async call (notifiers' `send`): the guest yields to
    /// the runtime at every epoch tick while it computes, and traps
    /// ([`Trap::Interrupt`], a timeout) once the call's wall-clock deadline
    /// has passed, as the synchronous stores' epoch deadline does. Time
    /// spent awaiting the network counts towards the deadline.
    fn new_async_store(&self, caps: Capabilities, extra_time: Duration) -> Store<CallState> {
        let mut store = self.store_with(caps);
        let allowed = self.limits.timeout + extra_time;
        store.data_mut().deadline = Deadline {
            at: Instant::now() + allowed,
            step: allowed,
        };
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if Instant::now() >= ctx.data().deadline.at {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                // tokio's own yield: the task goes behind the others
                // ready to run (a plain self-wake could be polled again
                // first and starve them).
                Ok(wasmtime::UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        self.meter_fuel(&mut store);
        store
    }

    /// A store for a notifier call with these capabilities and one
    /// notification's deadline; also returns the network budget that
    /// deadline adds to the plugin's timeout.
    fn notifier_store(
        &self,
        http: Arc<HttpCapability>,
        smtp: Option<Arc<SmtpCapability>>,
    ) -> (Store<CallState>, Duration) {
        let budget = http.call_budget() + smtp.as_ref().map_or(Duration::ZERO, |s| s.call_budget());
        let caps = Capabilities {
            http: Some(http),
            smtp,
        };
        (self.new_async_store(caps, budget), budget)
    }

    fn meter_fuel(&self, store: &mut Store<CallState>) {
        if self.fuel_metered {
            // Every store of a metering engine needs fuel: no budget is the
            // most there is.
            if let Err(e) = store.set_fuel(self.limits.fuel.unwrap_or(u64::MAX)) {
                tracing::error!(plugin = %self.info.name, error = %e, "cannot set the call's fuel");
            }
        }
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
        self.finish_call(start, store, extra_time, result)
    }

    /// Records a finished call in the stats and classifies its failure.
    fn finish_call<R>(
        &self,
        start: Instant,
        mut store: Store<CallState>,
        extra_time: Duration,
        result: wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        store.data_mut().flush_stdio();
        let elapsed = start.elapsed();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .total_call_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.stats.call_times.record(elapsed);
        self.stats
            .peak_memory_bytes
            .fetch_max(store.data().limiter.peak_bytes, Ordering::Relaxed);
        result.map_err(|err| {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            let classified = if store.data().limiter.denied {
                CallError::MemoryLimit(self.limits.memory_bytes)
            } else {
                match err.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => CallError::OutOfFuel(self.limits.fuel.unwrap_or(0)),
                    Some(Trap::Interrupt) => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        CallError::Timeout(self.limits.timeout + extra_time)
                    }
                    Some(trap) => CallError::Trap(trap.to_string()),
                    None => CallError::Trap(format!("{err:#}")),
                }
            };
            if matches!(
                classified,
                CallError::Trap(_) | CallError::MemoryLimit(_) | CallError::OutOfFuel(_)
            ) {
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
                Runner::Notifier(pre, _) => futures::executor::block_on(async {
                    pre.instantiate_async(&mut *store)
                        .await?
                        .call_info(&mut *store)
                        .await
                }),
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
                Runner::Notifier(pre, _) => futures::executor::block_on(async {
                    pre.instantiate_async(&mut *store)
                        .await?
                        .call_check_config(&mut *store, config)
                        .await
                }),
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

    /// Delivers a notification. `http` is the receiver's capability;
    /// `smtp`, for integrations that send mail, the SMTP one. The deadline
    /// is the plugin's timeout plus the capabilities' budgets. Runs on the
    /// caller's tokio runtime (the network calls await on it); see the
    /// module docs.
    pub async fn send_with(
        &self,
        config: &str,
        notification: &borrowed::Notification<'_>,
        http: Arc<HttpCapability>,
        smtp: Option<Arc<SmtpCapability>>,
    ) -> Result<Result<types::Delivery, types::DeliveryError>, CallError> {
        let Runner::Notifier(pre, _) = &self.runner else {
            return Err(CallError::WrongKind(self.info.kind));
        };
        let start = Instant::now();
        let (mut store, budget) = self.notifier_store(http, smtp);
        let result = async {
            let instance = pre.instance_pre().instantiate_async(&mut store).await?;
            let send = instance.get_typed_func::<
                (&str, &borrowed::Notification<'_>),
                (Result<types::Delivery, types::DeliveryError>,),
            >(&mut store, "send")?;
            Ok::<_, wasmtime::Error>(send.call_async(&mut store, (config, notification)).await?.0)
        }
        .await;
        self.finish_call(start, store, budget, result)
    }

    /// Whether [`Plugin::send_batch_with`] delivers several notifications in
    /// one call (the component exports `send-batch`).
    pub fn sends_batches(&self) -> bool {
        matches!(self.runner, Runner::Notifier(_, Some(_)))
    }

    /// Delivers `notifications` in one instance through `send-batch`. The
    /// call's quotas of requests, messages and log lines are those of one
    /// notification, times their number; its deadline is one
    /// notification's, started again each time the plugin first reports a
    /// notification's outcome, so a plugin stuck on one is stopped as soon
    /// as a lone call would be. When the call fails (trap, deadline, a
    /// wrong number of results), the outcomes the plugin reported before
    /// failing (`batch.report`) are kept in [`BatchOutcome::reported`]; the
    /// caller sends the others on their own, so one bad notification fails
    /// alone and none reported goes out twice.
    pub async fn send_batch_with(
        &self,
        config: &str,
        notifications: &[borrowed::Notification<'_>],
        http: Arc<HttpCapability>,
        smtp: Option<Arc<SmtpCapability>>,
    ) -> BatchOutcome {
        let Runner::Notifier(_, Some(pre)) = &self.runner else {
            return BatchOutcome {
                reported: vec![None; notifications.len()],
                error: Some(CallError::WrongKind(self.info.kind)),
            };
        };
        let n = u32::try_from(notifications.len())
            .unwrap_or(u32::MAX)
            .max(1);
        let start = Instant::now();
        // One notification's deadline, started again at each notification
        // the plugin reports (see `host::Deadline`).
        let (mut store, budget) = self.notifier_store(http, smtp);
        store.data_mut().set_notifications(n);
        let result = async {
            let instance = pre.instance_pre().instantiate_async(&mut store).await?;
            let send_batch = instance.get_typed_func::<
                (&str, &[borrowed::Notification<'_>]),
                (Vec<Result<types::Delivery, types::DeliveryError>>,),
            >(&mut store, "send-batch")?;
            Ok::<_, wasmtime::Error>(
                send_batch
                    .call_async(&mut store, (config, notifications))
                    .await?
                    .0,
            )
        }
        .await;
        let mut reported = std::mem::take(&mut store.data_mut().batch_reports);
        reported.resize(notifications.len(), None);
        match self.finish_call(start, store, budget, result) {
            Ok(results) if results.len() == notifications.len() => BatchOutcome {
                reported: results.into_iter().map(Some).collect(),
                error: None,
            },
            Ok(results) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                BatchOutcome {
                    reported,
                    error: Some(CallError::InvalidOutput(format!(
                        "{} results for {} notifications",
                        results.len(),
                        notifications.len()
                    ))),
                }
            }
            Err(e) => BatchOutcome {
                reported,
                error: Some(e),
            },
        }
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

/// What a `send-batch` call made of its notifications.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Each notification's outcome, in order: all of them when the call
    /// succeeded; when it failed, those the plugin reported before failing.
    pub reported: Vec<Option<Result<types::Delivery, types::DeliveryError>>>,
    /// Why the call failed, if it did.
    pub error: Option<CallError>,
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
            Runner::Notifier(..) => PluginKind::Notifier,
        }
    }
}

/// Decides the world by the component's exports, then links it against a
/// linker offering exactly that world's imports (detectors and composites get
/// no `http`), so a component importing more is refused here, naming the import.
/// Interfaces a detector or composite may not import (prefixes of import names).
const NETWORK_IMPORTS: &[&str] = &[
    "wasi:sockets/",
    "wasi:http/",
    "klaxon:plugin/http",
    "klaxon:plugin/smtp",
];

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
    if !has("send") {
        // Detectors and composites are pure compute: WASI's sockets and any
        // HTTP or mail interface are not theirs to import, whatever the
        // sandbox would do with the calls.
        if let Some(import) = component
            .component_type()
            .imports(engine)
            .map(|(n, _)| n)
            .find(|n| NETWORK_IMPORTS.iter().any(|p| n.starts_with(p)))
        {
            return Err(unsupported(format!(
                "imports `{import}`: detectors and composites get no network (only notifiers may use `klaxon:plugin/http` and `klaxon:plugin/smtp`)"
            )));
        }
    }
    if has("send") {
        let mut linker: Linker<CallState> = Linker::new(engine);
        host::add_base_imports_async(&mut linker).map_err(|e| unsupported(format!("{e:#}")))?;
        bindings::notifier::Notifier::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| unsupported(format!("{e:#}")))?;
        // The batch-notifier world's one import more (unused by plain
        // notifiers).
        bindings::batch::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| unsupported(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| unsupported(format!("{e:#}")))?;
        // `send-batch` is optional: without it (or with another signature)
        // every notification goes through `send`.
        let batch = has("send-batch")
            .then(|| BatchNotifierPre::new(pre.clone()))
            .and_then(|b| {
                b.map_err(|e| tracing::warn!(plugin = name, error = %format!("{e:#}"), "`send-batch` export unusable; sending one notification per call"))
                    .ok()
            });
        return NotifierPre::new(pre)
            .map(|p| Runner::Notifier(p, batch))
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

/// Refuses a component built against another version of the plugin WIT
/// package: the same major version and a minor version no newer than the
/// host's are accepted. The version is read from the component's imports of
/// `klaxon:plugin/...@X.Y.Z` interfaces (every world imports `types` and `log`).
fn check_wit_version(
    engine: &Engine,
    name: &str,
    component: &Component,
) -> Result<(), PluginError> {
    let (host_major, host_minor) = major_minor(WIT_VERSION).unwrap_or((0, 0));
    let prefix = format!("{WIT_PACKAGE}/");
    for (import, _) in component.component_type().imports(engine) {
        let Some(rest) = import.strip_prefix(&prefix) else {
            continue;
        };
        let Some((_, version)) = rest.split_once('@') else {
            continue;
        };
        let compatible = major_minor(version)
            .is_some_and(|(major, minor)| major == host_major && minor <= host_minor);
        if !compatible {
            return Err(PluginError::IncompatibleWit {
                name: name.to_string(),
                package: WIT_PACKAGE.to_string(),
                found: version.to_string(),
                host: WIT_VERSION.to_string(),
                host_minor,
            });
        }
    }
    Ok(())
}

fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// How many versions of one plugin stay loaded (warm) for rollback.
pub const KEPT_VERSIONS: usize = 16;

/// One plugin name: its live version and the versions kept warm.
struct Slot {
    live: arc_swap::ArcSwap<Plugin>,
    /// Loaded versions, oldest first, at most [`KEPT_VERSIONS`], one per hash.
    versions: parking_lot::Mutex<Vec<Arc<Plugin>>>,
    /// A candidate version judging beside the live one, without effect.
    shadow: arc_swap::ArcSwapOption<shadow::Shadow>,
}

/// A swap of the live version of a plugin.
#[derive(Debug, Clone)]
pub struct Swap {
    pub name: String,
    /// The version live before, if the name was known.
    pub previous: Option<Arc<Plugin>>,
    /// The version live now.
    pub live: Arc<Plugin>,
}

/// The plugins the host knows, by name, each with its live version (swapped
/// atomically; callers take the live version per call, so a call in flight
/// finishes on the version it started with) and earlier versions kept warm.
///
/// Stock plugins may be *offered* rather than loaded
/// ([`PluginRegistry::offer_stock`]): an offered plugin is compiled and
/// linked the first time anything asks for it by name (a rule or receiver
/// of a loaded config, an upload replacing it, the API), so a config that
/// uses three stock plugins keeps three in memory, not thirty.
#[derive(Default)]
pub struct PluginRegistry {
    plugins: RwLock<HashMap<String, Arc<Slot>>>,
    /// Stock plugins offered and not loaded yet. Held while one loads, so
    /// a plugin asked for by two threads at once loads once.
    offers: parking_lot::Mutex<Option<StockOffers>>,
}

/// The stock plugins offered to a registry and not loaded yet.
struct StockOffers {
    engine: Arc<PluginEngine>,
    waiting: HashMap<String, OfferedStock>,
}

/// One stock plugin offered and not loaded yet.
struct OfferedStock {
    bytes: &'static [u8],
    limits: PluginLimits,
    /// What `info()` said and the hash, once the API asked (see
    /// [`PluginRegistry::offered_stock`]).
    probed: Option<(PluginInfo, String)>,
}

/// A stock plugin offered and not loaded, as the API lists it.
#[derive(Debug, Clone)]
pub struct OfferedPlugin {
    pub info: PluginInfo,
    pub hash: String,
    pub limits: PluginLimits,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a version and makes it live; returns the previous live version.
    /// A version with the same hash as a kept one replaces it in the history.
    pub fn insert(&self, plugin: Plugin) -> Option<Arc<Plugin>> {
        self.insert_arc(Arc::new(plugin)).previous
    }

    /// Like [`PluginRegistry::insert`], for a shared version.
    pub fn insert_arc(&self, plugin: Arc<Plugin>) -> Swap {
        let name = plugin.info.name.clone();
        let slot = {
            let mut map = self.plugins.write();
            match map.get(&name) {
                Some(slot) => slot.clone(),
                None => {
                    map.insert(
                        name.clone(),
                        Arc::new(Slot {
                            live: arc_swap::ArcSwap::new(plugin.clone()),
                            versions: parking_lot::Mutex::new(vec![plugin.clone()]),
                            shadow: arc_swap::ArcSwapOption::empty(),
                        }),
                    );
                    return Swap {
                        name,
                        previous: None,
                        live: plugin,
                    };
                }
            }
        };
        let mut versions = slot.versions.lock();
        versions.retain(|v| v.hash != plugin.hash);
        versions.push(plugin.clone());
        if versions.len() > KEPT_VERSIONS {
            // Never drop the live version (it may be an old one after a rollback).
            let live_hash = slot.live.load().hash.clone();
            if let Some(i) = versions.iter().position(|v| v.hash != live_hash) {
                versions.remove(i);
            }
        }
        let previous = slot.live.swap(plugin.clone());
        Swap {
            name,
            previous: Some(previous),
            live: plugin,
        }
    }

    /// Replaces a quick (baseline-compiled) build with `plugin`, its
    /// optimized build of the same bytes: in the kept versions, and as the
    /// live version if it still is. The counters carry over. Returns whether
    /// the live version was replaced.
    pub fn upgrade(&self, plugin: Plugin) -> bool {
        let Some(slot) = self.plugins.read().get(&plugin.info.name).cloned() else {
            return false;
        };
        let mut versions = slot.versions.lock();
        let Some(i) = versions
            .iter()
            .position(|v| v.hash == plugin.hash && v.tier == Tier::Quick)
        else {
            return false;
        };
        let quick = versions[i].clone();
        plugin.stats.absorb(&quick.stats);
        let plugin = Arc::new(plugin);
        versions[i] = plugin.clone();
        let live = slot.live.load_full();
        if Arc::ptr_eq(&live, &quick) {
            // Compare-and-swap: a swap that happened meanwhile wins.
            let prev = slot.live.compare_and_swap(&live, plugin);
            return Arc::ptr_eq(&*prev, &live);
        }
        false
    }

    /// Makes a kept version live again (rollback). `hash` may be a unique
    /// prefix of at least 8 hex digits; `None` means the version loaded
    /// before the live one.
    pub fn activate(&self, name: &str, hash: Option<&str>) -> Result<Swap, PluginError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        let versions = slot.versions.lock();
        let live = slot.live.load_full();
        let target = match hash {
            Some(h) => {
                let matching: Vec<&Arc<Plugin>> = versions
                    .iter()
                    .filter(|v| h.len() >= 8 && v.hash.starts_with(h))
                    .collect();
                match matching.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        return Err(PluginError::NoSuchVersion {
                            name: name.to_string(),
                            version: h.to_string(),
                        });
                    }
                    _ => {
                        return Err(PluginError::NoSuchVersion {
                            name: name.to_string(),
                            version: format!("{h} (ambiguous prefix)"),
                        });
                    }
                }
            }
            None => {
                let at = versions.iter().position(|v| v.hash == live.hash);
                match at {
                    Some(i) if i > 0 => versions[i - 1].clone(),
                    _ => {
                        return Err(PluginError::NoSuchVersion {
                            name: name.to_string(),
                            version: "previous (no earlier version is kept)".into(),
                        });
                    }
                }
            }
        };
        let previous = slot.live.swap(target.clone());
        Ok(Swap {
            name: name.to_string(),
            previous: Some(previous),
            live: target,
        })
    }

    /// Runs `shadow` beside the live version of its plugin (replacing any
    /// shadow before), or stops shadowing with `None`.
    pub fn set_shadow(
        &self,
        name: &str,
        shadow: Option<Arc<shadow::Shadow>>,
    ) -> Result<Option<Arc<shadow::Shadow>>, PluginError> {
        let slot = self
            .plugins
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        Ok(slot.shadow.swap(shadow))
    }

    /// The version running in shadow of a plugin, if any.
    pub fn shadow(&self, name: &str) -> Option<Arc<shadow::Shadow>> {
        self.plugins.read().get(name)?.shadow.load_full()
    }

    /// The kept versions of a plugin, oldest first (an offered stock plugin
    /// is loaded first).
    pub fn versions(&self, name: &str) -> Option<Vec<Arc<Plugin>>> {
        let slot = self.slot(name)?;
        let versions = slot.versions.lock().clone();
        Some(versions)
    }

    /// Forgets a plugin and all its versions; returns the live one. An
    /// offered stock plugin is loaded first (the caller gets what it removed)
    /// and is no longer offered.
    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        self.slot(name)?;
        let slot = self.plugins.write().remove(name)?;
        Some(slot.live.load_full())
    }

    /// The live version of a plugin; an offered stock plugin is loaded now
    /// (blocks for its compile: call from a blocking thread when it may not
    /// be loaded yet).
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.slot(name).map(|s| s.live.load_full())
    }

    /// The live version of a plugin if it is loaded; never loads.
    pub fn get_loaded(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.read().get(name).map(|s| s.live.load_full())
    }

    /// A plugin's slot, loading an offered stock plugin on first use. A
    /// stock plugin that fails to load (it never should) is logged and
    /// stays offered.
    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        if let Some(slot) = self.plugins.read().get(name) {
            return Some(slot.clone());
        }
        match self.load_offered(name) {
            Ok(_) => self.plugins.read().get(name).cloned(),
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "stock plugin failed to load");
                None
            }
        }
    }

    /// Offers every stock plugin embedded in the binary, each to be loaded
    /// with `limits(name)` the first time it is asked for. Plugins already
    /// loaded under a stock name are not offered.
    pub fn offer_stock(&self, engine: Arc<PluginEngine>, limits: impl Fn(&str) -> PluginLimits) {
        let loaded = self.plugins.read();
        let waiting = stock::STOCK
            .iter()
            .filter(|(name, _)| !loaded.contains_key(*name))
            .map(|(name, bytes)| {
                let offered = OfferedStock {
                    bytes,
                    limits: limits(name),
                    probed: None,
                };
                (name.to_string(), offered)
            })
            .collect();
        *self.offers.lock() = Some(StockOffers { engine, waiting });
    }

    /// Loads the offered stock plugin `name` now, if it is offered and not
    /// loaded yet; returns whether it was loaded by this call.
    pub fn load_offered(&self, name: &str) -> Result<bool, PluginError> {
        let mut offers = self.offers.lock();
        let Some(offers) = offers.as_mut() else {
            return Ok(false);
        };
        // Loaded meanwhile (by the thread that held the lock), or an
        // upload of that name went live: the offer is void.
        if self.plugins.read().contains_key(name) {
            offers.waiting.remove(name);
            return Ok(false);
        }
        let Some(offered) = offers.waiting.get(name) else {
            return Ok(false);
        };
        let plugin = Plugin::load_bytes(
            &offers.engine,
            Some(name),
            bytes::Bytes::from_static(offered.bytes),
            PluginSource::Stock,
            offered.limits.clone(),
        )?;
        tracing::info!(plugin = name, kind = %plugin.info.kind, version = %plugin.info.version, hash = %short(&plugin.hash), from_cache = plugin.from_cache, "loaded stock plugin on first use");
        offers.waiting.remove(name);
        self.insert(plugin);
        Ok(true)
    }

    /// How many stock plugins are offered and not loaded.
    pub fn offered_count(&self) -> usize {
        let offers = self.offers.lock();
        let loaded = self.plugins.read();
        offers.as_ref().map_or(0, |o| {
            o.waiting
                .keys()
                .filter(|n| !loaded.contains_key(*n))
                .count()
        })
    }

    /// The stock plugins offered and not loaded, sorted by name, with what
    /// their `info()` says. The first call per plugin probes it (a quick
    /// compile, or the compile cache, and one `info()` call) and keeps only
    /// the answer, so listing does not keep every stock plugin in memory.
    pub fn offered_stock(&self) -> Vec<OfferedPlugin> {
        let mut offers = self.offers.lock();
        let Some(offers) = offers.as_mut() else {
            return Vec::new();
        };
        let loaded = self.plugins.read().keys().cloned().collect::<Vec<_>>();
        offers.waiting.retain(|name, _| !loaded.contains(name));
        let mut out = Vec::new();
        for (name, offered) in offers.waiting.iter_mut() {
            if offered.probed.is_none() {
                match Plugin::load_tiered(
                    &offers.engine,
                    Some(name),
                    bytes::Bytes::from_static(offered.bytes),
                    PluginSource::Stock,
                    offered.limits.clone(),
                    true,
                ) {
                    Ok(probe) => offered.probed = Some((probe.info.clone(), probe.hash.clone())),
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "stock plugin failed to load");
                        continue;
                    }
                }
            }
            if let Some((info, hash)) = &offered.probed {
                out.push(OfferedPlugin {
                    info: info.clone(),
                    hash: hash.clone(),
                    limits: offered.limits.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        out
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

    /// The live version of every loaded plugin, sorted by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self
            .plugins
            .read()
            .values()
            .map(|s| s.live.load_full())
            .collect();
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
            let plugin = Plugin::load_bytes(
                engine,
                Some(name),
                bytes::Bytes::from_static(bytes),
                PluginSource::Stock,
                limits.clone(),
            )?;
            tracing::info!(plugin = name, kind = %plugin.info.kind, version = %plugin.info.version, hash = %short(&plugin.hash), "loaded stock plugin");
            self.insert(plugin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_version_matches_the_wit_file() {
        let wit = include_str!("../../../wit/klaxon.wit");
        assert!(
            wit.contains(&format!("package {WIT_PACKAGE}@{WIT_VERSION};")),
            "wit/klaxon.wit declares another package version than WIT_VERSION"
        );
    }

    #[test]
    fn detectors_importing_the_network_are_refused_naming_the_import() {
        let engine = PluginEngine::new(EngineSettings {
            max_instances: 2,
            ..EngineSettings::default()
        })
        .expect("engine");
        for import in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:sockets/ip-name-lookup@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "klaxon:plugin/http@0.1.0",
        ] {
            // A component importing the interface and exporting `evaluate`.
            let text = format!(
                r#"(component
                     (import "{import}" (instance))
                     (core module $m (func (export "f")))
                     (core instance $i (instantiate $m))
                     (func (export "evaluate") (canon lift (core func $i "f"))))"#
            );
            let bytes = wat::parse_str(&text).expect("valid component text");
            let err = Plugin::load(
                &engine,
                Some("nosy"),
                &bytes,
                PluginSource::Stock,
                PluginLimits::default(),
            )
            .expect_err("a detector importing the network must be refused");
            let msg = err.to_string();
            assert!(msg.contains(&format!("imports `{import}`")), "{msg}");
            assert!(
                msg.contains("detectors and composites get no network"),
                "{msg}"
            );
        }
    }

    #[test]
    fn call_time_quantiles_bound_the_recorded_values() {
        let times = CallTimes::default();
        assert_eq!(times.quantile_micros(0.5), 0.0);
        for _ in 0..98 {
            times.record(Duration::from_micros(100));
        }
        times.record(Duration::from_micros(10_000));
        times.record(Duration::from_micros(10_000));
        let p50 = times.quantile_micros(0.5);
        assert!((100.0..=125.0).contains(&p50), "p50 {p50}");
        let p99 = times.quantile_micros(0.99);
        assert!((10_000.0..=12_500.0).contains(&p99), "p99 {p99}");
    }
}
