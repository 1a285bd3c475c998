//! Rules: each group evaluates its rules on its interval. Two kinds:
//! - Prometheus alerting rules (`expr`): the PromQL expression is evaluated
//!   at the instant; each output series is an active alert.
//! - Detector rules (`query`): the query's result over the window (raw
//!   samples for a plain selector, otherwise the query evaluated at the
//!   group's interval), and its baseline, go into one columnar batch and ONE
//!   detector call for the whole batch.
//!
//! - Composite rules (`composite`): a composite plugin's verdicts over other
//!   rules' alert states (see `composite`).
//! - SLO burn-rate rules, generated from `slos:` (see `crate::slo`): PromQL
//!   alerting rules whose alerts carry the SLO's numbers.
//!
//! Either way the observations feed the rule's alert state machine; alerts
//! that fire or resolve go forward to routing as `Alert` values, except
//! those of rules with `notify: false`, which stay visible in the API only.
//!
//! Imports store, promql, plugins, slo and alert; never route, notify or api.

pub mod composite;
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
use crate::config::{Config, RuleConfig, RuleGroupConfig};
use crate::plugins::bindings::types::{Batch, SeriesInput, Span};
use crate::plugins::{PluginKind, PluginRegistry};
use crate::promql::{Engine, Query, Value};
use crate::store::{Labels, Matcher, SeriesSamples, Store};
use state::{AlertState, AlertTable, Observation, Transition};
use template::AlertTemplate;

/// What every evaluation needs from the rest of the host.
pub struct EvalContext {
    pub store: Arc<Store>,
    pub plugins: Arc<PluginRegistry>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// Whether alerts carry the external labels (the server: yes, as
    /// Prometheus adds them when it sends to Alertmanager; rule unit tests:
    /// no, as promtool compares alerts without them).
    pub external_labels_on_alerts: bool,
}

/// The outcome of a rule's last evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleHealth {
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_seconds: f64,
    pub last_error: Option<String>,
    /// Series judged in the last evaluation.
    pub series: usize,
    /// Evaluations that failed since the rule was loaded.
    pub failures: u64,
}

#[derive(Default)]
struct RuleRuntime {
    table: AlertTable,
    health: RuleHealth,
    /// Detector state per series fingerprint, owned by the host.
    detector_state: HashMap<u64, Vec<u8>>,
    /// Series a recording rule wrote last time: those missing now get a
    /// staleness marker, as Prometheus writes.
    recorded: std::collections::HashSet<Labels>,
    /// Firing transitions per alert fingerprint, kept while a composite
    /// names this rule.
    history: HashMap<u64, composite::AlertHistory>,
}

/// What a rule evaluates.
pub enum RuleKind {
    /// A Prometheus alerting rule: each series of `expr` is an alert.
    Expr { expr: Query },
    /// A Prometheus recording rule: `expr`'s result is stored as `metric`.
    Record { expr: Query, metric: String },
    /// A detector rule: the query's result over the window goes to a detector.
    Detector(DetectorRule),
    /// A composite rule: a composite plugin judges its children's alert states.
    Composite(composite::CompositeRule),
    /// An SLO burn-rate rule generated from `slos:`: `expr` with the SLO's
    /// numbers in the annotations.
    Slo(crate::slo::SloRule),
}

/// The detector side of a detector rule.
pub struct DetectorRule {
    pub query: Query,
    /// The query's matchers when it is a plain selector: raw samples are
    /// read straight from the store.
    selector: Option<Vec<Matcher>>,
    pub window: Duration,
    /// (offset, length) of the baseline window.
    pub baseline: Option<(Duration, Duration)>,
    pub detector: String,
    pub config: serde_json::Value,
    config_json: String,
    /// Call the detector with one empty placeholder series when nothing
    /// matched (`judge_absent`).
    judge_absent: bool,
}

/// One alerting rule, ready to evaluate.
pub struct Rule {
    pub group: String,
    pub name: String,
    pub kind: RuleKind,
    /// Evaluation step of range queries and default subquery step: the
    /// group's interval.
    step: Duration,
    /// The group's `query_offset`: queries run this long before `now`.
    query_offset: Duration,
    /// The group's `limit` on alerts or recorded series (0: none).
    limit: usize,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, AlertTemplate>,
    pub annotations: BTreeMap<String, AlertTemplate>,
    /// `false`: alerts are kept and shown, never handed to routing.
    pub notify: bool,
    /// Set when a composite names this rule: record alert history.
    tracked: std::sync::atomic::AtomicBool,
    runtime: Mutex<RuleRuntime>,
}

