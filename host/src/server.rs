//! Assembles a running Klaxon from a validated config: plugin engine and
//! registry, store, rule groups, routing, notification workers and the HTTP
//! API, plus the store's retention sweep. `main` and the end-to-end tests
//! both start Klaxon through `start`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::alert::Alert;
use crate::api::{AppState, Live, Reload, router};
use crate::config::Config;
use crate::plugins::lifecycle::{Candidate, PluginManager};
use crate::plugins::signing::TrustPolicy;
use crate::plugins::{EngineSettings, Plugin, PluginEngine, PluginRegistry, PluginSource, watch};
use crate::route::inhibit::Inhibitor;
use crate::route::{AlertStore, Dispatcher, DispatcherQuery, Muter, Routing};
use crate::rules::{EvalContext, build_groups, spawn_groups};
use crate::silence::Silences;
use crate::store::Store;

/// How often expired samples are swept.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// What `start` needs.
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub config: Config,
    /// Where the config came from (for error messages).
    pub config_file: String,
    /// The config's source text (to locate errors by line).
    pub config_text: String,
    /// The config file, re-read by `POST /-/reload` and SIGHUP; `None` for
    /// a config that has no file (the embedded default, tests).
    pub config_path: Option<PathBuf>,
    /// Compiled-plugin cache and (later) persisted state.
    pub data_dir: Option<PathBuf>,
}

/// A running Klaxon.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    http: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
    /// The tasks of the config in force (replaced by reloads).
    generation: Arc<tokio::sync::Mutex<Option<Generation>>>,
    /// Shared state, for in-process inspection.
    pub state: Arc<AppState>,
}

impl Server {
    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, finishes in-flight ones and stops evaluation.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.http).await;
        for t in &self.tasks {
            t.abort();
        }
        if let Some(g) = self.generation.lock().await.take() {
            for t in g.tasks.iter().chain(g.dispatcher.iter()) {
                t.abort();
            }
        }
        let live = self.state.live.load();
        // What is still queued stays in the journal for the next start.
        if let Some(notify) = &live.notify {
            notify.shutdown();
        }
    }

    /// Serves until Ctrl-C or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Builds the plugin engine and registry: stock plugins plus configured files.
pub async fn load_plugins(
    config: &Config,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Arc<PluginRegistry>> {
    let manager = load_plugins_managed(config, data_dir, None).await?;
    Ok(manager.registry().clone())
}

/// Where compiled plugins are cached: `plugins.cache_dir` (`off`: nowhere),
/// else `plugin-cache/` in the data directory, else the user's cache
/// directory. Without any of them (no `$HOME`), components compile at every
/// start.
pub fn plugin_cache_dir(config: &Config, data_dir: Option<&std::path::Path>) -> Option<PathBuf> {
    match &config.plugins.cache_dir {
        Some(dir) if dir.as_os_str() == "off" => None,
        Some(dir) => Some(dir.clone()),
        None => data_dir.map(|d| d.join("plugin-cache")).or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|v| !v.is_empty())
                        .map(|h| PathBuf::from(h).join(".cache"))
                })?;
            Some(base.join("klaxon").join("plugin-cache"))
        }),
    }
}

/// The plugins directory: `plugins.dir`, else `plugins/` in the data
/// directory, else none.
pub fn plugins_dir(config: &Config, data_dir: Option<&std::path::Path>) -> Option<PathBuf> {
    config
        .plugins
        .dir
        .clone()
        .or_else(|| data_dir.map(|d| d.join("plugins")))
}

