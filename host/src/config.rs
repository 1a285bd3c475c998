//! Configuration: the YAML file (or the embedded default), parsed into typed
//! structs with unknown keys refused, then validated as a whole before
//! anything starts. Every error names the file, the line and the reason.
//!
//! The shape follows the files users already have: `groups` as in Prometheus
//! rule files (plus `query`/`window`/`baseline`/`detector`/`config`), `route`
//! and `receivers` as in Alertmanager.
//!
//! Never imports rules, notify or api: they read this, not the reverse. The
//! uses of `route` are the routing tree's own validation and the time
//! interval types (parsed and checked as they deserialize), so the tree and
//! the intervals are each built (and checked) by one piece of code.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ingest::IngestLimits;
use crate::plugins::{PluginKind, PluginLimits, PluginRegistry};
use crate::route::timeinterval::NamedTimeInterval;
use crate::store::StoreConfig;

/// The configuration Klaxon runs with when no `--config` is given: a starter
/// rule pack for common ML serving metrics and a console receiver.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.yaml");

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    pub reason: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: GlobalConfig,
    /// Limits on one push request.
    #[serde(default)]
    pub limits: IngestLimits,
    /// Retention and series limit of the windowed store.
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub notify: NotifyConfig,
    #[serde(default)]
    pub groups: Vec<RuleGroupConfig>,
    #[serde(default)]
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Alertmanager's inhibition rules.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Alertmanager's `templates`: files (the last path component may be a
    /// glob; relative to the config file's directory) whose `{{ define }}`s
    /// the stock notifiers' templated fields can use.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Targets to pull metrics from, as in Prometheus.
    #[serde(default)]
    pub scrape_configs: Vec<crate::scrape::ScrapeConfig>,
    /// Alertmanager's named time intervals, referred to by routes'
    /// `mute_time_intervals` and `active_time_intervals`.
    #[serde(default)]
    pub time_intervals: Vec<NamedTimeInterval>,
    /// Alertmanager's deprecated spelling of `time_intervals`: same shape,
    /// and the names of both lists share one namespace.
    #[serde(default)]
    pub mute_time_intervals: Vec<NamedTimeInterval>,
    /// The HTTP API's own security: bearer tokens and TLS.
    #[serde(default)]
    pub server: ServerConfig,
    /// Service level objectives: each generates multiwindow multi-burn-rate
    /// alerting rules (see `slo`).
    #[serde(default)]
    pub slos: Vec<crate::slo::SloConfig>,
}

/// Security of the HTTP API. With no tokens, authentication is off (the
/// default, for a first run on loopback); with tokens, every endpoint but
/// the health checks needs one with the right scope.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub auth: AuthConfig,
    /// Serve HTTPS with this certificate and key (read at start; not reloaded).
    pub tls: Option<TlsConfig>,
}

/// Bearer tokens and the limits that apply to each.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// Request rate of each token that sets none; unlimited when unset.
    pub rate_limit: Option<ApiRateLimit>,
    /// Largest request body of each token that sets none; then only the
    /// global limits apply.
    pub max_body_bytes: Option<usize>,
}

/// One API token, stored as the SHA-256 of its secret (`klaxon token hash`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: named in logs and errors.
    pub name: String,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
    /// What it may do; `admin` includes every other scope.
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub rate_limit: Option<ApiRateLimit>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

/// What a token may do (the table of routes is `api::auth::ROUTE_SCOPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Ingest: push, import, remote write, and alerts posted to `/api/v2/alerts`.
    Push,
    /// Queries, series, labels, alerts, rules, plugins, notifications, status.
    Read,
    /// Silences: create, update, expire.
    Write,
    /// Everything, including reload and plugin changes.
    Admin,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Push => "push",
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        })
    }
}

/// A per-token request rate: a token bucket of `burst` requests refilled
/// at `per_second`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiRateLimit {
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell; defaults to `per_second`
    /// (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// The API's certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl ServerConfig {
    /// Checks the tokens: names unique, hashes 64 hex digits and distinct,
    /// at least one scope, positive limits.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let check_rate = |r: &Option<ApiRateLimit>, what: &str| match r {
            Some(r) if !(r.per_second.is_finite() && r.per_second > 0.0) => Err(format!(
                "{what}: rate_limit.per_second must be a positive number"
            )),
            _ => Ok(()),
        };
        check_rate(&self.auth.rate_limit, "server.auth")?;
        for t in &self.auth.tokens {
            let what = format!("server.auth.tokens `{}`", t.name);
            if t.name.is_empty() {
                return Err("server.auth.tokens: every token needs a `name`".into());
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!("{what}: duplicate token name"));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{what}: sha256 must be 64 hex digits (`klaxon token hash` prints it)"
                ));
            }
            if !hashes.insert(t.sha256.to_ascii_lowercase()) {
                return Err(format!("{what}: the same sha256 as another token"));
            }
            if t.scopes.is_empty() {
                return Err(format!(
                    "{what}: give at least one scope (push, read, write, admin)"
                ));
            }
            check_rate(&t.rate_limit, &what)?;
        }
        Ok(())
    }
}

/// Settings that apply everywhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// Evaluation interval of groups that set none.
    #[serde(with = "crate::duration::serde_str")]
    pub evaluation_interval: Duration,
    /// Link back to Klaxon in notifications (`externalURL`).
    pub external_url: String,
    /// Labels added to every alert.
    pub external_labels: BTreeMap<String, String>,
    /// Alertmanager's `resolve_timeout`: an alert posted to
    /// `/api/v2/alerts` without `endsAt` resolves after this unless re-sent.
    #[serde(with = "crate::duration::serde_str")]
    pub resolve_timeout: Duration,
    /// How long expired silences are kept (Alertmanager's `--data.retention`).
    #[serde(with = "crate::duration::serde_str")]
    pub silence_retention: Duration,
    /// Alertmanager's `slack_api_url`: the `api_url` of `slack_configs` that set none.
    pub slack_api_url: Option<String>,
    /// Alertmanager's `pagerduty_url`: the `url` of `pagerduty_configs` that set none.
    pub pagerduty_url: Option<String>,
    /// Alertmanager's `opsgenie_api_key`: the `api_key` of `opsgenie_configs` that set none.
    pub opsgenie_api_key: Option<String>,
    /// Alertmanager's `opsgenie_api_url`: the `api_url` of `opsgenie_configs` that set none.
    pub opsgenie_api_url: Option<String>,
    /// Default `smarthost` of `email_configs` (`host:port`).
    pub smtp_smarthost: Option<String>,
    /// Default `from` of `email_configs`.
    pub smtp_from: Option<String>,
    /// Default `hello` of `email_configs`.
    pub smtp_hello: Option<String>,
    /// Default `auth_username` of `email_configs`.
    pub smtp_auth_username: Option<String>,
    /// Default `auth_password` of `email_configs`.
    pub smtp_auth_password: Option<String>,
    /// Default `auth_identity` of `email_configs`.
    pub smtp_auth_identity: Option<String>,
    /// Default `require_tls` of `email_configs`.
    pub smtp_require_tls: Option<bool>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: Duration::from_secs(15),
            external_url: "http://127.0.0.1:9190".into(),
            external_labels: BTreeMap::new(),
            resolve_timeout: Duration::from_secs(300),
            silence_retention: crate::silence::DEFAULT_RETENTION,
            slack_api_url: None,
            pagerduty_url: None,
            opsgenie_api_key: None,
            opsgenie_api_url: None,
            smtp_smarthost: None,
            smtp_from: None,
            smtp_hello: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_identity: None,
            smtp_require_tls: None,
        }
    }
}

