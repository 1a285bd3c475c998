//! The one place where the wasmtime `Engine` is configured: compilation
//! settings, the pooling allocator, epoch interruption and its ticker thread
//! (which ticks only while a call runs), and the on-disk cache of compiled
//! components.
//!
//! One engine (and its Winch twin) serves both synchronous calls (detectors,
//! composites) and asynchronous ones (notifiers): wasmtime 48 chooses sync
//! or async per call, not per engine, so notifiers need no engine of their
//! own and share the pool and the compile cache's keys.
//!
//! Never imports rules, route or notify: it only turns bytes into runnable
//! components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;

/// How often the engine's epoch advances while a call runs; deadlines are
/// counted in ticks of this, so a call's timeout is kept to within a tick,
/// and an async call's guest yields its thread at most this often. Each
/// tick wakes a thread: at 1 ms that thread's sleeps and wake-ups were
/// 1.2 % of the CPU a burst of notifications took.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Memory per pool slot kept mapped between instances (see `PluginEngine::new`).
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Engine-wide settings (the per-plugin limits live in `PluginLimits`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest linear memory any plugin may be allowed (the pool's slot size).
    pub max_memory_bytes: usize,
    /// Instances that may exist at once (pool size); calls beyond wait.
    pub max_instances: u32,
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel, so plugins may have a deterministic budget per call
    /// (`PluginLimits::fuel`). Compiled code differs: it is part of the
    /// cache key through the engine's compatibility hash.
    pub consume_fuel: bool,
    /// Also build a baseline-compiler (Winch) engine, so a new version
    /// uploaded at run time can go live after a quick compile while the
    /// optimising compile runs in the background (`compile_quick`).
    pub quick_compile: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_memory_bytes: 1 << 30,
            max_instances: 64,
            cache_dir: None,
            consume_fuel: false,
            quick_compile: true,
        }
    }
}

/// How a component was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Cranelift, optimising: what runs in the steady state (and is cached).
    Optimized,
    /// Winch, the baseline compiler: several times faster to compile, a bit
    /// slower to run; replaced by the optimized build once it is ready.
    Quick,
}

/// A configured engine (and, optionally, a baseline-compiler twin for quick
/// loads); a thread advances their epochs while calls run (see [`Ticker`]).
pub struct PluginEngine {
    engine: Engine,
    quick: Option<Engine>,
    settings: EngineSettings,
    compat: String,
    ticker: Arc<Ticker>,
}

/// The thread advancing the engines' epochs every [`EPOCH_TICK`]: only
/// while a call's store lives (a [`Ticking`]), so an idle host does not
/// wake at every tick. Deadlines are counted in ticks from a
/// store's creation, so a store must hold its [`Ticking`] for its whole
/// life. The thread ends when the ticker is dropped (the engine and every
/// plugin hold it) or the engines are gone.
pub struct Ticker {
    shared: Arc<TickerShared>,
    thread: std::thread::Thread,
}

struct TickerShared {
    /// Stores alive.
    calls: AtomicUsize,
    stop: AtomicBool,
    /// Ticks so far.
    ticks: std::sync::atomic::AtomicU64,
}

/// Keeps the epochs advancing while it lives; see [`Ticker::ticking`].
pub struct Ticking(Arc<TickerShared>);