/// Builds the plugin engine, registry and load pipeline: stock plugins,
/// configured files (which must load), then the components in the plugins
/// directory (one that fails to load is logged and skipped).
pub async fn load_plugins_managed(
    config: &Config,
    data_dir: Option<PathBuf>,
    plugins_dir: Option<PathBuf>,
) -> anyhow::Result<Arc<PluginManager>> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<PluginManager>> {
        let max_memory = std::iter::once(&config.plugins.limits)
            .chain(config.plugins.overrides.values())
            .map(|l| l.memory_bytes)
            .max()
            .unwrap_or(64 << 20);
        let settings = EngineSettings {
            // The pool slot must hold the largest allowed memory (and a bit,
            // so the limiter, not the pool, refuses growth).
            max_memory_bytes: usize::try_from(max_memory.saturating_mul(2)).unwrap_or(usize::MAX),
            cache_dir: plugin_cache_dir(&config, data_dir.as_deref()),
            consume_fuel: std::iter::once(&config.plugins.limits)
                .chain(config.plugins.overrides.values())
                .any(|l| l.fuel.is_some()),
            ..EngineSettings::default()
        };
        let engine = Arc::new(PluginEngine::new(settings)?);
        let registry = Arc::new(PluginRegistry::new());
        // Stock plugins load when first asked for: those the config uses
        // right below, others when an upload, a reload or the API needs them.
        registry.offer_stock(engine.clone(), |name| config.plugins.limits_for(name));
        for name in config.plugin_names() {
            registry
                .load_offered(&name)
                .with_context(|| format!("loading stock plugin `{name}`"))?;
        }
        let trust = TrustPolicy::new(config.plugins.require_signed, &config.plugins.trusted_keys)
            .context("plugins.trusted_keys")?;
        let manager = Arc::new(PluginManager::new(engine.clone(), registry.clone(), trust));
        for path in &config.plugins.files {
            // Files are known by the name they report: learn it, then load
            // through the pipeline (the second compile is a cache hit when
            // there is a data directory).
            let probe = Plugin::load_file(&engine, path, config.plugins.limits.clone())
                .with_context(|| format!("loading plugin file {}", path.display()))?;
            let candidate = Candidate {
                name: probe.info.name.clone(),
                bytes: probe.bytes.clone(),
                source: PluginSource::File(path.clone()),
                manifest: None,
                signature: watch::read_signature(path)?,
            };
            drop(probe);
            let loaded = manager
                .load(candidate, &config)
                .with_context(|| format!("loading plugin file {}", path.display()))?;
            tracing::info!(plugin = %loaded.name, kind = %loaded.kind, path = %path.display(), "loaded plugin file");
        }
        if let Some(dir) = &plugins_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the plugins directory {}", dir.display()))?;
            for name in watch::scan(dir)? {
                let loaded = watch::read_candidate(dir, &name)
                    .map_err(anyhow::Error::from)
                    .and_then(|c| Ok(manager.load(c, &config)?));
                if let Err(e) = loaded {
                    tracing::error!(plugin = %name, dir = %dir.display(), error = %format!("{e:#}"), "plugin in the plugins directory not loaded");
                }
            }
        }
        // (Stock plugins are offered with their overridden limits.)
        Ok(manager)
    })
    .await
    .map_err(|e| anyhow!("plugin loading panicked: {e}"))?
}

/// Validates the config against the loaded plugins.
pub async fn validate(
    config: &Config,
    file: &str,
    text: &str,
    registry: Arc<PluginRegistry>,
) -> anyhow::Result<()> {
    config.validate_static(file, text)?;
    let (config, file, text) = (config.clone(), file.to_string(), text.to_string());
    tokio::task::spawn_blocking(move || config.validate_plugins(&file, &text, &registry))
        .await
        .map_err(|e| anyhow!("config validation panicked: {e}"))??;
    Ok(())
}

/// The tasks of one loaded config: stopped when a reload replaces it.
struct Generation {
    tasks: Vec<JoinHandle<()>>,
    dispatcher: Option<JoinHandle<()>>,
}

/// What every generation shares: the store, plugins, alerts and silences,
/// and the channel rules send their alerts into.
struct Shared {
    store: Arc<Store>,
    plugins: Arc<PluginRegistry>,
    alerts: Arc<AlertStore>,
    silences: Arc<Silences>,
    alert_tx: mpsc::Sender<Vec<Alert>>,
    data_dir: Option<PathBuf>,
}

