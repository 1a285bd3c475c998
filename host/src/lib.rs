//! Klaxon host: an alert engine for machine-learning systems in production.
//! Services push metrics; rules hand metric windows to sandboxed WebAssembly
//! detector plugins; alerts go through Alertmanager-style grouping to
//! notifier plugins.
//!
//! # Layout
//! Data flows down this list; nothing reaches back up.
//! - [`ingest`]: the push formats (JSON, Prometheus text / OpenMetrics, remote write), their validation and limits.
//! - [`scrape`]: pulls Prometheus-style `scrape_configs` targets into the store, with staleness markers.
//! - [`store`]: per-series windowed sample storage with a label index and retention.
//! - [`promql`]: the PromQL evaluator (Prometheus 3 semantics) over the store.
//! - [`plugins`]: the wasmtime runtime: loading, sandboxing and calling plugins; stock plugins;
//!   the `log`, `http` and `smtp` capabilities plugins import, and the notifiers' network
//!   sandbox (`plugins::netguard`: allowed hosts, no private or metadata addresses).
//! - [`rules`]: rule groups on a schedule, one batched detector call per rule, composite rules, alert state machine, templates.
//! - [`slo`]: `slos:` — SLOs, their generated multiwindow multi-burn-rate rules and `/api/v1/slos` numbers.
//! - [`alert`]: the `Alert` and `Notification` values handed from rules to routing to notification.
//! - [`route`]: the Alertmanager routing tree, grouping, `group_wait`/`group_interval`/`repeat_interval`, dedup, time intervals (`mute_time_intervals`/`active_time_intervals`).
//! - [`notify`]: per-integration delivery queues, retries with backoff, the delivery log.
//! - [`api`]: the HTTP API (axum), its bearer tokens and scopes (`api::auth`) and TLS (`api::tls`).
//! - [`duration`]: Prometheus-style durations for config and API.
//! - [`memory`]: handing freed heap back to the OS (after plugin compiles and delivery bursts).
//! - [`config`]: the YAML configuration, its validation and the embedded default.
//! - [`ruletest`]: `klaxon test rules`, promtool-format rule unit tests.
//! - [`server`]: assembles all of the above into a running host.
//! - [`cli`]: the `klaxon` subcommands other than `serve` (`check`, `plugin run`); `klaxon token`
//!   is in `main.rs` over `api::auth`.
//! - [`routes_cli`]: `klaxon routes show` / `routes test`, amtool's routing commands.

pub mod alert;
pub mod api;
pub mod cli;
pub mod config;
pub mod duration;
pub mod ingest;
pub mod memory;
pub mod notify;
pub mod plugins;
pub mod promql;
pub mod route;
pub mod routes_cli;
pub mod rules;
pub mod ruletest;
pub mod scrape;
pub mod server;
pub mod silence;
pub mod slo;
pub mod store;
