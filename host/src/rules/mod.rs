//! Rules: each group evaluates its rules on its interval. One evaluation of a
//! rule selects the matching series, reads their windows (and baselines) into
//! one columnar batch, makes ONE detector call for the whole batch, and feeds
//! the verdicts to the rule's alert state machine. Alerts that fire or
//! resolve go forward to routing as `Alert` values.
//!
//! Imports store, plugins and alert; never route, notify or api.

pub mod state;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::alert::Alert;
use crate::config::{Config, RuleConfig};
use crate::plugins::bindings::types::{Batch, SeriesInput, Span};
use crate::plugins::{PluginKind, PluginRegistry};
use crate::store::{Labels, Matcher, Store, parse_selector};
use state::{AlertState, AlertTable, Observation, Transition};
use template::AlertTemplate;

/// What every evaluation needs from the rest of the host.
pub struct EvalContext {
    pub store: Arc<Store>,
    pub plugins: Arc<PluginRegistry>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

/// The outcome of a rule's last evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleHealth {
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_seconds: f64,
    pub last_error: Option<String>,
    /// Series judged in the last evaluation.
    pub series: usize,
}

#[derive(Default)]
struct RuleRuntime {
    table: AlertTable,
    health: RuleHealth,
    /// Detector state per series fingerprint, owned by the host.
    detector_state: HashMap<u64, Vec<u8>>,
}

/// One alerting rule, ready to evaluate.
pub struct Rule {
    pub group: String,
    pub name: String,
    pub query: String,
    selector: Vec<Matcher>,
    pub window: Duration,
    /// (offset, length) of the baseline window.
    pub baseline: Option<(Duration, Duration)>,
    pub detector: String,
    pub config: serde_json::Value,
    config_json: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, AlertTemplate>,
    pub annotations: BTreeMap<String, AlertTemplate>,
    runtime: Mutex<RuleRuntime>,
}

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub active_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<DateTime<Utc>>,
    /// Prometheus renders sample values as strings.
    pub value: String,
}

impl Rule {
    /// Builds a rule from its validated config.
    pub fn new(group: &str, cfg: &RuleConfig) -> Result<Self, String> {
        let selector = parse_selector(&cfg.query).map_err(|e| e.to_string())?;
        Ok(Self {
            group: group.to_string(),
            name: cfg.alert.clone(),
            query: cfg.query.clone(),
            selector,
            window: cfg.window,
            baseline: cfg
                .baseline
                .as_ref()
                .map(|b| (b.offset, b.window.unwrap_or(cfg.window))),
            detector: cfg.detector.clone(),
            config: cfg.config.clone(),
            config_json: cfg.config.to_string(),
            hold: cfg.for_,
            keep_firing_for: cfg.keep_firing_for,
            labels: parse_templates(&cfg.labels)?,
            annotations: parse_templates(&cfg.annotations)?,
            runtime: Mutex::new(RuleRuntime::default()),
        })
    }