/// Builds and starts everything that comes from `config`. `old` is the
/// generation being replaced (its rule state and notification log carry
/// over), already checked to be replaceable: this stops it before starting
/// the new notification workers, so the journal is replayed once.
async fn start_generation(
    shared: &Shared,
    config: Config,
    config_text: String,
    old: Option<(Arc<Live>, Generation)>,
) -> anyhow::Result<(Live, Generation)> {
    let groups = build_groups(&config).map_err(|e| anyhow!(e))?;
    let inhibitor = Arc::new(Inhibitor::from_config(&config.inhibit_rules)?);
    let routing = Routing::from_config(&config)?;

    // Nothing below fails on a validated config but the journal: stop the
    // old generation, taking over its rule state and notification log.
    let mut log = None;
    if let Some((old_live, old_gen)) = old {
        let by_identity: std::collections::HashMap<String, Arc<crate::rules::Rule>> = old_live
            .groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .map(|r| (r.identity(), r.clone()))
            .collect();
        for t in &old_gen.tasks {
            t.abort();
        }
        let mut carried = std::collections::HashSet::new();
        for rule in groups.iter().flat_map(|g| g.rules.iter()) {
            if let Some(prev) = by_identity.get(&rule.identity()) {
                rule.take_state_from(prev);
                carried.insert(rule.identity());
            }
        }
        // The firing alerts of rules that are gone resolve now.
        let gone: std::collections::HashSet<crate::store::Labels> = by_identity
            .iter()
            .filter(|(id, _)| !carried.contains(*id))
            .flat_map(|(_, r)| r.firing_labels())
            .collect();
        if !gone.is_empty() {
            let now = chrono::Utc::now();
            let resolved: Vec<crate::route::StoredAlert> = shared
                .alerts
                .list()
                .into_iter()
                .filter(|a| gone.contains(&a.alert.labels) && !a.alert.is_resolved_at(now))
                .map(|mut a| {
                    a.alert.ends_at = Some(now);
                    a.updated_at = now;
                    a.timeout = false;
                    a
                })
                .collect();
            tracing::info!(alerts = resolved.len(), "alerts of removed rules resolved");
            shared.alerts.put(resolved, now);
        }
        let carried = carried.len();
        if let Some(q) = &old_live.dispatcher_queries {
            let (tx, rx) = oneshot::channel();
            if q.send(DispatcherQuery::TakeLog(tx)).await.is_ok() {
                log = rx.await.ok();
            }
        }
        if let Some(d) = old_gen.dispatcher {
            d.abort();
        }
        if let Some(n) = &old_live.notify {
            n.shutdown();
        }
        tracing::info!(rules_carried_over = carried, "previous config stopped");
    }
    shared.alerts.set_inhibitor(inhibitor.clone());
    let muter = Muter {
        silences: shared.silences.clone(),
        inhibitor,
    };

    let mut tasks = Vec::new();
    let (dispatch_tx, dispatch_rx) = mpsc::channel::<Vec<Alert>>(1024);
    let (query_tx, query_rx) = mpsc::channel::<DispatcherQuery>(16);
    let (notify, dispatcher) = match routing.clone() {
        Some(routing) => {
            let notify =
                crate::notify::start(&config, shared.plugins.clone(), shared.data_dir.as_deref())
                    .context("starting notification delivery (its journal and delivery threads)")?;
            let mut dispatcher =
                Dispatcher::with_routing(routing, notify.clone()).with_muter(muter.clone());
            if let Some(log) = log {
                dispatcher = dispatcher.with_log(log);
            }
            let task = tokio::spawn(dispatcher.run_with_queries(dispatch_rx, query_rx));
            (Some(notify), Some(task))
        }
        None => {
            tracing::warn!("no route configured: alerts are visible in the API only");
            tasks.push(tokio::spawn(async move {
                let mut rx = dispatch_rx;
                while rx.recv().await.is_some() {}
            }));
            (None, None)
        }
    };
    // The alerts already known are routed by the new tree.
    let known: Vec<Alert> = shared.alerts.list().into_iter().map(|a| a.alert).collect();
    if !known.is_empty() {
        let _ = dispatch_tx.send(known).await;
    }

    let ctx = Arc::new(EvalContext {
        store: shared.store.clone(),
        plugins: shared.plugins.clone(),
        external_labels: config.global.external_labels.clone(),
        external_url: config.global.external_url.clone(),
        external_labels_on_alerts: true,
    });
    tasks.extend(spawn_groups(&groups, ctx, shared.alert_tx.clone()));
    tasks.extend(crate::scrape::spawn(
        &config.scrape_configs,
        shared.store.clone(),
        config.limits.clone(),
    ));
    let live = Live {
        config: Arc::new(config),
        config_text,
        groups,
        dispatcher_queries: routing.is_some().then_some(query_tx),
        routing,
        notify,
        dispatch: dispatch_tx,
        muter,
        loaded_at: chrono::Utc::now(),
    };
    Ok((live, Generation { tasks, dispatcher }))
}