impl Ticker {
    /// Starts the thread for `engine` (and `quick`).
    fn start(engine: &Engine, quick: Option<&Engine>) -> Result<Self, PluginError> {
        let shared = Arc::new(TickerShared {
            calls: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ticks: std::sync::atomic::AtomicU64::new(0),
        });
        let weak = engine.weak();
        let weak_quick = quick.map(Engine::weak);
        let state = shared.clone();
        let handle = std::thread::Builder::new()
            .name("klaxon-epoch".into())
            .spawn(move || {
                loop {
                    if state.stop.load(Ordering::Acquire) {
                        break;
                    }
                    if state.calls.load(Ordering::Acquire) == 0 {
                        // `ticking` unparks; a wake-up without a call
                        // only loops back here.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    let quick = weak_quick.as_ref().and_then(|w| w.upgrade());
                    if let Some(q) = &quick {
                        q.increment_epoch();
                    }
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None if quick.is_none() => break,
                        None => {}
                    }
                    state.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start epoch thread: {e}")))?;
        Ok(Self {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// The epochs advance until the value returned is dropped.
    pub fn ticking(&self) -> Ticking {
        if self.shared.calls.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Ticking(self.shared.clone())
    }

    /// Ticks so far.
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PluginEngine {
    /// Builds the engine. Fails only if wasmtime rejects the configuration.
    pub fn new(settings: EngineSettings) -> Result<Self, PluginError> {
        let engine = build_engine(
            &settings,
            wasmtime::Strategy::Cranelift,
            settings.max_instances,
        )
        .map_err(|e| PluginError::Engine(e.to_string()))?;
        // The quick engine only runs freshly uploaded versions until their
        // optimized build replaces them: a smaller pool is enough.
        let quick = if settings.quick_compile {
            match build_engine(
                &settings,
                wasmtime::Strategy::Winch,
                (settings.max_instances / 4).max(4),
            ) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "no baseline compiler: new plugin versions wait for the optimising compile");
                    None
                }
            }
        } else {
            None
        };

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());

        let ticker = Arc::new(Ticker::start(&engine, quick.as_ref())?);
        Ok(Self {
            engine,
            quick,
            settings,
            compat,
            ticker,
        })
    }

    /// The epoch ticker plugins' calls hold while they run.
    pub fn ticker(&self) -> &Arc<Ticker> {
        &self.ticker
    }

    /// The baseline-compiler engine, when there is one.
    pub fn quick_engine(&self) -> Option<&Engine> {
        self.quick.as_ref()
    }

    /// For a version uploaded at run time: the optimized build from the disk
    /// cache when there is one, else a quick (Winch) compile that is not
    /// cached, else the optimising compile. Returns the component, its
    /// hash, whether it came from the cache, and its tier.
    pub fn compile_quick(
        &self,
        bytes: &[u8],
    ) -> Result<(Component, String, bool, Tier), PluginError> {
        let hash = hex::encode(Sha256::digest(bytes));
        if let Some(quick) = &self.quick
            && !self.cache_path(&hash).is_some_and(|p| p.exists())
        {
            let component =
                Component::new(quick, bytes).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
            return Ok((component, hash, false, Tier::Quick));
        }
        let (component, hash, from_cache) = self.compile_cached(bytes)?;
        Ok((component, hash, from_cache, Tier::Optimized))
    }
}

/// One wasmtime engine with Klaxon's settings and the given compiler.
fn build_engine(
    settings: &EngineSettings,
    strategy: wasmtime::Strategy,
    instances: u32,
) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.strategy(strategy);
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(settings.consume_fuel);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if std::env::var_os("KLAXON_WASM_PERFMAP").is_some() {
        // `perf` can then name plugin functions (/tmp/perf-PID.map).
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Plugins are small and numeric: no need for the default 4 GiB
    // reservation per memory, but keep guard pages so bounds checks stay cheap.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_core_instances_per_component(16)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(settings.max_memory_bytes)
        // A slot is reset between calls by zeroing up to this much in
        // place rather than unmapping it: the next instance then finds
        // its heap pages mapped instead of faulting each one in again.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), only the pages
        // the call wrote are reset; without it, every accessible page up
        // to the limit above is, and pages the call never touched are
        // faulted in to be zeroed.
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

impl PluginEngine {
    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Engine-wide settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Compiles a component, or loads it from the disk cache keyed by the
    /// bytes' SHA-256 and the engine's compatibility hash (which covers the
    /// wasmtime version and settings). A cached load costs well under a
    /// millisecond; a cold compile tens of milliseconds.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, String), PluginError> {
        self.compile_cached(bytes).map(|(c, hash, _)| (c, hash))
    }

    /// Like [`PluginEngine::compile`]; the flag tells whether the compiled
    /// component came from the disk cache.
    pub fn compile_cached(&self, bytes: &[u8]) -> Result<(Component, String, bool), PluginError> {
        let hash = hex::encode(Sha256::digest(bytes));
        let cached = self.cache_path(&hash);
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this
            // same engine configuration (the compatibility hash is in its name)
            // into a cache directory of this user (created private); wasmtime re-checks the header anyway.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(component) => return Ok((component, hash, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping unusable cached plugin")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        if let Some(path) = cached
            && let Err(e) = write_cache(&path, &component)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled plugin");
        }
        Ok((component, hash, false))
    }

    fn cache_path(&self, hash: &str) -> Option<PathBuf> {
        self.settings
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{hash}-{}.cwasm", self.compat)))
    }
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    // Write then rename so a crash never leaves half a file under the final
    // name; the temporary name is unique per process and call, so two hosts
    // (or two threads) caching the same component never write one file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates the cache directory readable by its owner only: what is in it is
/// loaded as machine code without recompiling.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (up to 10 s) until the ticker has ticked past `ticks`.
    fn ticks_past(ticker: &Ticker, ticks: u64) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if ticker.ticks() > ticks {
                return true;
            }
            std::thread::sleep(EPOCH_TICK);
        }
        false
    }

    #[test]
    fn the_epoch_ticks_only_while_a_call_runs() {
        let engine = PluginEngine::new(EngineSettings {
            max_instances: 4,
            quick_compile: false,
            ..EngineSettings::default()
        })
        .expect("engine");
        let ticker = engine.ticker();
        let idle = ticker.ticks();
        std::thread::sleep(EPOCH_TICK * 50);
        assert_eq!(ticker.ticks(), idle, "no call: the thread sleeps");

        let call = ticker.ticking();
        let second = ticker.ticking();
        assert!(ticks_past(ticker, idle), "a call: the epoch advances");
        drop(call);
        let one_left = ticker.ticks();
        assert!(ticks_past(ticker, one_left), "one call still runs");
        drop(second);
        // The tick under way when the last call ended may still land.
        let ended = ticker.ticks() + 1;
        std::thread::sleep(EPOCH_TICK * 50);
        assert!(
            ticker.ticks() <= ended,
            "calls over: the thread sleeps again"
        );
    }
}