/// The raw matchers of a query that is a plain selector (no offset, no `@`).
fn plain_selector(q: &Query) -> Option<Vec<Matcher>> {
    use promql_parser::parser::Expr;
    let Expr::VectorSelector(vs) = q.expr() else {
        return None;
    };
    if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return None;
    }
    let mut ms = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        ms.push(Matcher::equal(crate::store::METRIC_NAME, name.as_str()));
    }
    ms.extend(vs.matchers.matchers.iter().map(Matcher::from_promql));
    Some(ms)
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
    /// Builds a rule of group `group` from its validated config; `step` is
    /// the group's interval.
    pub fn new(group: &RuleGroupConfig, cfg: &RuleConfig, step: Duration) -> Result<Self, String> {
        let kind = match (&cfg.expr, &cfg.query) {
            (None, None) if cfg.composite.is_some() => {
                RuleKind::Composite(composite::CompositeRule::new(
                    cfg.composite.clone().unwrap_or_default(),
                    cfg.config.clone(),
                    cfg.children.clone(),
                    cfg.on.clone(),
                ))
            }
            (Some(expr), None) => match &cfg.record {
                Some(metric) => RuleKind::Record {
                    expr: Query::parse(expr).map_err(|e| e.to_string())?,
                    metric: metric.clone(),
                },
                None => RuleKind::Expr {
                    expr: Query::parse(expr).map_err(|e| e.to_string())?,
                },
            },
            (None, Some(query)) => {
                let query = Query::parse(query).map_err(|e| e.to_string())?;
                let window = cfg
                    .window
                    .ok_or_else(|| format!("rule `{}` needs a window", cfg.name()))?;
                RuleKind::Detector(DetectorRule {
                    selector: plain_selector(&query),
                    query,
                    window,
                    baseline: cfg
                        .baseline
                        .as_ref()
                        .map(|b| (b.offset, b.window.unwrap_or(window))),
                    detector: cfg
                        .detector
                        .clone()
                        .ok_or_else(|| format!("rule `{}` needs a detector", cfg.name()))?,
                    config: cfg.config.clone(),
                    config_json: cfg.config.to_string(),
                    judge_absent: cfg.judge_absent,
                })
            }
            _ => {
                return Err(format!(
                    "rule `{}` needs exactly one of `expr` and `query`",
                    cfg.name()
                ));
            }
        };
        let mut labels = group.labels.clone();
        labels.extend(cfg.labels.clone());
        Ok(Self {
            group: group.name.clone(),
            name: cfg.name().to_owned(),
            kind,
            step,
            query_offset: group.query_offset.unwrap_or_default(),
            limit: group.limit,
            hold: cfg.for_,
            keep_firing_for: cfg.keep_firing_for,
            labels: parse_templates(&labels)?,
            annotations: parse_templates(&cfg.annotations)?,
            notify: cfg.notify,
            tracked: std::sync::atomic::AtomicBool::new(false),
            runtime: Mutex::new(RuleRuntime::default()),
        })
    }

    /// What makes two rules of two configs the same rule: group, name,
    /// query and (for detector rules) detector and config. A reloaded
    /// config's rule takes over the state of the same rule of the old one.
    pub fn identity(&self) -> String {
        let detector = match &self.kind {
            RuleKind::Detector(d) => format!("{}\u{0}{}", d.detector, d.config),
            RuleKind::Record { metric, .. } => format!("record:{metric}"),
            RuleKind::Composite(c) => format!(
                "composite:{}\u{0}{}\u{0}{}\u{0}{}",
                c.plugin,
                c.config,
                c.children.join(","),
                c.on.join(",")
            ),
            RuleKind::Expr { .. } | RuleKind::Slo(_) => String::new(),
        };
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{detector}\u{0}{}",
            self.group,
            self.name,
            self.query_text(),
            self.notify
        )
    }

    /// The labels of the rule's firing alerts.
    pub fn firing_labels(&self) -> Vec<Labels> {
        self.runtime
            .lock()
            .table
            .active()
            .filter(|a| a.state == state::AlertState::Firing)
            .map(|a| a.labels.clone())
            .collect()
    }

    /// Takes over `old`'s alerts, detector state and health (a config
    /// reload); `old` is left empty.
    pub fn take_state_from(&self, old: &Rule) {
        let taken = std::mem::take(&mut *old.runtime.lock());
        *self.runtime.lock() = taken;
    }

    /// The rule's PromQL text (`expr` or `query`).
    pub fn query_text(&self) -> &str {
        match &self.kind {
            RuleKind::Expr { expr } | RuleKind::Record { expr, .. } => expr.text(),
            RuleKind::Detector(d) => d.query.text(),
            RuleKind::Composite(_) => "",
            RuleKind::Slo(s) => s.expr.text(),
        }
    }

    /// The instant queries run at: `now` less the group's `query_offset`.
    fn query_time(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis() - self.query_offset.as_millis() as i64
    }

    fn engine(&self) -> Engine {
        Engine {
            default_subquery_step_ms: self.step.as_millis().max(1) as i64,
            ..Engine::default()
        }
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
                if self.tracked.load(std::sync::atomic::Ordering::Relaxed) {
                    let rt = &mut *rt;
                    composite::record_history(&mut rt.history, &rt.table, now);
                }
                if !self.notify {
                    return Vec::new(); // visible in the API, never routed
                }
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
                            annotations: std::sync::Arc::new(a.annotations.clone()),
                            starts_at: a.fired_at.unwrap_or(a.active_at),
                            ends_at: if resolved { a.resolved_at } else { None },
                            generator_url: format!(
                                "{}/api/v1/rules?group={}&rule={}",
                                ctx.external_url, self.group, self.name
                            )
                            .into(),
                        })
                    })
                    .collect()
            }
            Err(e) => {
                rt.health.failures += 1;
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
        match &self.kind {
            RuleKind::Expr { expr } => self.evaluate_expr(ctx, expr, now),
            RuleKind::Record { expr, metric } => self.evaluate_record(ctx, expr, metric, now),
            RuleKind::Detector(d) => self.evaluate_detector(ctx, d, now),
            RuleKind::Composite(c) => self.evaluate_composite(ctx, c, now),
            RuleKind::Slo(s) => self.evaluate_slo(ctx, s, now),
        }
    }

    /// A recording rule: stores `expr`'s result under `metric`, and a
    /// staleness marker for each series it wrote last time but not now.
    #[allow(clippy::type_complexity)]
    fn evaluate_record(
        &self,
        ctx: &EvalContext,
        expr: &Query,
        metric: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let now_ms = self.query_time(now);
        let samples = match self
            .engine()
            .instant(&*ctx.store, expr, now_ms)
            .map_err(|e| format!("expr: {e}"))?
        {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            Value::Scalar(v) => vec![(Labels::empty(), v)],
            other => {
                return Err(format!(
                    "expr returned a {}, not an instant vector",
                    other.value_type().as_str()
                ));
            }
        };
        let mut batch: Vec<SeriesSamples> = Vec::with_capacity(samples.len());
        let mut written = std::collections::HashSet::with_capacity(samples.len());
        for (labels, v) in samples {
            let mut pairs: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            pairs.insert(crate::store::METRIC_NAME.into(), metric.to_owned());
            for (k, t) in &self.labels {
                pairs.insert(k.clone(), t.source().to_owned());
            }
            let labels = Labels::new(pairs);
            if !written.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            batch.push(SeriesSamples {
                labels,
                samples: vec![(now_ms, v)],
            });
        }
        let count = batch.len();
        if self.limit > 0 && count > self.limit {
            return Err(format!(
                "exceeded limit of {} with {count} series",
                self.limit
            ));
        }
        let mut rt = self.runtime.lock();
        for gone in rt.recorded.iter().filter(|l| !written.contains(*l)) {
            batch.push(SeriesSamples {
                labels: gone.clone(),
                samples: vec![(now_ms, crate::promql::stale_nan())],
            });
        }
        rt.recorded = written;
        drop(rt);
        ctx.store.append(&batch).map_err(|e| e.to_string())?;
        Ok((Vec::new(), count, HashMap::new()))
    }

    /// A Prometheus alerting rule: every output series is an active alert.
    #[allow(clippy::type_complexity)]
    fn evaluate_expr(
        &self,
        ctx: &EvalContext,
        expr: &Query,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let value = self
            .engine()
            .instant(&*ctx.store, expr, self.query_time(now))
            .map_err(|e| format!("expr: {e}"))?;
        let Value::Vector(samples) = value else {
            return Err(format!(
                "expr returned a {}, not an instant vector",
                value.value_type().as_str()
            ));
        };
        if self.limit > 0 && samples.len() > self.limit {
            return Err(format!(
                "exceeded limit of {} with {} alerts",
                self.limit,
                samples.len()
            ));
        }
        let observations = samples
            .iter()
            .map(|s| self.observation(ctx, &s.labels, s.v, BTreeMap::new()))
            .collect();
        Ok((observations, samples.len(), HashMap::new()))
    }

    /// An SLO burn-rate rule: `expr` as an alerting rule, each alert
    /// annotated with the SLO's burn rates, budget and time to exhaustion.
    #[allow(clippy::type_complexity)]
    fn evaluate_slo(
        &self,
        ctx: &EvalContext,
        s: &crate::slo::SloRule,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let engine = self.engine();
        let t_ms = self.query_time(now);
        let value = engine
            .instant(&*ctx.store, &s.expr, t_ms)
            .map_err(|e| format!("expr: {e}"))?;
        let Value::Vector(samples) = value else {
            return Err(format!(
                "expr returned a {}, not an instant vector",
                value.value_type().as_str()
            ));
        };
        if samples.is_empty() {
            return Ok((Vec::new(), 0, HashMap::new()));
        }
        // The SLO's numbers are computed only while the rule alerts.
        let numbers = s
            .annotations_at(&engine, &ctx.store, t_ms)
            .map_err(|e| format!("slo: {e}"))?;
        let observations = samples
            .iter()
            .map(|smp| {
                let extra = numbers.get(&smp.labels).cloned().unwrap_or_default();
                self.observation(ctx, &smp.labels, smp.v, extra)
            })
            .collect();
        Ok((observations, samples.len(), HashMap::new()))
    }

    /// Labels and annotations of an active alert for one series.
    fn observation(
        &self,
        ctx: &EvalContext,
        series_labels: &Labels,
        value: f64,
        mut annotations: BTreeMap<String, String>,
    ) -> Observation {
        let base: BTreeMap<String, String> = series_labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let render = |t: &AlertTemplate| {
            t.render(&base, &ctx.external_labels, &ctx.external_url, value)
                .unwrap_or_else(|e| {
                    tracing::warn!(rule = %self.name, error = %e, "template failed");
                    format!("template error: {e}")
                })
        };
        let mut labels = base.clone();
        for (k, v) in &self.labels {
            labels.insert(k.clone(), render(v));
        }
        if ctx.external_labels_on_alerts {
            for (k, v) in &ctx.external_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        labels.insert("alertname".into(), self.name.clone());
        for (k, v) in &self.annotations {
            annotations.insert(k.clone(), render(v));
        }
        Observation {
            labels: Labels::new(labels),
            annotations,
            value,
            firing: true,
        }
    }

    /// Reads the window (and baseline) of every series into `batch`: raw
    /// samples for a plain selector, otherwise the query evaluated at the
    /// rule's step over each window.
    fn fill_batch(
        &self,
        ctx: &EvalContext,
        d: &DetectorRule,
        now_ms: i64,
        batch: &mut Batch,
        previous_states: &HashMap<u64, Vec<u8>>,
    ) -> Result<Vec<Labels>, String> {
        let window_ms = d.window.as_millis() as i64;
        let mut judged = Vec::new();
        let state_of = |labels: &Labels| previous_states.get(&labels.fingerprint()).cloned();
        if let Some(selector) = &d.selector {
            let handles = ctx.store.select(selector);
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
                let baseline = match d.baseline {
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
                        span(b_start, batch.values.len())
                    }
                    None => span(batch.values.len(), batch.values.len()),
                };
                let labels = handle.labels();
                batch.series.push(SeriesInput {
                    labels: labels.to_prom_string(),
                    window: span(start, start + len),
                    baseline,
                    state: state_of(labels),
                });
                judged.push(labels.clone());
            }
            return Ok(judged);
        }
        // A PromQL query: evaluated at the rule's step over (end - length, end].
        let engine = self.engine();
        let step = self.step.as_millis().max(1) as i64;
        let range = |end: i64, length: i64| {
            let start = end - ((length - 1).max(0) / step) * step;
            engine
                .range(&*ctx.store, &d.query, start, end, step)
                .map_err(|e| format!("query: {e}"))
        };
        let window = range(now_ms, window_ms)?;
        let mut baseline: HashMap<Labels, Vec<(i64, f64)>> = match d.baseline {
            Some((offset, length)) => range(
                now_ms - offset.as_millis() as i64,
                length.as_millis() as i64,
            )?
            .into_iter()
            .map(|s| (s.labels, s.samples))
            .collect(),
            None => HashMap::new(),
        };
        for s in window {
            let start = batch.values.len();
            for (t, v) in &s.samples {
                batch.timestamps_ms.push(*t);
                batch.values.push(*v);
            }
            let end = batch.values.len();
            let b_start = batch.values.len();
            for (t, v) in baseline.remove(&s.labels).unwrap_or_default() {
                batch.timestamps_ms.push(t);
                batch.values.push(v);
            }
            batch.series.push(SeriesInput {
                labels: s.labels.to_prom_string(),
                window: span(start, end),
                baseline: span(b_start, batch.values.len()),
                state: state_of(&s.labels),
            });
            judged.push(s.labels);
        }
        Ok(judged)
    }

    /// A detector rule: one batched detector call for every series.
    #[allow(clippy::type_complexity)]
    fn evaluate_detector(
        &self,
        ctx: &EvalContext,
        d: &DetectorRule,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let now_ms = self.query_time(now);
        let previous_states = std::mem::take(&mut self.runtime.lock().detector_state);
        let mut batch = Batch {
            series: Vec::new(),
            timestamps_ms: Vec::new(),
            values: Vec::new(),
            eval_time_ms: now_ms,
        };
        let mut judged = self.fill_batch(ctx, d, now_ms, &mut batch, &previous_states)?;
        if batch.series.is_empty() {
            if !d.judge_absent {
                return Ok((Vec::new(), 0, HashMap::new()));
            }
            judged.push(absent_placeholder(d, &mut batch));
        }
        let plugin = ctx
            .plugins
            .get_kind(&d.detector, PluginKind::Detector)
            .map_err(|e| e.to_string())?;
        let outputs = plugin
            .evaluate(&d.config_json, &batch)
            .map_err(|e| format!("detector `{}`: {e}", d.detector))?;
        if let Some(shadow) = ctx.plugins.shadow(&d.detector) {
            let series: Vec<(String, u64)> = batch
                .series
                .iter()
                .zip(&judged)
                .map(|(s, l)| (s.labels.clone(), l.fingerprint()))
                .collect();
            shadow.run(&self.name, &d.config_json, &batch, &series, &outputs);
        }

        let mut states = HashMap::new();
        let mut observations = Vec::with_capacity(outputs.len());
        let mut covered_groups = std::collections::HashSet::new();
        for (series_labels, out) in judged.iter().zip(outputs) {
            if let Some(s) = out.state {
                states.insert(series_labels.fingerprint(), s);
            }
            let verdict = out.verdict;
            if !verdict.firing {
                continue; // absent from the observations = condition does not hold
            }
            let mut annotations: BTreeMap<String, String> = verdict
                .annotations
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect();
            if !verdict.summary.is_empty() {
                annotations.insert("detector_summary".into(), verdict.summary);
            }
            let grouped = annotations
                .remove(GROUP_WITHOUT_ANNOTATION)
                .map(|names| without_labels(series_labels, &names));
            let alert_labels = grouped.as_ref().unwrap_or(series_labels);
            if grouped.is_some() && !covered_groups.insert(alert_labels.fingerprint()) {
                continue; // another series of the same group already raised it
            }
            observations.push(self.observation(ctx, alert_labels, verdict.score, annotations));
        }
        if self.limit > 0 && observations.len() > self.limit {
            return Err(format!(
                "exceeded limit of {} with {} alerts",
                self.limit,
                observations.len()
            ));
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

/// Verdict annotation by which a detector says its verdict covers the group
/// of series differing only in the listed labels (comma-separated, e.g.
/// `le` for the buckets of one histogram): the alert is labelled without
/// them, so the group raises ONE alert. The same name as the SDK's
/// `GROUP_WITHOUT_ANNOTATION`.
pub const GROUP_WITHOUT_ANNOTATION: &str = "__group_without__";

/// `labels` less the comma-separated label `names`.
fn without_labels(labels: &Labels, names: &str) -> Labels {
    let drop: Vec<&str> = names.split(',').map(str::trim).collect();
    Labels::new(
        labels
            .iter()
            .filter(|(k, _)| !drop.contains(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The one empty series a `judge_absent` rule hands its detector when
/// nothing matched: labelled with the selector's equality matchers (metric
/// name included), as PromQL's `absent()` labels its result; `{}` for a
/// query that is not a plain selector.
fn absent_placeholder(d: &DetectorRule, batch: &mut Batch) -> Labels {
    let pairs: BTreeMap<String, String> = d
        .selector
        .iter()
        .flatten()
        .filter(|m| m.op() == crate::store::MatchOp::Equal)
        .map(|m| (m.name().to_owned(), m.value().to_owned()))
        .collect();
    let labels = Labels::new(pairs);
    let at = batch.values.len();
    batch.series.push(SeriesInput {
        labels: labels.to_prom_string(),
        window: span(at, at),
        baseline: span(at, at),
        state: None,
    });
    labels
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

fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
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
    /// Indexes into `rules` in evaluation order (composites after their
    /// same-group children).
    order: Vec<usize>,
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
            .order
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .flat_map(|r| r.evaluate(ctx, now))
            .collect();
        *self.last.lock() = (Some(now), started.elapsed().as_secs_f64());
        alerts
    }
}

/// Builds the rule groups of a validated config.
pub fn build_groups(config: &Config) -> Result<Vec<Arc<RuleGroup>>, String> {
    let mut groups = config
        .groups
        .iter()
        .map(|g| {
            let interval = g.interval.unwrap_or(config.global.evaluation_interval);
            let rules = g
                .rules
                .iter()
                .map(|r| Rule::new(g, r, interval).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(RuleGroup {
                name: g.name.clone(),
                interval,
                order: composite::evaluation_order(&rules),
                rules,
                last: Mutex::new((None, 0.0)),
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    for slo in &config.slos {
        groups.push(Arc::new(build_slo_group(
            slo,
            config.global.evaluation_interval,
        )?));
    }
    let all: Vec<Arc<Rule>> = groups.iter().flat_map(|g| g.rules.clone()).collect();
    composite::link(&all)?;
    Ok(groups)
}

/// The rule group of one SLO: its generated burn-rate alerting rules.
fn build_slo_group(
    cfg: &crate::slo::SloConfig,
    default_interval: Duration,
) -> Result<RuleGroup, String> {
    let slo = crate::slo::Slo::new(cfg).map_err(|e| format!("slo `{}`: {e}", cfg.name))?;
    let interval = cfg.interval.unwrap_or(default_interval);
    let group = RuleGroupConfig {
        name: crate::slo::group_name(&cfg.name),
        interval: Some(interval),
        query_offset: None,
        limit: 0,
        labels: BTreeMap::new(),
        rules: Vec::new(),
    };
    let rules = crate::slo::BURN_WINDOWS
        .iter()
        .map(|w| {
            let rc = slo.rule_config(w);
            let mut rule = Rule::new(&group, &rc, interval)?;
            let RuleKind::Expr { expr } = rule.kind else {
                return Err(format!(
                    "slo `{}`: generated rule is not an expr rule",
                    cfg.name
                ));
            };
            rule.kind = RuleKind::Slo(crate::slo::SloRule {
                expr,
                slo: slo.clone(),
                window: *w,
            });
            Ok(Arc::new(rule))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RuleGroup {
        name: group.name,
        interval,
        order: (0..rules.len()).collect(),
        rules,
        last: Mutex::new((None, 0.0)),
    })
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
    fn group_verdicts_drop_the_listed_labels() {
        let bucket = Labels::new([("__name__", "h_bucket"), ("le", "0.5"), ("model", "a")]);
        let group = without_labels(&bucket, "le");
        assert_eq!(
            group,
            Labels::new([("__name__", "h_bucket"), ("model", "a")])
        );
        let other = Labels::new([("__name__", "h_bucket"), ("le", "+Inf"), ("model", "a")]);
        assert_eq!(
            without_labels(&other, " le ").fingerprint(),
            group.fingerprint()
        );
        let two = without_labels(&bucket, "le,model");
        assert_eq!(two, Labels::new([("__name__", "h_bucket")]));
    }

    #[test]
    fn format_value_matches_prometheus_strings() {
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
    }
}