/// Reloads from the config file: `POST /-/reload` and SIGHUP.
struct FileReloader {
    path: PathBuf,
    shared: Shared,
    generation: Arc<tokio::sync::Mutex<Option<Generation>>>,
}

impl FileReloader {
    async fn reload_now(&self, state: &Arc<AppState>) -> anyhow::Result<()> {
        // One reload at a time.
        let mut generation = self.generation.lock().await;
        let (config, text) = Config::load(&self.path)?;
        let file = self.path.display().to_string();
        validate(&config, &file, &text, self.shared.plugins.clone()).await?;
        let old_live = state.live.load_full();
        let old_gen = generation.take().unwrap_or(Generation {
            tasks: Vec::new(),
            dispatcher: None,
        });
        let (live, gen_) =
            start_generation(&self.shared, config, text, Some((old_live, old_gen))).await?;
        state.live.store(Arc::new(live));
        *generation = Some(gen_);
        tracing::info!(file = %file, "config reloaded");
        Ok(())
    }
}

impl Reload for FileReloader {
    fn reload<'a>(
        &'a self,
        state: &'a Arc<AppState>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let result = self.reload_now(state).await;
            if let Err(e) = &result {
                tracing::error!(error = %format!("{e:#}"), "config reload failed; the running config stays");
            }
            result
        })
    }
}

