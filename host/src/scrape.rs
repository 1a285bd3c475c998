//! `scrape` owns pulling metrics: Prometheus-style `scrape_configs`, one
//! loop per target that fetches the text exposition (0.0.4 or OpenMetrics),
//! adds `job` and `instance`, and writes the samples, `up`,
//! `scrape_duration_seconds` and `scrape_samples_scraped` to the store.
//!
//! Staleness as Prometheus does it: a series scraped last time and missing
//! now, or every series of a target whose scrape failed, gets one sample
//! with the staleness NaN (`0x7ff0000000000002`) at the scrape time, so
//! readers can tell "gone" from "not scraped yet".
//!
//! It reads bodies through `ingest` (same name rules and limits as a push)
//! and writes to `store`; it must never import `rules`, `route`, `notify`,
//! `api` or `plugins`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::ingest::{IngestLimits, SeriesSamples, TextFormat, parse_prom_text};
use crate::store::{Labels, METRIC_NAME, Store};

/// One `scrape_configs` entry, as in Prometheus.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped here.
    pub job_name: String,
    /// Targets as `host:port`, each with extra labels.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// How often each target is scraped.
    #[serde(default = "default_interval", with = "crate::duration::serde_str")]
    pub scrape_interval: Duration,
    /// How long one scrape may take; a longer one than `scrape_interval` is
    /// cut to it.
    #[serde(default = "default_timeout", with = "crate::duration::serde_str")]
    pub scrape_timeout: Duration,
    /// The HTTP path of the exposition.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// When a scraped label clashes with a target label (`job`, `instance`
    /// or a static label): `false` keeps the target's and renames the
    /// scraped one `exported_<name>`; `true` keeps the scraped one.
    #[serde(default)]
    pub honor_labels: bool,
}

/// A group of targets sharing labels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

/// A problem in `scrape_configs`; `job` locates it in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scrape config `{job}`: {reason}")]
pub struct ScrapeConfigError {
    pub job: String,
    pub reason: String,
}

/// Checks every scrape config: unique job names, a sane interval and
/// timeout, a known scheme, a path, `host:port` targets, valid label names.
pub fn validate(configs: &[ScrapeConfig]) -> Result<(), ScrapeConfigError> {
    let mut jobs = HashSet::new();
    for c in configs {
        let fail = |reason: String| ScrapeConfigError {
            job: c.job_name.clone(),
            reason,
        };
        if c.job_name.is_empty() {
            return Err(fail("job_name must not be empty".into()));
        }
        if !jobs.insert(c.job_name.as_str()) {
            return Err(fail("duplicate job_name".into()));
        }
        if c.scrape_interval.is_zero() {
            return Err(fail("scrape_interval must be > 0".into()));
        }
        if c.scrape_timeout.is_zero() {
            return Err(fail("scrape_timeout must be > 0".into()));
        }
        if c.scheme != "http" && c.scheme != "https" {
            return Err(fail(format!(
                "scheme must be `http` or `https`, not `{}`",
                c.scheme
            )));
        }
        if !c.metrics_path.starts_with('/') {
            return Err(fail(format!(
                "metrics_path must start with `/`, not `{}`",
                c.metrics_path
            )));
        }
        for sc in &c.static_configs {
            for t in &sc.targets {
                let ok = t
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                    && !t.contains('/');
                if !ok {
                    return Err(fail(format!("target `{t}` is not `host:port`")));
                }
            }
            for name in sc.labels.keys() {
                let b = name.as_bytes();
                let valid = matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    && !name.starts_with("__");
                if !valid {
                    return Err(fail(format!("invalid target label name `{name}`")));
                }
            }
        }
    }
    Ok(())
}

/// One target's settings, resolved from its config.
struct Target {
    url: String,
    /// `job`, `instance` and the static labels.
    labels: Vec<(String, String)>,
    interval: Duration,
    timeout: Duration,
    honor_labels: bool,
}