/// Plugin limits and extra plugin files.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Limits of every plugin unless overridden.
    pub limits: PluginLimits,
    /// Per-plugin limit overrides, by plugin name.
    pub overrides: BTreeMap<String, PluginLimits>,
    /// Component files to load at start (each known by the name it reports).
    pub files: Vec<PathBuf>,
    /// The watched plugins directory: `NAME.wasm` (with optional `NAME.toml`
    /// and `NAME.wasm.sig`) dropped there is loaded while Klaxon runs.
    /// Default: `plugins/` in the data directory (none without one).
    pub dir: Option<PathBuf>,
    /// Refuse components (files, directory, upload) without a valid
    /// signature by one of `trusted_keys`. Stock plugins are trusted.
    pub require_signed: bool,
    /// Ed25519 public keys (64 hex digits) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Re-read the config file when it changes (beside `POST /-/reload` and
    /// SIGHUP). Default: on when Klaxon runs from a config file.
    pub watch_config: Option<bool>,
    /// Roll a new live version back when it fails too often in its first
    /// calls. Off unless set.
    pub auto_rollback: Option<AutoRollbackConfig>,
    /// Where compiled plugins are cached by content hash (so a restart, a
    /// rollback or a second Klaxon on this machine does not compile again).
    /// Default: `plugin-cache/` in the data directory; without one, the
    /// user's cache directory (`$XDG_CACHE_HOME/klaxon/plugin-cache`, else
    /// `~/.cache/klaxon/plugin-cache`). `off` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// `plugins.auto_rollback`: a new live version whose error rate (errors,
/// traps and timeouts over calls) exceeds `max_error_rate` once it has made
/// `calls` calls is replaced by the version it replaced, and Klaxon raises
/// `KlaxonPluginRolledBack`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AutoRollbackConfig {
    pub calls: u64,
    pub max_error_rate: f64,
}

impl Default for AutoRollbackConfig {
    fn default() -> Self {
        Self {
            calls: 50,
            max_error_rate: 0.1,
        }
    }
}

/// A rule or receiver that uses a plugin, with the config it gives it.
#[derive(Debug, Clone)]
pub struct PluginUse {
    /// `rule `NAME`` or `receiver `NAME``.
    pub user: String,
    pub kind: PluginKind,
    pub config: serde_json::Value,
}

impl PluginsConfig {
    /// The limits for one plugin.
    pub fn limits_for(&self, name: &str) -> PluginLimits {
        self.overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.limits.clone())
    }
}

/// The most delivery threads `notify.delivery_threads` may ask for.
pub const MAX_DELIVERY_THREADS: usize = 64;

/// Notification delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// First retry delay; doubles each attempt (with jitter).
    #[serde(with = "crate::duration::serde_str")]
    pub initial_backoff: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "crate::duration::serde_str")]
    pub max_backoff: Duration,
    /// Stop retrying a notification after this long (and log it).
    #[serde(with = "crate::duration::serde_str")]
    pub give_up_after: Duration,
    /// Notifications waiting per integration before new ones are dropped (and logged).
    pub queue_capacity: usize,
    /// Deliveries in flight per integration (default 16).
    pub max_in_flight: usize,
    /// Threads deliveries run on (each a single-threaded runtime with its
    /// own connections); unset, one per core up to 8; 0 runs them on the
    /// server's own runtime. Read when the notifier starts (at start and at
    /// each reload).
    pub delivery_threads: Option<usize>,
    /// Per-request timeout of notifier HTTP calls.
    #[serde(with = "crate::duration::serde_str")]
    pub http_timeout: Duration,
    /// Per notifier plugin: how fast each of its integrations may send.
    /// PagerDuty's Events API allows 120 events per minute per routing key.
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// What notifiers may reach over HTTP, for every integration (each
    /// integration adds its own URLs' hosts and its `allowed_hosts` /
    /// `allowed_networks`).
    pub network: NetworkConfig,
}

/// The network sandbox of notifiers (SSRF guard). An integration may reach
/// the hosts its configured URLs name (`url`, `api_url`, `webhook_url`, or
/// the plugin's default for them) and those listed in `allowed_hosts`, and
/// only at public addresses unless an `allowed_networks` CIDR covers the
/// address. Set here for every integration, or on one integration (next to
/// `send_resolved`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// More hosts every integration may reach: names, IP literals or `*.suffix`.
    pub allowed_hosts: Vec<String>,
    /// CIDRs (or single addresses) exempt from the refusal of loopback,
    /// private, link-local, unique-local, CGNAT and reserved addresses,
    /// e.g. `127.0.0.1/32` for a receiver on the same machine. A cloud
    /// metadata address opens only to an entry naming exactly it.
    pub allowed_networks: Vec<String>,
    /// Largest response body a notifier may read.
    pub max_response_bytes: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_networks: Vec::new(),
            max_response_bytes: 1 << 20,
        }
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`127.0.0.1`, a /32).
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR (10.0.0.0/8) or an IP address"))
}

/// A token-bucket rate limit.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained notifications per minute.
    pub per_minute: u32,
    /// Notifications that may go at once after a quiet spell; defaults to
    /// `per_minute`.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
            queue_capacity: 10_000,
            max_in_flight: 16,
            delivery_threads: None,
            http_timeout: Duration::from_secs(10),
            network: NetworkConfig::default(),
            rate_limits: BTreeMap::from([(
                "pagerduty".to_string(),
                RateLimit {
                    per_minute: 120,
                    burst: None,
                },
            )]),
        }
    }
}

/// A group of rules evaluated together at one interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupConfig {
    pub name: String,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub interval: Option<Duration>,
    /// Prometheus's `query_offset`: queries see the data as of this long ago.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub query_offset: Option<Duration>,
    /// Prometheus's `limit`: an alerting rule producing more alerts (or a
    /// recording rule more series) than this fails its evaluation; 0 = none.
    #[serde(default)]
    pub limit: usize,
    /// Labels added to every rule of the group (a rule's own labels win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One alerting rule. Two kinds:
/// - a Prometheus alerting rule, `expr`: every series the PromQL expression
///   returns is an active alert, valued by its sample;
/// - a detector rule, `query` + `window` + `detector` (+ `config`,
///   `baseline`): the query's result over the window (the raw samples for a
///   plain selector, otherwise the query evaluated at the group's interval)
///   goes to a detector plugin, which decides per series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// An alerting rule's name (`alertname` label).
    #[serde(default)]
    pub alert: Option<String>,
    /// A recording rule's output metric name: `expr`'s result is stored
    /// under it at every evaluation.
    #[serde(default)]
    pub record: Option<String>,
    /// A PromQL expression; each output series is an alert.
    #[serde(default)]
    pub expr: Option<String>,
    /// A PromQL query whose result over `window` a detector judges.
    #[serde(default)]
    pub query: Option<String>,
    /// How much history the detector sees, ending at evaluation time.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub window: Option<Duration>,
    /// An optional baseline window, `offset` back from evaluation time.
    #[serde(default)]
    pub baseline: Option<BaselineConfig>,
    /// Detector plugin name.
    #[serde(default)]
    pub detector: Option<String>,
    /// The detector's config (any JSON/YAML object).
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// When the query matches no series with a sample in the window, call
    /// the detector anyway with ONE empty series labelled with the
    /// selector's equality matchers (`{}` for other queries), as PromQL's
    /// `absent()` labels its result: the `absent` dead man's switch needs it.
    #[serde(default)]
    pub judge_absent: bool,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for", with = "crate::duration::serde_str")]
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition clears.
    #[serde(default, with = "crate::duration::serde_str")]
    pub keep_firing_for: Duration,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// A composite rule's plugin: it combines the alert states of `children`
    /// (see `rules::composite`).
    #[serde(default)]
    pub composite: Option<String>,
    /// A composite rule's child rules, by alerting rule name (any group).
    #[serde(default)]
    pub children: Vec<String>,
    /// The labels a composite joins its children's alerts on.
    #[serde(default)]
    pub on: Vec<String>,
    /// `false`: the rule's alerts are visible in the API but never routed
    /// or notified (a composite's children, typically).
    #[serde(default = "yes")]
    pub notify: bool,
}