/// Starts Klaxon; returns once the API is listening.
pub async fn start(opts: ServerOptions) -> anyhow::Result<Server> {
    let ServerOptions {
        listen,
        config,
        config_file,
        config_text,
        config_path,
        data_dir,
    } = opts;
    install_tls_provider();
    config.validate_static(&config_file, &config_text)?;
    // Certificate problems stop the start before anything runs.
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::api::tls::acceptor)
        .transpose()?;
    let plugins_dir = plugins_dir(&config, data_dir.as_deref());
    let watch_config = config_path.is_some() && config.plugins.watch_config.unwrap_or(true);
    let manager = load_plugins_managed(&config, data_dir.clone(), plugins_dir.clone()).await?;
    let plugins = manager.registry().clone();
    validate(&config, &config_file, &config_text, plugins.clone()).await?;
    crate::memory::release_freed_memory();
    // Serving from here on: new versions go live after a quick compile.
    manager.set_quick_compile(true);
    manager.set_persist_dir(plugins_dir.clone());

    let store = Arc::new(Store::new(config.store.clone()));
    let mut tasks = Vec::new();
    let silences = Arc::new(match &data_dir {
        Some(dir) => Silences::open(dir, config.global.silence_retention)?,
        None => Silences::in_memory(config.global.silence_retention),
    });
    let alerts = Arc::new(AlertStore::new(Arc::new(Inhibitor::default())));
    let (alert_tx, mut alert_rx) = mpsc::channel::<Vec<Alert>>(1024);
    let shared = Shared {
        store: store.clone(),
        plugins: plugins.clone(),
        alerts: alerts.clone(),
        silences: silences.clone(),
        alert_tx,
        data_dir,
    };
    let (live, generation) = start_generation(&shared, config, config_text, None).await?;
    let generation = Arc::new(tokio::sync::Mutex::new(Some(generation)));
    let reloader = config_path.map(|path| {
        Arc::new(FileReloader {
            path,
            shared,
            generation: generation.clone(),
        })
    });
    let state = Arc::new(AppState {
        store: store.clone(),
        plugins,
        alerts: alerts.clone(),
        silences: silences.clone(),
        started_at: chrono::Utc::now(),
        live: arc_swap::ArcSwap::from_pointee(live),
        reloader: reloader.clone().map(|r| r as Arc<dyn Reload>),
        manager,
    });
    if let Some(dir) = &plugins_dir {
        tasks.push(spawn_plugins_dir_watch(dir.clone(), state.clone())?);
    }
    tasks.push(spawn_auto_rollback(state.clone()));
    if let (true, Some(r)) = (watch_config, &reloader) {
        tasks.push(spawn_config_watch(
            r.path.clone(),
            r.clone(),
            state.clone(),
        )?);
    }

    // Alerts from rules go through the alert store to the routing task of
    // the config in force.
    {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(batch) = alert_rx.recv().await {
                let now = chrono::Utc::now();
                let stored = batch
                    .into_iter()
                    .map(|alert| crate::route::StoredAlert {
                        alert,
                        updated_at: now,
                        timeout: false,
                    })
                    .collect();
                let merged = state.alerts.put(stored, now);
                let dispatch = state.live.load().dispatch.clone();
                if dispatch.send(merged).await.is_err() {
                    tracing::debug!("routing task gone (reload or shutdown)");
                }
            }
        }));
    }
    {
        let (alerts, silences) = (alerts.clone(), silences.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(GC_INTERVAL);
            loop {
                tick.tick().await;
                let now = chrono::Utc::now();
                let dropped = alerts.gc(now);
                match silences.gc(now) {
                    Ok(n) if n > 0 || dropped > 0 => {
                        tracing::debug!(alerts = dropped, silences = n, "alert and silence gc")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "silence gc"),
                }
            }
        }));
    }
    #[cfg(unix)]
    if let Some(r) = reloader {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP: reload with POST /-/reload");
                return;
            };
            while hup.recv().await.is_some() {
                let _ = r.reload(&state).await;
            }
        }));
    }

    let gc_store = store.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(GC_INTERVAL);
        loop {
            tick.tick().await;
            let s = gc_store.clone();
            let now = chrono::Utc::now().timestamp_millis();
            if let Ok(stats) = tokio::task::spawn_blocking(move || s.gc(now)).await
                && (stats.samples_removed > 0 || stats.series_removed > 0)
            {
                tracing::debug!(
                    samples = stats.samples_removed,
                    series = stats.series_removed,
                    "retention sweep"
                );
            }
        }
    }));

    let server_config = state.live.load().config.server.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let auth_on = !server_config.auth.tokens.is_empty();
    if let Some(warning) = crate::api::auth::exposure_warning(addr, auth_on, tls.is_some()) {
        tracing::warn!(%addr, "{warning}");
    }
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let app = router(state.clone());
    let http = tokio::spawn(async move {
        let stop = async {
            let _ = shutdown_rx.await;
        };
        let served = match tls {
            Some(acceptor) => match crate::api::tls::TlsListener::new(listener, acceptor) {
                Ok(listener) => {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                }
                Err(e) => Err(e),
            },
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, tls = server_config.tls.is_some(), auth = auth_on, "klaxon listening");
    Ok(Server {
        addr,
        shutdown: Some(shutdown_tx),
        http,
        tasks,
        generation,
        state,
    })
}

/// Loads what changes in the plugins directory through the load pipeline.
fn spawn_plugins_dir_watch(dir: PathBuf, state: Arc<AppState>) -> anyhow::Result<JoinHandle<()>> {
    let (watch, mut changes) = watch::watch_dir(&dir, watch::plugin_name_of)?;
    tracing::info!(dir = %dir.display(), "watching the plugins directory");
    Ok(tokio::spawn(async move {
        let _watch = watch;
        while let Some(names) = changes.recv().await {
            for name in names {
                let candidate = match watch::read_settled(&dir, &name).await {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "plugin file not loaded");
                        continue;
                    }
                };
                let (manager, config) = (state.manager.clone(), state.live.load().config.clone());
                // Outcomes are logged and kept by the manager.
                let _ = tokio::task::spawn_blocking(move || manager.load(candidate, &config)).await;
            }
        }
    }))
}