/// Starts one scrape loop per target. The loops run until their handles are
/// aborted.
pub fn spawn(
    configs: &[ScrapeConfig],
    store: Arc<Store>,
    limits: IngestLimits,
) -> Vec<JoinHandle<()>> {
    let client = reqwest::Client::new();
    let limits = Arc::new(limits);
    let mut tasks = Vec::new();
    for c in configs {
        for sc in &c.static_configs {
            for t in &sc.targets {
                let mut labels: Vec<(String, String)> = sc
                    .labels
                    .iter()
                    .filter(|(n, _)| *n != "job" && *n != "instance")
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                labels.push(("job".into(), c.job_name.clone()));
                labels.push((
                    "instance".into(),
                    sc.labels
                        .get("instance")
                        .cloned()
                        .unwrap_or_else(|| t.clone()),
                ));
                let target = Target {
                    url: format!("{}://{t}{}", c.scheme, c.metrics_path),
                    labels,
                    interval: c.scrape_interval,
                    timeout: c.scrape_timeout.min(c.scrape_interval),
                    honor_labels: c.honor_labels,
                };
                tracing::info!(job = %c.job_name, url = %target.url, "scrape target started");
                tasks.push(tokio::spawn(run(
                    target,
                    client.clone(),
                    store.clone(),
                    limits.clone(),
                )));
            }
        }
    }
    tasks
}