impl RuleConfig {
    /// The rule's name: the alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or_default()
    }

    /// Text that finds the rule's line in its file.
    fn locator(&self) -> String {
        match (&self.alert, &self.record) {
            (Some(a), _) => format!("alert: {a}"),
            (None, Some(r)) => format!("record: {r}"),
            _ => "rules:".into(),
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A baseline window: `[t - offset - window, t - offset]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    #[serde(with = "crate::duration::serde_str")]
    pub offset: Duration,
    /// Defaults to the rule's window.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub window: Option<Duration>,
}

/// A node of the routing tree (Alertmanager's `route`): the root applies to
/// every alert, nested `routes` narrow it down. Unset `receiver`, `group_by`
/// and timers are inherited from the parent (the root's from Alertmanager's
/// defaults); the tree itself is built and checked by `route::tree`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels to group by; `['...']` groups by all labels. Unset inherits.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Keep matching later siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Alertmanager matchers: `severity="critical"`, `team!=ml`, `x=~"a.*"`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Legacy equality matchers.
    #[serde(default, rename = "match")]
    pub match_: BTreeMap<String, String>,
    /// Legacy regex matchers (anchored).
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub group_wait: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub group_interval: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt")]
    pub repeat_interval: Option<Duration>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Names of time intervals during which this route sends nothing. Not
    /// inherited by child routes (as in Alertmanager).
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which this route sends nothing. Not
    /// inherited by child routes (as in Alertmanager).
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
}

/// Alertmanager's default `group_wait` of the root route.
pub fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
/// Alertmanager's default `group_interval` of the root route.
pub fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}
/// Alertmanager's default `repeat_interval` of the root route.
pub fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// One Alertmanager inhibit rule: firing alerts matching the source side
/// mute alerts matching the target side that have equal `equal` labels.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_matchers: Vec<String>,
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Legacy equality matchers of the source side.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Legacy regex matchers of the source side.
    #[serde(default)]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    #[serde(default)]
    pub target_match_re: BTreeMap<String, String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A named receiver and its integrations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// Alertmanager webhook configs, delivered by the `webhook` plugin.
    #[serde(default)]
    pub webhook_configs: Vec<serde_json::Value>,
    /// Alertmanager Slack configs, delivered by the `slack` plugin.
    #[serde(default)]
    pub slack_configs: Vec<serde_json::Value>,
    /// Alertmanager PagerDuty configs, delivered by the `pagerduty` plugin.
    #[serde(default)]
    pub pagerduty_configs: Vec<serde_json::Value>,
    /// Alertmanager Opsgenie configs, delivered by the `opsgenie` plugin.
    #[serde(default)]
    pub opsgenie_configs: Vec<serde_json::Value>,
    /// Alertmanager Microsoft Teams configs, delivered by the `msteams` plugin.
    #[serde(default)]
    pub msteams_configs: Vec<serde_json::Value>,
    /// Alertmanager email configs, delivered by the `email` plugin; unset
    /// fields take the `global.smtp_*` defaults.
    #[serde(default)]
    pub email_configs: Vec<serde_json::Value>,
    /// Any notifier plugin.
    #[serde(default)]
    pub plugin_configs: Vec<PluginIntegrationConfig>,
}

/// One integration delivered by a named notifier plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginIntegrationConfig {
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Send `resolved` notifications too.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// More hosts this integration may reach (see [`NetworkConfig`]).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Networks this integration may reach although private (see [`NetworkConfig`]).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One integration of a receiver, resolved to a plugin and its config.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Plugin name.
    pub plugin: String,
    /// Config handed to the plugin (JSON).
    pub config: serde_json::Value,
    pub send_resolved: bool,
    /// This integration's own `allowed_hosts` (the host applies them).
    pub allowed_hosts: Vec<String>,
    /// This integration's own `allowed_networks`, as written.
    pub allowed_networks: Vec<String>,
}

/// Keys of an integration's config the host owns and takes out before the
/// plugin sees it.
const HOST_INTEGRATION_KEYS: [&str; 3] = ["send_resolved", "allowed_hosts", "allowed_networks"];

fn string_list(v: Option<serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s],
        _ => Vec::new(),
    }
}

impl ReceiverConfig {
    /// The Alertmanager config lists delivered by stock plugins, in integration
    /// order: (YAML key, plugin, the entries, Alertmanager's `send_resolved` default).
    pub fn stock_configs(&self) -> [(&'static str, &'static str, &[serde_json::Value], bool); 6] {
        [
            ("webhook_configs", "webhook", &self.webhook_configs, true),
            ("slack_configs", "slack", &self.slack_configs, false),
            (
                "pagerduty_configs",
                "pagerduty",
                &self.pagerduty_configs,
                true,
            ),
            ("opsgenie_configs", "opsgenie", &self.opsgenie_configs, true),
            ("msteams_configs", "msteams", &self.msteams_configs, true),
            ("email_configs", "email", &self.email_configs, false),
        ]
    }

    /// Every integration in order: the stock plugins' configs (webhook, slack,
    /// pagerduty, opsgenie, msteams, email), then plugin configs. `send_resolved` is
    /// taken out of the plugin's config: the host applies it.
    pub fn integrations(&self) -> Vec<Integration> {
        let strip = |c: &serde_json::Value| {
            let mut c = c.clone();
            let mut taken =
                HOST_INTEGRATION_KEYS.map(|k| c.as_object_mut().and_then(|o| o.remove(k)));
            let send_resolved = taken[0].take().and_then(|v| v.as_bool());
            let hosts = string_list(taken[1].take());
            let networks = string_list(taken[2].take());
            (c, send_resolved, hosts, networks)
        };
        let stock = self.stock_configs().into_iter().flat_map(
            |(_, plugin, configs, resolved_by_default)| {
                configs.iter().map(move |c| {
                    let (config, send_resolved, allowed_hosts, allowed_networks) = strip(c);
                    Integration {
                        plugin: plugin.into(),
                        config,
                        send_resolved: send_resolved.unwrap_or(resolved_by_default),
                        allowed_hosts,
                        allowed_networks,
                    }
                })
            },
        );
        let plugins = self.plugin_configs.iter().map(|c| Integration {
            plugin: c.plugin.clone(),
            config: strip(&c.config).0,
            send_resolved: c.send_resolved,
            allowed_hosts: c.allowed_hosts.clone(),
            allowed_networks: c.allowed_networks.clone(),
        });
        stock.chain(plugins).collect()
    }

    /// Hands the `templates` files' definitions to the stock notifiers that
    /// render Alertmanager templates (in their `templates` field).
    fn apply_templates(&mut self, definitions: &str) {
        if definitions.is_empty() {
            return;
        }
        for configs in [
            &mut self.slack_configs,
            &mut self.pagerduty_configs,
            &mut self.opsgenie_configs,
            &mut self.msteams_configs,
            &mut self.email_configs,
        ] {
            for c in configs.iter_mut().filter_map(|c| c.as_object_mut()) {
                c.insert(
                    "templates".into(),
                    serde_json::Value::String(definitions.to_string()),
                );
            }
        }
    }

    /// Fills in the `global` defaults Alertmanager applies to its integrations
    /// (`slack_api_url`, `pagerduty_url`, `opsgenie_api_key`, `opsgenie_api_url`)
    /// where an entry leaves the field out.
    fn apply_global_defaults(&mut self, global: &GlobalConfig) {
        let fill = |configs: &mut Vec<serde_json::Value>, field: &str, value: &Option<String>| {
            let Some(value) = value else { return };
            for c in configs.iter_mut().filter_map(|c| c.as_object_mut()) {
                c.entry(field)
                    .or_insert_with(|| serde_json::Value::String(value.clone()));
            }
        };
        fill(&mut self.slack_configs, "api_url", &global.slack_api_url);
        fill(&mut self.pagerduty_configs, "url", &global.pagerduty_url);
        fill(
            &mut self.opsgenie_configs,
            "api_key",
            &global.opsgenie_api_key,
        );
        fill(
            &mut self.opsgenie_configs,
            "api_url",
            &global.opsgenie_api_url,
        );
    }
}

impl Config {
    /// Parses YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        Self::parse_in(text, file, Path::new("."))
    }

    /// Parses YAML text whose relative paths (`templates`) are relative to `dir`.
    pub fn parse_in(text: &str, file: &str, dir: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = serde_norway::from_str(text).map_err(|e| {
            let reason = strip_location(&e.to_string());
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            ConfigError {
                file: file.to_string(),
                line: refine_line(text, line, &reason),
                reason,
            }
        })?;
        let global = config.global.clone();
        let definitions = config.read_templates(dir, file, text)?;
        for receiver in &mut config.receivers {
            receiver.apply_global_defaults(&global);
            receiver.apply_templates(&definitions);
        }
        config.apply_smtp_defaults();
        Ok(config)
    }

    /// The text of every file `templates` names, in order.
    fn read_templates(&self, dir: &Path, file: &str, text: &str) -> Result<String, ConfigError> {
        let mut out = String::new();
        for pattern in &self.templates {
            let fail = |reason: String| ConfigError {
                file: file.to_string(),
                line: locate(text, pattern),
                reason: format!("templates: {reason}"),
            };
            let full = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                dir.join(pattern)
            };
            let paths = glob::glob(&full.to_string_lossy())
                .map_err(|e| fail(format!("invalid pattern {pattern:?}: {e}")))?;
            for path in paths {
                let path = path.map_err(|e| fail(e.to_string()))?;
                let body = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                out.push_str(&body);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Fills each `email_configs` entry's unset fields from `global.smtp_*`,
    /// as Alertmanager does.
    fn apply_smtp_defaults(&mut self) {
        let g = &self.global;
        let defaults: [(&str, Option<serde_json::Value>); 7] = [
            ("smarthost", g.smtp_smarthost.clone().map(Into::into)),
            ("from", g.smtp_from.clone().map(Into::into)),
            ("hello", g.smtp_hello.clone().map(Into::into)),
            (
                "auth_username",
                g.smtp_auth_username.clone().map(Into::into),
            ),
            (
                "auth_password",
                g.smtp_auth_password.clone().map(Into::into),
            ),
            (
                "auth_identity",
                g.smtp_auth_identity.clone().map(Into::into),
            ),
            ("require_tls", g.smtp_require_tls.map(Into::into)),
        ];
        for receiver in &mut self.receivers {
            for entry in &mut receiver.email_configs {
                let Some(obj) = entry.as_object_mut() else {
                    continue;
                };
                for (key, value) in &defaults {
                    if let Some(v) = value
                        && !obj.contains_key(*key)
                    {
                        obj.insert((*key).to_string(), v.clone());
                    }
                }
            }
        }
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<(Self, String), ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok((Self::parse_in(&text, &file, dir)?, text))
    }

    /// The embedded default.
    pub fn embedded() -> Self {
        Self::parse(DEFAULT_CONFIG, "<embedded default>")
            .expect("the embedded default config is valid")
    }

    /// Checks everything that does not need plugins: names, durations, selectors,
    /// templates, routing references. `text` is the source, used to find lines.
    pub fn validate_static(&self, file: &str, text: &str) -> Result<(), ConfigError> {
        let err = |needle: &str, reason: String| ConfigError {
            file: file.to_string(),
            line: locate(text, needle),
            reason,
        };
        crate::scrape::validate(&self.scrape_configs)
            .map_err(|e| err(&format!("job_name: {}", e.job), e.to_string()))?;
        self.server.validate().map_err(|e| err("server:", e))?;
        if self
            .notify
            .delivery_threads
            .is_some_and(|n| n > MAX_DELIVERY_THREADS)
        {
            return Err(err(
                "delivery_threads:",
                format!("notify.delivery_threads: at most {MAX_DELIVERY_THREADS}"),
            ));
        }
        let mut group_names = HashSet::new();
        for group in &self.groups {
            let at = format!("name: {}", group.name);
            if !group_names.insert(group.name.as_str()) {
                return Err(err(&at, format!("duplicate rule group `{}`", group.name)));
            }
            if group.interval == Some(Duration::ZERO) {
                return Err(err(
                    &at,
                    format!("group `{}`: interval must be > 0", group.name),
                ));
            }
            for rule in &group.rules {
                let at = rule.locator();
                let rerr = |reason: String| err(&at, format!("rule `{}`: {reason}", rule.name()));
                match (&rule.alert, &rule.record) {
                    (Some(_), Some(_)) => {
                        return Err(rerr("give either `alert` or `record`, not both".into()));
                    }
                    (None, None) => {
                        return Err(rerr(
                            "a rule needs `alert` (alerting) or `record` (recording)".into(),
                        ));
                    }
                    (Some(alert), None) => {
                        if !is_label_value_name(alert) {
                            return Err(rerr(
                                "alert name must match [a-zA-Z_][a-zA-Z0-9_]*".into(),
                            ));
                        }
                    }
                    (None, Some(record)) => {
                        if !is_metric_name(record) {
                            return Err(rerr(format!(
                                "invalid recording rule name `{record}`: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
                            )));
                        }
                        if rule.expr.is_none() || rule.query.is_some() {
                            return Err(rerr(
                                "a recording rule needs `expr` (and no `query`)".into(),
                            ));
                        }
                        if !rule.for_.is_zero()
                            || !rule.keep_firing_for.is_zero()
                            || !rule.annotations.is_empty()
                        {
                            return Err(rerr(
                                "`for`, `keep_firing_for` and `annotations` belong to alerting rules".into(),
                            ));
                        }
                    }
                }
                if rule.composite.is_some() || !rule.children.is_empty() || !rule.on.is_empty() {
                    self.check_composite_fields(rule).map_err(&rerr)?;
                } else {
                    match (&rule.expr, &rule.query) {
                        (Some(_), Some(_)) => {
                            return Err(rerr(
                            "give either `expr` (a Prometheus alerting rule) or `query` with a `detector`, not both".into(),
                        ));
                        }
                        (None, None) => {
                            return Err(rerr(
                            "missing `expr` (a Prometheus alerting rule) or `query` with a `detector`".into(),
                        ));
                        }
                        (Some(expr), None) => {
                            let q = crate::promql::Query::parse(expr)
                                .map_err(|e| rerr(format!("expr: {e}")))?;
                            if q.value_type() != crate::promql::ValueType::Vector {
                                return Err(rerr(format!(
                                    "expr: an alerting rule's expression must return an instant vector, not a {}",
                                    q.value_type().as_str()
                                )));
                            }
                            for (field, set) in [
                                ("window", rule.window.is_some()),
                                ("baseline", rule.baseline.is_some()),
                                ("detector", rule.detector.is_some()),
                                ("judge_absent", rule.judge_absent),
                                (
                                    "config",
                                    rule.config.as_object().is_none_or(|o| !o.is_empty()),
                                ),
                            ] {
                                if set {
                                    return Err(rerr(format!(
                                        "`{field}` belongs to detector rules (`query`), not to `expr` rules"
                                    )));
                                }
                            }
                        }
                        (None, Some(query)) => {
                            let q = crate::promql::Query::parse(query)
                                .map_err(|e| rerr(format!("query: {e}")))?;
                            if q.value_type() != crate::promql::ValueType::Vector {
                                return Err(rerr(format!(
                                    "query: must return an instant vector (it is evaluated over the window), not a {}",
                                    q.value_type().as_str()
                                )));
                            }
                            match rule.window {
                                None => return Err(rerr("a `query` rule needs a `window`".into())),
                                Some(w) if w.is_zero() => {
                                    return Err(rerr("window must be > 0".into()));
                                }
                                Some(_) => {}
                            }
                            if rule.detector.is_none() {
                                return Err(rerr("a `query` rule needs a `detector`".into()));
                            }
                        }
                    }
                }
                if !rule.config.is_object() {
                    return Err(rerr("config must be a mapping".into()));
                }
                for name in rule.labels.keys() {
                    if !is_label_value_name(name) || name.starts_with("__") {
                        return Err(rerr(format!("invalid label name `{name}`")));
                    }
                }
                for (key, tmpl) in rule.labels.iter().chain(&rule.annotations) {
                    crate::rules::template::check(tmpl)
                        .map_err(|e| rerr(format!("template of `{key}`: {e}")))?;
                }
            }
        }
        self.check_composite_graph(file, text)?;
        let mut slo_names = HashSet::new();
        for (idx, slo) in self.slos.iter().enumerate() {
            if !slo_names.insert(slo.name.as_str()) {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: locate_section_item(text, "slos", idx, "name"),
                    reason: format!("slos[{idx}]: name `{}` is not unique", slo.name),
                });
            }
            slo.validate().map_err(|reason| ConfigError {
                file: file.to_string(),
                line: locate_section_item(text, "slos", idx, "name"),
                reason: format!("slos[{idx}] ({}): {reason}", slo.name),
            })?;
        }
        let mut receiver_names = HashSet::new();
        for receiver in &self.receivers {
            if !receiver_names.insert(receiver.name.as_str()) {
                // Point at the second definition, not the first.
                let at = format!("name: {}", receiver.name);
                let first = locate(text, &at);
                let rest: String = text.split_inclusive('\n').skip(first).collect();
                return Err(ConfigError {
                    file: file.to_string(),
                    line: match locate(&rest, &at) {
                        0 => first,
                        second => first + second,
                    },
                    reason: format!(
                        "notification config name \"{}\" is not unique",
                        receiver.name
                    ),
                });
            }
            for (key, _, configs, _) in receiver.stock_configs() {
                if let Some(i) = configs.iter().position(|c| !c.is_object()) {
                    return Err(err(
                        &format!("name: {}", receiver.name),
                        format!("receiver `{}`: {key}[{i}] must be a mapping", receiver.name),
                    ));
                }
            }
            for integration in receiver.integrations() {
                for net in &integration.allowed_networks {
                    parse_network(net).map_err(|e| {
                        err(
                            net,
                            format!("receiver `{}`: allowed_networks: {e}", receiver.name),
                        )
                    })?;
                }
            }
        }
        for net in &self.notify.network.allowed_networks {
            parse_network(net)
                .map_err(|e| err(net, format!("notify.network.allowed_networks: {e}")))?;
        }
        if let Err(e) = crate::route::inhibit::Inhibitor::from_config(&self.inhibit_rules) {
            return Err(err("inhibit_rules:", e.to_string()));
        }
        let interval_names = self.check_time_intervals(file, text)?;
        if let Some(route) = &self.route {
            // The routing tree checks itself, with Alertmanager's messages.
            crate::route::tree::RouteTree::build(route, &receiver_names, &interval_names).map_err(
                |e| ConfigError {
                    file: file.to_string(),
                    line: e.line(text),
                    reason: e.reason,
                },
            )?;
        } else if !self.receivers.is_empty() {
            return Err(err(
                "receivers:",
                "receivers are defined but there is no `route`".into(),
            ));
        }
        Ok(())
    }

    /// The fields of a composite rule (`composite`, `children`, `on`): no
    /// query of its own, at least one child, valid label names.
    fn check_composite_fields(&self, rule: &RuleConfig) -> Result<(), String> {
        if rule.composite.is_none() {
            return Err(
                "`children` and `on` belong to composite rules (`composite: PLUGIN`)".into(),
            );
        }
        if rule.alert.is_none() {
            return Err("a composite rule needs `alert` (it cannot record)".into());
        }
        for (field, set) in [
            ("expr", rule.expr.is_some()),
            ("query", rule.query.is_some()),
            ("window", rule.window.is_some()),
            ("baseline", rule.baseline.is_some()),
            ("detector", rule.detector.is_some()),
        ] {
            if set {
                return Err(format!(
                    "`{field}` does not belong to a composite rule: it reads its children's alerts"
                ));
            }
        }
        if rule.children.is_empty() {
            return Err("children: a composite rule needs at least one child rule".into());
        }
        let mut seen = HashSet::new();
        for child in &rule.children {
            if !seen.insert(child.as_str()) {
                return Err(format!("children: `{child}` is listed twice"));
            }
        }
        for name in &rule.on {
            if !is_label_value_name(name) {
                return Err(format!("on: invalid label name `{name}`"));
            }
        }
        Ok(())
    }

    /// Composite rules' references: each child names exactly one alerting
    /// rule (in any group), and no composite depends on itself.
    fn check_composite_graph(&self, file: &str, text: &str) -> Result<(), ConfigError> {
        let mut by_name: BTreeMap<&str, Vec<&RuleConfig>> = BTreeMap::new();
        for rule in self.groups.iter().flat_map(|g| &g.rules) {
            if let Some(alert) = &rule.alert {
                by_name.entry(alert.as_str()).or_default().push(rule);
            }
        }
        let composites: Vec<&RuleConfig> = self
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(|r| r.composite.is_some())
            .collect();
        for rule in &composites {
            let fail = |reason: String| ConfigError {
                file: file.to_string(),
                line: locate(text, &rule.locator()),
                reason: format!("rule `{}`: {reason}", rule.name()),
            };
            if by_name.get(rule.name()).map_or(0, Vec::len) > 1 {
                return Err(fail(
                    "a composite rule's name must be unique among alerting rules".into(),
                ));
            }
            for child in &rule.children {
                match by_name.get(child.as_str()).map_or(0, Vec::len) {
                    0 => {
                        return Err(fail(format!(
                            "children: unknown child rule `{child}` (no alerting rule has that name)"
                        )));
                    }
                    1 => {}
                    n => {
                        return Err(fail(format!(
                            "children: `{child}` names {n} alerting rules; a child must be unique"
                        )));
                    }
                }
            }
        }
        // Depth-first search for a cycle through composite children.
        fn visit<'a>(
            name: &'a str,
            by_name: &BTreeMap<&'a str, Vec<&'a RuleConfig>>,
            path: &mut Vec<&'a str>,
            done: &mut HashSet<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if let Some(start) = path.iter().position(|n| *n == name) {
                let mut cycle = path[start..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            if done.contains(name) {
                return None;
            }
            path.push(name);
            let children = by_name
                .get(name)
                .and_then(|rules| rules.first())
                .filter(|r| r.composite.is_some())
                .map(|r| r.children.as_slice())
                .unwrap_or_default();
            for child in children {
                if let Some(cycle) = visit(child, by_name, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(name);
            None
        }
        let mut done = HashSet::new();
        for rule in &composites {
            if let Some(cycle) = visit(rule.name(), &by_name, &mut Vec::new(), &mut done) {
                return Err(ConfigError {
                    file: file.to_string(),
                    line: locate(text, &rule.locator()),
                    reason: format!(
                        "rule `{}`: children: composite rules form a cycle: {}",
                        rule.name(),
                        cycle.join(" -> ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Every named time interval, legacy `mute_time_intervals` first.
    pub fn named_time_intervals(&self) -> impl Iterator<Item = &NamedTimeInterval> {
        self.mute_time_intervals.iter().chain(&self.time_intervals)
    }

    /// The named time interval called `name`.
    pub fn time_interval(&self, name: &str) -> Option<&NamedTimeInterval> {
        self.named_time_intervals().find(|ti| ti.name == name)
    }

    /// Alertmanager's checks of the named time intervals (the intervals
    /// themselves were checked as they were parsed): every one has a name,
    /// and no name is used twice across both lists. Returns the names.
    fn check_time_intervals(&self, file: &str, text: &str) -> Result<HashSet<&str>, ConfigError> {
        let mut names = HashSet::new();
        for (section, list, what) in [
            (
                "mute_time_intervals",
                &self.mute_time_intervals,
                "mute time interval",
            ),
            ("time_intervals", &self.time_intervals, "time interval"),
        ] {
            for (idx, ti) in list.iter().enumerate() {
                let fail = |reason: String| ConfigError {
                    file: file.to_string(),
                    line: locate_section_item(text, section, idx, "name"),
                    reason,
                };
                if ti.name.is_empty() {
                    return Err(fail(format!("missing name in {what}")));
                }
                if !names.insert(ti.name.as_str()) {
                    return Err(fail(format!("{what} {:?} is not unique", ti.name)));
                }
            }
        }
        Ok(names)
    }

    /// The name of every plugin the config uses (rules' detectors and
    /// composites, receivers' notifiers), sorted, once each.
    pub fn plugin_names(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for rule in self.groups.iter().flat_map(|g| g.rules.iter()) {
            names.extend(rule.detector.iter().cloned());
            names.extend(rule.composite.iter().cloned());
        }
        for receiver in &self.receivers {
            names.extend(receiver.integrations().into_iter().map(|i| i.plugin));
        }
        names.into_iter().collect()
    }

    /// Every rule and receiver integration that uses plugin `name`.
    pub fn plugin_users(&self, name: &str) -> Vec<PluginUse> {
        let mut users = Vec::new();
        for rule in self.groups.iter().flat_map(|g| g.rules.iter()) {
            if rule.detector.as_deref() == Some(name) {
                users.push(PluginUse {
                    user: format!("rule `{}`", rule.name()),
                    kind: PluginKind::Detector,
                    config: rule.config.clone(),
                });
            }
            if rule.composite.as_deref() == Some(name) {
                users.push(PluginUse {
                    user: format!("rule `{}`", rule.name()),
                    kind: PluginKind::Composite,
                    config: rule.config.clone(),
                });
            }
        }
        for receiver in &self.receivers {
            for integration in receiver.integrations() {
                if integration.plugin == name {
                    users.push(PluginUse {
                        user: format!("receiver `{}`", receiver.name),
                        kind: PluginKind::Notifier,
                        config: integration.config,
                    });
                }
            }
        }
        users
    }

    /// Checks references to plugins: each rule's detector and each receiver's
    /// notifier exists, is of the right kind, and accepts its config. Plugin
    /// calls block: run on a blocking thread.
    pub fn validate_plugins(
        &self,
        file: &str,
        text: &str,
        registry: &PluginRegistry,
    ) -> Result<(), ConfigError> {
        for group in &self.groups {
            for rule in &group.rules {
                let at = rule.locator();
                let fail = |reason: String| ConfigError {
                    file: file.to_string(),
                    line: locate(text, &at),
                    reason: format!("rule `{}`: {reason}", rule.name()),
                };
                if let Some(composite) = &rule.composite {
                    let plugin = registry
                        .get_kind(composite, PluginKind::Composite)
                        .map_err(|e| fail(format!("composite: {e}")))?;
                    plugin
                        .check_config(&rule.config.to_string())
                        .map_err(|e| fail(format!("config: {e}")))?;
                    continue;
                }
                let Some(detector) = &rule.detector else {
                    continue;
                };
                let plugin = registry
                    .get_kind(detector, PluginKind::Detector)
                    .map_err(|e| fail(format!("detector: {e}")))?;
                plugin
                    .check_config(&rule.config.to_string())
                    .map_err(|e| fail(format!("config: {e}")))?;
            }
        }
        for receiver in &self.receivers {
            for integration in receiver.integrations() {
                let fail = |reason: String| ConfigError {
                    file: file.to_string(),
                    line: locate(text, &format!("name: {}", receiver.name)),
                    reason: format!("receiver `{}`: {reason}", receiver.name),
                };
                let plugin = registry
                    .get_kind(&integration.plugin, PluginKind::Notifier)
                    .map_err(|e| fail(e.to_string()))?;
                plugin
                    .check_config(&integration.config.to_string())
                    .map_err(|e| fail(format!("{} config: {e}", integration.plugin)))?;
            }
        }
        Ok(())
    }
}

/// Keys whose values are secrets in Alertmanager's and Klaxon's configs
/// (Alertmanager's `Secret` and `SecretURL` fields).
const SECRET_KEYS: &[&str] = &[
    "api_url",
    "api_key",
    "auth_password",
    "auth_secret",
    "bearer_token",
    "credentials",
    "opsgenie_api_key",
    "password",
    "routing_key",
    "service_key",
    "sha256",
    "slack_api_url",
    "smtp_auth_password",
    "url",
    "webhook_url",
];

/// A URL keeps its scheme, host and port (so the config still parses as one,
/// in Alertmanager's parser too) and loses its credentials, path and query;
/// any other secret becomes `<secret>`.
fn redact_value(key: &str, value: Option<&str>) -> String {
    let url_key = key == "url" || key.ends_with("_url");
    match value
        .filter(|_| url_key)
        .and_then(|v| reqwest::Url::parse(v).ok())
    {
        Some(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/<secret>",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        None => "<secret>".into(),
    }
}

/// The config text with every secret value replaced by `<secret>`, as
/// Alertmanager shows its config (`/api/v2/status`): what an API answer may
/// carry. Text that does not parse is not shown at all.
pub fn redact_secrets(text: &str) -> String {
    fn walk(v: &mut serde_norway::Value) {
        match v {
            serde_norway::Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let key = k.as_str().unwrap_or("");
                    if SECRET_KEYS.contains(&key) && (val.is_string() || val.is_number()) {
                        *val = serde_norway::Value::String(redact_value(key, val.as_str()));
                    } else {
                        walk(val);
                    }
                }
            }
            serde_norway::Value::Sequence(s) => s.iter_mut().for_each(walk),
            serde_norway::Value::Tagged(t) => walk(&mut t.value),
            _ => {}
        }
    }
    match serde_norway::from_str::<serde_norway::Value>(text) {
        Ok(mut v) => {
            walk(&mut v);
            strip_klaxon_security(&mut v);
            serde_norway::to_string(&v).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// Takes out of a config shown by the API what is Klaxon's own security
/// setup: the `server` section (tokens, TLS files) and the integrations'
/// `allowed_hosts` / `allowed_networks`, which Alertmanager's tools (`amtool
/// config routes` parses this text strictly) do not know.
fn strip_klaxon_security(config: &mut serde_norway::Value) {
    let Some(top) = config.as_mapping_mut() else {
        return;
    };
    top.remove("server");
    let Some(receivers) = top.get_mut("receivers").and_then(|r| r.as_sequence_mut()) else {
        return;
    };
    for receiver in receivers.iter_mut().filter_map(|r| r.as_mapping_mut()) {
        for (_, configs) in receiver.iter_mut() {
            for entry in configs
                .as_sequence_mut()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_mapping_mut())
            {
                entry.remove("allowed_hosts");
                entry.remove("allowed_networks");
            }
        }
    }
}

/// serde_norway puts " at line L column C" in its messages; the line is
/// reported separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// serde reports a bad value at the start of its enclosing mapping; when the
/// reason quotes the offending value (`five`), point at the line holding it.
fn refine_line(text: &str, line: usize, reason: &str) -> usize {
    let quoted = reason.split('`').nth(1).filter(|q| !q.is_empty());
    let Some(quoted) = quoted else { return line };
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find(|(_, l)| l.contains(quoted))
        .map(|(i, _)| i + 1)
        .unwrap_or(line)
}

/// The 1-based line where `needle` first appears (ignoring quotes), 0 if nowhere.
fn locate(text: &str, needle: &str) -> usize {
    let norm = |s: &str| s.replace(['"', '\''], "");
    let needle = norm(needle);
    text.lines()
        .position(|l| norm(l).contains(&needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// The 1-based line of item `idx` of the top-level list `section:` (block
/// style), at its `key:` when the item has one; the section's line when the
/// item cannot be found, 0 when there is no such section.
fn locate_section_item(text: &str, section: &str, idx: usize, key: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix(section)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    }) else {
        return 0;
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let end = (start + 1..lines.len())
        .find(|&i| content(lines[i]) && indent(lines[i]) == 0 && !lines[i].starts_with('-'))
        .unwrap_or(lines.len());
    let Some(dash_col) = (start + 1..end)
        .find(|&i| content(lines[i]))
        .map(|i| indent(lines[i]))
    else {
        return start + 1;
    };
    let items: Vec<usize> = (start + 1..end)
        .filter(|&i| indent(lines[i]) == dash_col && lines[i].trim_start().starts_with('-'))
        .collect();
    let Some(&first) = items.get(idx) else {
        return start + 1;
    };
    let last = items.get(idx + 1).copied().unwrap_or(end);
    let key_col = dash_col + 2;
    (first..last)
        .find(|&i| {
            let l = lines[i];
            let t = if i == first {
                l.trim_start().trim_start_matches('-').trim_start()
            } else if indent(l) == key_col {
                l.trim_start()
            } else {
                return false;
            };
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .unwrap_or(first)
        + 1
}

fn is_label_value_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_configs_map_to_the_email_plugin_with_global_defaults() {
        let yaml = r#"
global:
  smtp_smarthost: "smtp.example.com:587"
  smtp_from: "klaxon@example.com"
  smtp_auth_username: klaxon
  smtp_require_tls: false
route: { receiver: mail }
receivers:
  - name: mail
    email_configs:
      - { to: "a@example.com" }
      - { to: "b@example.com", smarthost: "other.example.com:465", send_resolved: true }
"#;
        let config = Config::parse(yaml, "t.yml").expect("parses");
        let integrations = config.receivers[0].integrations();
        assert_eq!(integrations.len(), 2);
        assert!(integrations.iter().all(|i| i.plugin == "email"));
        let first = &integrations[0];
        assert!(!first.send_resolved, "Alertmanager's default for email");
        assert_eq!(first.config["smarthost"], "smtp.example.com:587");
        assert_eq!(first.config["from"], "klaxon@example.com");
        assert_eq!(first.config["auth_username"], "klaxon");
        assert_eq!(first.config["require_tls"], false);
        assert!(first.config.get("auth_password").is_none());
        let second = &integrations[1];
        assert!(second.send_resolved);
        assert!(second.config.get("send_resolved").is_none(), "stripped");
        assert_eq!(second.config["smarthost"], "other.example.com:465");
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded();
        config
            .validate_static("<embedded default>", DEFAULT_CONFIG)
            .expect("embedded default validates");
        assert!(!config.groups.is_empty());
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: up\n        window: 5m\n        detector: threshold\n        bogus: 1\n";
        let e = Config::parse(text, "rules.yml").unwrap_err();
        assert_eq!(e.file, "rules.yml");
        assert_eq!(e.line, 8, "{e}");
        assert!(e.reason.contains("bogus"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_for_the_api() {
        let text = "route: { receiver: r }\nreceivers:\n  - name: r\n    webhook_configs: [{ url: 'http://hook.example/token123' }]\n    slack_configs: [{ api_url: 'https://hooks.slack.com/T/B/xyz', channel: '#ml' }]\n    email_configs: [{ to: a@b.c, auth_password: hunter2 }]\nglobal:\n  external_url: http://klaxon.example\n";
        let shown = redact_secrets(text);
        for secret in ["token123", "xyz", "hunter2"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("#ml")
                && shown.contains("a@b.c")
                && shown.contains("http://klaxon.example"),
            "{shown}"
        );
        assert_eq!(shown.matches("<secret>").count(), 3, "{shown}");
        assert!(
            shown.contains("http://hook.example/<secret>"),
            "URLs keep scheme and host: {shown}"
        );
        assert!(
            Config::parse(&shown, "x").is_ok(),
            "still a config: {shown}"
        );
    }

    #[test]
    fn the_api_view_hides_security_settings_alertmanager_does_not_know() {
        let text = "server:\n  auth:\n    tokens: [{ name: a, sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b, scopes: [admin] }]\nroute: { receiver: r }\nreceivers:\n  - name: r\n    webhook_configs: [{ url: 'http://127.0.0.1:1/h', allowed_networks: [127.0.0.1/32], allowed_hosts: [x.example] }]\n";
        let config = Config::parse(text, "x").expect("parses");
        let integration = &config.receivers[0].integrations()[0];
        assert_eq!(integration.allowed_networks, ["127.0.0.1/32"]);
        assert_eq!(integration.allowed_hosts, ["x.example"]);
        assert!(
            integration.config.get("allowed_networks").is_none(),
            "the plugin never sees host keys: {}",
            integration.config
        );
        let shown = redact_secrets(text);
        for hidden in [
            "server",
            "sha256",
            "2bb80d",
            "allowed_networks",
            "allowed_hosts",
        ] {
            assert!(!shown.contains(hidden), "{hidden} shown: {shown}");
        }
        assert!(shown.contains("http://127.0.0.1:1/<secret>"), "{shown}");
    }

    #[test]
    fn template_files_are_read_relative_to_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("t")).expect("mkdir");
        std::fs::write(dir.path().join("t/a.tmpl"), "{{ define \"x\" }}X{{ end }}").expect("write");
        let path = dir.path().join("klaxon.yml");
        std::fs::write(
            &path,
            "templates: ['t/*.tmpl']\nroute: { receiver: r }\nreceivers:\n  - name: r\n    slack_configs: [{ api_url: 'https://hooks.example/x' }]\n    webhook_configs: [{ url: 'http://127.0.0.1:1/' }]\n",
        )
        .expect("write config");
        let (config, _) = Config::load(&path).expect("loads");
        let r = &config.receivers[0];
        assert!(
            r.slack_configs[0]["templates"]
                .as_str()
                .is_some_and(|t| t.contains("{{ define \"x\" }}X{{ end }}")),
            "{:?}",
            r.slack_configs[0]
        );
        assert!(
            r.webhook_configs[0].get("templates").is_none(),
            "webhook renders no templates"
        );
    }

    #[test]
    fn stock_notifier_configs_map_to_their_plugins() {
        let text = r##"
global:
  slack_api_url: https://hooks.slack.com/services/T/B/x
  opsgenie_api_key: og-key
receivers:
  - name: r
    webhook_configs: [{ url: "http://w" }]
    slack_configs: [{ channel: "#a" }, { api_url: "http://s", send_resolved: true }]
    pagerduty_configs: [{ routing_key: k, send_resolved: false }]
    opsgenie_configs: [{ api_url: "http://o/" }]
    msteams_configs: [{ webhook_url: "http://t" }]
"##;
        let config = Config::parse(text, "f.yml").unwrap();
        let got: Vec<(String, serde_json::Value, bool)> = config.receivers[0]
            .integrations()
            .into_iter()
            .map(|i| (i.plugin, i.config, i.send_resolved))
            .collect();
        use serde_json::json;
        let expected: Vec<(String, serde_json::Value, bool)> = vec![
            ("webhook".into(), json!({"url": "http://w"}), true),
            (
                "slack".into(),
                json!({"channel": "#a", "api_url": "https://hooks.slack.com/services/T/B/x"}),
                false,
            ),
            ("slack".into(), json!({"api_url": "http://s"}), true),
            ("pagerduty".into(), json!({"routing_key": "k"}), false),
            (
                "opsgenie".into(),
                json!({"api_url": "http://o/", "api_key": "og-key"}),
                true,
            ),
            ("msteams".into(), json!({"webhook_url": "http://t"}), true),
        ];
        assert_eq!(got, expected);
        let bad = text.replace(
            "msteams_configs: [{ webhook_url: \"http://t\" }]",
            "msteams_configs: [x]",
        );
        let config = Config::parse(&bad, "f.yml").unwrap();
        let e = config.validate_static("f.yml", &bad).unwrap_err();
        assert!(
            e.reason.contains("msteams_configs[0] must be a mapping"),
            "{e}"
        );
    }

    #[test]
    fn composite_references_are_checked() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        notify: false\n      - alert: C\n        composite: all\n        children: [A, B]\n        on: [job]\n";
        let config = Config::parse(text, "f.yml").unwrap();
        let e = config.validate_static("f.yml", text).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(
            e.reason,
            "rule `C`: children: unknown child rule `B` (no alerting rule has that name)"
        );
        assert!(!config.groups[0].rules[0].notify);
        assert!(config.groups[0].rules[1].notify, "notify defaults to true");

        let cyclic = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n      - alert: C\n        composite: all\n        children: [A, D]\n      - alert: D\n        composite: any\n        children: [C]\n";
        let config = Config::parse(cyclic, "f.yml").unwrap();
        let e = config.validate_static("f.yml", cyclic).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert_eq!(
            e.reason,
            "rule `C`: children: composite rules form a cycle: C -> D -> C"
        );

        let with_query = text.replace("children: [A, B]", "children: [A]\n        query: up");
        let config = Config::parse(&with_query, "f.yml").unwrap();
        let e = config.validate_static("f.yml", &with_query).unwrap_err();
        assert!(
            e.reason
                .contains("`query` does not belong to a composite rule"),
            "{e}"
        );

        let no_plugin = text.replace("        composite: all\n", "");
        let config = Config::parse(&no_plugin, "f.yml").unwrap();
        let e = config.validate_static("f.yml", &no_plugin).unwrap_err();
        assert!(
            e.reason
                .contains("`children` and `on` belong to composite rules"),
            "{e}"
        );

        let ok = text.replace("[A, B]", "[A]");
        let config = Config::parse(&ok, "f.yml").unwrap();
        config.validate_static("f.yml", &ok).expect("valid");
    }

    #[test]
    fn delivery_threads_are_capped_with_the_line() {
        let text = "notify:\n  max_in_flight: 4\n  delivery_threads: 1000\n";
        let config = Config::parse(text, "f.yml").expect("parses");
        let e = config.validate_static("f.yml", text).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.reason.contains("notify.delivery_threads: at most 64"),
            "{e}"
        );
        let text = text.replace("1000", "0");
        let config = Config::parse(&text, "f.yml").expect("parses");
        config.validate_static("f.yml", &text).expect("0 is valid");
        assert_eq!(config.notify.delivery_threads, Some(0));
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: 'up{'\n        window: 5m\n        detector: threshold\nroute:\n  receiver: x\nreceivers:\n  - name: y\n";
        let config = Config::parse(text, "f.yml").unwrap();
        let e = config.validate_static("f.yml", text).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.reason.contains("query"), "{e}");
        let text = text.replace("'up{'", "up");
        let config = Config::parse(&text, "f.yml").unwrap();
        let e = config.validate_static("f.yml", &text).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.reason.contains("undefined receiver"), "{e}");
    }

    #[test]
    fn judge_absent_belongs_to_detector_rules() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: up\n        window: 5m\n        detector: absent\n        judge_absent: true\nroute:\n  receiver: x\nreceivers:\n  - name: x\n";
        let config = Config::parse(text, "f.yml").unwrap();
        assert!(config.groups[0].rules[0].judge_absent);
        config.validate_static("f.yml", text).unwrap();
        let text = text.replace(
            "query: up\n        window: 5m\n        detector: absent\n",
            "expr: up\n",
        );
        let config = Config::parse(&text, "f.yml").unwrap();
        let e = config.validate_static("f.yml", &text).unwrap_err();
        assert!(
            e.reason
                .contains("`judge_absent` belongs to detector rules"),
            "{e}"
        );
    }
}