    /// Evaluates the rule at `now` and returns the alerts routing must hear
    /// about (firing ones, refreshed each time, and ones resolved now). A
    /// failed evaluation is recorded in the rule's health and changes no alert.
    /// Blocks (plugin call): run on a blocking thread.
    pub fn evaluate(&self, ctx: &EvalContext, now: DateTime<Utc>) -> Vec<Alert> {
        let started = Instant::now();
        let result = self.evaluate_inner(ctx, now);
        let mut rt = self.runtime.lock();
        rt.health.last_evaluation = Some(now);
        rt.health.evaluation_seconds = started.elapsed().as_secs_f64();
        match result {
            Ok((observations, series, states)) => {
                rt.health.last_error = None;
                rt.health.series = series;
                rt.detector_state = states;
                let transitions = rt.table.apply(
                    now,
                    observations,
                    chrono::Duration::from_std(self.hold).unwrap_or(chrono::Duration::MAX),
                    chrono::Duration::from_std(self.keep_firing_for)
                        .unwrap_or(chrono::Duration::MAX),
                );
                transitions
                    .into_iter()
                    .filter_map(|t| {
                        let (fp, resolved) = match t {
                            Transition::Firing(fp) => (fp, false),
                            Transition::Resolved(fp) => (fp, true),
                        };
                        let a = rt.table.get(fp)?;
                        Some(Alert {
                            labels: a.labels.clone(),
                            annotations: a.annotations.clone(),
                            starts_at: a.fired_at.unwrap_or(a.active_at),
                            ends_at: if resolved { a.resolved_at } else { None },
                            generator_url: format!(
                                "{}/api/v1/rules?group={}&rule={}",
                                ctx.external_url, self.group, self.name
                            ),
                        })
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(group = %self.group, rule = %self.name, error = %e, "rule evaluation failed");
                rt.health.last_error = Some(e);
                Vec::new()
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn evaluate_inner(
        &self,
        ctx: &EvalContext,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let now_ms = now.timestamp_millis();
        let window_ms = self.window.as_millis() as i64;
        let handles = ctx.store.select(&self.selector);
        let previous_states = std::mem::take(&mut self.runtime.lock().detector_state);
        let mut batch = Batch {
            series: Vec::with_capacity(handles.len()),
            timestamps_ms: Vec::new(),
            values: Vec::new(),
            eval_time_ms: now_ms,
        };
        let mut judged = Vec::with_capacity(handles.len());
        for handle in &handles {
            let start = batch.values.len();
            ctx.store.read_window(
                handle,
                now_ms - window_ms,
                now_ms,
                &mut batch.timestamps_ms,
                &mut batch.values,
            );
            let len = batch.values.len() - start;
            if len == 0 {
                continue; // no sample in the window: the series is stale for this rule
            }
            let baseline = match self.baseline {
                Some((offset, length)) => {
                    let end = now_ms - offset.as_millis() as i64;
                    let b_start = batch.values.len();
                    ctx.store.read_window(
                        handle,
                        end - length.as_millis() as i64,
                        end,
                        &mut batch.timestamps_ms,
                        &mut batch.values,
                    );
                    Span {
                        start: b_start as u32,
                        len: (batch.values.len() - b_start) as u32,
                    }
                }
                None => Span {
                    start: batch.values.len() as u32,
                    len: 0,
                },
            };
            let labels = handle.labels();
            let fp = labels.fingerprint();
            batch.series.push(SeriesInput {
                labels: labels.to_prom_string(),
                window: Span {
                    start: start as u32,
                    len: len as u32,
                },
                baseline,
                state: previous_states.get(&fp).cloned(),
            });
            judged.push(labels.clone());
        }
        if batch.series.is_empty() {
            return Ok((Vec::new(), 0, HashMap::new()));
        }
        let plugin = ctx
            .plugins
            .get_kind(&self.detector, PluginKind::Detector)
            .map_err(|e| e.to_string())?;
        let outputs = plugin
            .evaluate(&self.config_json, &batch)
            .map_err(|e| format!("detector `{}`: {e}", self.detector))?;

        let mut states = HashMap::new();
        let mut observations = Vec::with_capacity(outputs.len());
        for (series_labels, out) in judged.iter().zip(outputs) {
            if let Some(s) = out.state {
                states.insert(series_labels.fingerprint(), s);
            }
            let verdict = out.verdict;
            if !verdict.firing {
                continue; // absent from the observations = condition does not hold
            }
            let base: BTreeMap<String, String> = series_labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let render = |t: &AlertTemplate| {
                t.render(
                    &base,
                    &ctx.external_labels,
                    &ctx.external_url,
                    verdict.score,
                )
                .unwrap_or_else(|e| {
                    tracing::warn!(rule = %self.name, error = %e, "template failed");
                    format!("template error: {e}")
                })
            };
            let mut labels = base.clone();
            for (k, v) in &self.labels {
                labels.insert(k.clone(), render(v));
            }
            for (k, v) in &ctx.external_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            labels.insert("alertname".into(), self.name.clone());
            let mut annotations: BTreeMap<String, String> = verdict
                .annotations
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect();
            if !verdict.summary.is_empty() {
                annotations.insert("detector_summary".into(), verdict.summary);
            }
            for (k, v) in &self.annotations {
                annotations.insert(k.clone(), render(v));
            }
            observations.push(Observation {
                labels: Labels::new(labels),
                annotations,
                value: verdict.score,
                firing: true,
            });
        }
        Ok((observations, judged.len(), states))
    }

    /// The rule's health after its last evaluation.
    pub fn health(&self) -> RuleHealth {
        self.runtime.lock().health.clone()
    }

    /// Pending and firing alerts, for the API.
    pub fn active_alerts(&self) -> Vec<AlertView> {
        let rt = self.runtime.lock();
        let mut out: Vec<AlertView> = rt
            .table
            .active()
            .map(|a| AlertView {
                labels: a
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                annotations: a.annotations.clone(),
                state: a.state,
                active_at: a.active_at,
                fired_at: a.fired_at,
                value: format_value(a.value),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

fn parse_templates(
    m: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, AlertTemplate>, String> {
    m.iter()
        .map(|(k, v)| {
            AlertTemplate::parse(v)
                .map(|t| (k.clone(), t))
                .map_err(|e| format!("template of `{k}`: {e}"))
        })
        .collect()
}

/// The source text of templates, for the API.
pub fn template_sources(m: &BTreeMap<String, AlertTemplate>) -> BTreeMap<&str, &str> {
    m.iter().map(|(k, v)| (k.as_str(), v.source())).collect()
}

/// A float the way Prometheus's API renders it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Rules evaluated together at one interval.
pub struct RuleGroup {
    pub name: String,
    pub interval: Duration,
    pub rules: Vec<Arc<Rule>>,
    last: Mutex<(Option<DateTime<Utc>>, f64)>,
}

impl RuleGroup {
    /// Last evaluation time and its duration in seconds.
    pub fn last_evaluation(&self) -> (Option<DateTime<Utc>>, f64) {
        *self.last.lock()
    }

    /// Evaluates every rule in order at `now`; blocks.
    pub fn evaluate(&self, ctx: &EvalContext, now: DateTime<Utc>) -> Vec<Alert> {
        let started = Instant::now();
        let alerts = self
            .rules
            .iter()
            .flat_map(|r| r.evaluate(ctx, now))
            .collect();
        *self.last.lock() = (Some(now), started.elapsed().as_secs_f64());
        alerts
    }
}

/// Builds the rule groups of a validated config.
pub fn build_groups(config: &Config) -> Result<Vec<Arc<RuleGroup>>, String> {
    config
        .groups
        .iter()
        .map(|g| {
            let rules = g
                .rules
                .iter()
                .map(|r| Rule::new(&g.name, r).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(RuleGroup {
                name: g.name.clone(),
                interval: g.interval.unwrap_or(config.global.evaluation_interval),
                rules,
                last: Mutex::new((None, 0.0)),
            }))
        })
        .collect()
}

/// Starts one task per group that evaluates it every interval and sends the
/// resulting alerts to `sink` (routing). Evaluation runs on blocking threads
/// so a slow detector never stalls the HTTP server.
pub fn spawn_groups(
    groups: &[Arc<RuleGroup>],
    ctx: Arc<EvalContext>,
    sink: mpsc::Sender<Vec<Alert>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    groups
        .iter()
        .map(|group| {
            let group = group.clone();
            let ctx = ctx.clone();
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(group.interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    ticker.tick().await;
                    let (g, c) = (group.clone(), ctx.clone());
                    let alerts = match tokio::task::spawn_blocking(move || g.evaluate(&c, Utc::now())).await {
                        Ok(alerts) => alerts,
                        Err(e) => {
                            tracing::error!(group = %group.name, error = %e, "rule group evaluation panicked");
                            continue;
                        }
                    };
                    if !alerts.is_empty() && sink.send(alerts).await.is_err() {
                        break; // routing is gone: shutting down
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_value_matches_prometheus_strings() {
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
    }
}