/// The loop of one target.
async fn run(
    target: Target,
    client: reqwest::Client,
    store: Arc<Store>,
    limits: Arc<IngestLimits>,
) {
    let mut tick = tokio::time::interval(target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: HashSet<Labels> = HashSet::new();
    loop {
        tick.tick().await;
        previous = scrape_once(&target, &client, &store, &limits, previous).await;
    }
}

/// Fetches, parses and stores one scrape; returns the series it wrote.
async fn scrape_once(
    target: &Target,
    client: &reqwest::Client,
    store: &Store,
    limits: &IngestLimits,
    previous: HashSet<Labels>,
) -> HashSet<Labels> {
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let scraped = fetch(target, client, limits)
        .await
        .and_then(|(format, body)| {
            parse_prom_text(&body, format, limits, now_ms, &[]).map_err(|e| e.to_string())
        });
    let (mut batch, up) = match scraped {
        Ok(series) => (
            series
                .into_iter()
                .map(|s| SeriesSamples {
                    labels: target_labels(&s.labels, target),
                    samples: s.samples,
                })
                .collect::<Vec<_>>(),
            true,
        ),
        Err(error) => {
            tracing::warn!(url = %target.url, %error, "scrape failed");
            (Vec::new(), false)
        }
    };
    let samples_scraped: usize = batch.iter().map(|s| s.samples.len()).sum();
    let current: HashSet<Labels> = batch.iter().map(|s| s.labels.clone()).collect();
    let stale = crate::promql::stale_nan();
    for gone in previous.difference(&current) {
        batch.push(SeriesSamples {
            labels: gone.clone(),
            samples: vec![(now_ms, stale)],
        });
    }
    let (up, current) = match store.append(&batch) {
        Ok(_) => (up, current),
        Err(error) => {
            tracing::warn!(url = %target.url, %error, "scraped samples refused by the store");
            (false, HashSet::new())
        }
    };
    let report = |name: &str, value: f64| SeriesSamples {
        labels: Labels::new(
            target
                .labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .chain([(METRIC_NAME, name)]),
        ),
        samples: vec![(now_ms, value)],
    };
    let own = [
        report("up", if up { 1.0 } else { 0.0 }),
        report("scrape_duration_seconds", started.elapsed().as_secs_f64()),
        report("scrape_samples_scraped", samples_scraped as f64),
    ];
    if let Err(error) = store.append(&own) {
        tracing::warn!(url = %target.url, %error, "scrape report refused by the store");
    }
    tracing::debug!(url = %target.url, up, samples = samples_scraped, "scraped");
    current
}

/// GETs the exposition within the timeout and the body limit.
async fn fetch(
    target: &Target,
    client: &reqwest::Client,
    limits: &IngestLimits,
) -> Result<(TextFormat, Vec<u8>), String> {
    let request = client
        .get(&target.url)
        .header(
            reqwest::header::ACCEPT,
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
        )
        .timeout(target.timeout);
    let mut resp = request.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let format = TextFormat::from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limits.max_body_bytes {
            return Err(format!(
                "body exceeds limits.max_body_bytes = {}",
                limits.max_body_bytes
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((format, body))
}

/// A scraped series' labels with the target's added (see `honor_labels`).
fn target_labels(scraped: &Labels, target: &Target) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(scraped.len() + target.labels.len());
    for (n, v) in scraped.iter() {
        let clashes = target.labels.iter().any(|(t, _)| t == n);
        if clashes && !target.honor_labels {
            pairs.push((format!("exported_{n}"), v.to_owned()));
        } else {
            pairs.push((n.to_owned(), v.to_owned()));
        }
    }
    for (n, v) in &target.labels {
        let taken = target.honor_labels && scraped.get(n).is_some();
        if !taken {
            pairs.push((n.clone(), v.clone()));
        }
    }
    Labels::new(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(honor_labels: bool) -> Target {
        Target {
            url: "http://x:1/metrics".into(),
            labels: vec![
                ("env".into(), "prod".into()),
                ("job".into(), "api".into()),
                ("instance".into(), "x:1".into()),
            ],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            honor_labels,
        }
    }

    #[test]
    fn target_labels_rename_or_honor_clashes() {
        let scraped = Labels::new([("__name__", "m"), ("job", "batch"), ("a", "1")]);
        assert_eq!(
            target_labels(&scraped, &target(false)),
            Labels::new([
                ("__name__", "m"),
                ("a", "1"),
                ("exported_job", "batch"),
                ("job", "api"),
                ("env", "prod"),
                ("instance", "x:1"),
            ])
        );
        assert_eq!(
            target_labels(&scraped, &target(true)),
            Labels::new([
                ("__name__", "m"),
                ("a", "1"),
                ("job", "batch"),
                ("env", "prod"),
                ("instance", "x:1"),
            ])
        );
    }

    #[test]
    fn validation_names_the_job_and_reason() {
        let good = ScrapeConfig {
            job_name: "node".into(),
            static_configs: vec![StaticConfig {
                targets: vec!["127.0.0.1:9100".into()],
                labels: BTreeMap::new(),
            }],
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            honor_labels: false,
        };
        assert_eq!(validate(std::slice::from_ref(&good)), Ok(()));
        let bad = |edit: &dyn Fn(&mut ScrapeConfig), reason: &str| {
            let mut c = good.clone();
            edit(&mut c);
            assert_eq!(
                validate(&[c]).map_err(|e| e.to_string()),
                Err(format!("scrape config `node`: {reason}"))
            );
        };
        bad(
            &|c| c.scheme = "ftp".into(),
            "scheme must be `http` or `https`, not `ftp`",
        );
        bad(
            &|c| c.metrics_path = "metrics".into(),
            "metrics_path must start with `/`, not `metrics`",
        );
        bad(
            &|c| c.scrape_interval = Duration::ZERO,
            "scrape_interval must be > 0",
        );
        bad(
            &|c| c.static_configs[0].targets = vec!["http://a:1".into()],
            "target `http://a:1` is not `host:port`",
        );
        bad(
            &|c| {
                c.static_configs[0].labels.insert("__x".into(), "1".into());
            },
            "invalid target label name `__x`",
        );
        assert_eq!(
            validate(&[good.clone(), good]).map_err(|e| e.reason),
            Err("duplicate job_name".into())
        );
    }
}