/// How often new live versions are checked for automatic rollback.
const PROBATION_CHECK: Duration = Duration::from_millis(200);

/// Rolls back new live versions that fail too often
/// (`plugins.auto_rollback`) and raises `KlaxonPluginRolledBack` through the
/// alert store and the routing in force, as an alert posted to the API is.
fn spawn_auto_rollback(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBATION_CHECK);
        loop {
            tick.tick().await;
            let live = state.live.load_full();
            let Some(policy) = live.config.plugins.auto_rollback else {
                continue;
            };
            let manager = state.manager.clone();
            let Ok(rolled) =
                tokio::task::spawn_blocking(move || manager.check_probation(&policy)).await
            else {
                continue;
            };
            if rolled.is_empty() {
                continue;
            }
            let now = chrono::Utc::now();
            let ends = now
                + chrono::Duration::from_std(live.config.global.resolve_timeout)
                    .unwrap_or(chrono::Duration::minutes(5));
            let alerts = rolled
                .iter()
                .map(|r| crate::route::StoredAlert {
                    alert: Alert {
                        labels: crate::store::Labels::new([
                            ("alertname", "KlaxonPluginRolledBack"),
                            ("plugin", r.name.as_str()),
                            ("from", r.from.as_str()),
                            ("to", r.to.as_str()),
                            ("severity", "warning"),
                        ]),
                        annotations: [(
                            "summary".to_string(),
                            format!(
                                "plugin {} version {} failed {} of its first {} calls and was rolled back to {}",
                                r.name,
                                &r.from[..12.min(r.from.len())],
                                r.errors,
                                r.calls,
                                &r.to[..12.min(r.to.len())]
                            ),
                        )]
                        .into_iter()
                        .collect::<std::collections::BTreeMap<String, String>>()
                        .into(),
                        starts_at: now,
                        ends_at: Some(ends),
                        generator_url: format!(
                            "{}/api/v1/plugins/{}/versions",
                            live.config.global.external_url, r.name
                        )
                        .into(),
                    },
                    updated_at: now,
                    timeout: true,
                })
                .collect();
            let merged = state.alerts.put(alerts, now);
            if live.dispatch.send(merged).await.is_err() {
                tracing::debug!("routing task gone (reload or shutdown)");
            }
        }
    })
}

/// Reloads the config when its file changes (a third way beside
/// `POST /-/reload` and SIGHUP). The directory is watched, so editors that
/// replace the file by renaming are seen too.
fn spawn_config_watch(
    path: PathBuf,
    reloader: Arc<FileReloader>,
    state: Arc<AppState>,
) -> anyhow::Result<JoinHandle<()>> {
    let file_name = path
        .file_name()
        .map(|f| f.to_os_string())
        .ok_or_else(|| anyhow!("config path {} has no file name", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (watch, mut changes) = watch::watch_dir(&dir, move |p: &std::path::Path| {
        (p.file_name() == Some(file_name.as_os_str())).then(String::new)
    })?;
    tracing::info!(file = %path.display(), "reloading the config when it changes");
    Ok(tokio::spawn(async move {
        let _watch = watch;
        while changes.recv().await.is_some() {
            // Only a changed text reloads (a touch or a rewrite of the same text does not).
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                continue;
            };
            if text == state.live.load().config_text {
                continue;
            }
            let _ = reloader.reload(&state).await;
        }
    }))
}

/// Selects rustls's crypto provider (ring) for every HTTP client in the
/// process. Process-wide; installing again is a no-op.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
