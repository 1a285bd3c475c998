//! Service level objectives: the `slos:` config section, the multiwindow
//! multi-burn-rate alerting rules each SLO generates (the SRE workbook's
//! table), the numbers those alerts carry in their annotations, and the
//! status `GET /api/v1/slos` shows.
//!
//! An SLO's error budget is `1 - objective` (99.9 % → 0.001). The error ratio
//! over a window `w` is `errors(w) / total(w)` (or `1 - good(w) / total(w)`),
//! and the burn rate is that ratio divided by the budget: burning at 1 spends
//! exactly the budget over the period. Generated alerts, one rule each:
//!
//! | severity | long window | short window | burn rate above |
//! |----------|-------------|--------------|-----------------|
//! | page     | 1h          | 5m           | 14.4            |
//! | page     | 6h          | 30m          | 6               |
//! | ticket   | 1d          | 2h           | 3               |
//! | ticket   | 3d          | 6h           | 1               |
//!
//! Each is an ordinary PromQL alerting rule (`burn(long) > f and burn(short)
//! > f`, valued by the long-window burn rate) in a rule group `slo:<name>`;
//! when it fires, the host adds the burn rates, the budget consumed over the
//! period (the error ratio over the period divided by the budget, over the
//! data the store holds) and the time to exhaustion at the long-window burn
//! rate (`remaining × period / burn`).
//!
//! Imports config types, promql and store; never rules' internals, route,
//! notify or api.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::RuleConfig;
use crate::duration::{format as format_duration, serde_opt, serde_str};
use crate::promql::{Engine, Query, Value, ValueType};
use crate::store::{Labels, Store};

/// The placeholder an SLI query uses for the window.
pub const WINDOW_PLACEHOLDER: &str = "$window";

/// The windows `/api/v1/slos` reports burn rates for (every window the
/// generated alerts use).
pub const STATUS_WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// One `slos:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Unique name; the `slo` label of the generated alerts.
    pub name: String,
    /// The service the SLO is about; the `service` label of the alerts.
    pub service: String,
    /// Target share of good events in percent, e.g. `99.9`.
    pub objective: f64,
    /// The period the budget is counted over (default 30d).
    #[serde(default = "default_period", with = "serde_str")]
    pub period: Duration,
    /// How errors (or good events) and all events are measured.
    pub sli: SliConfig,
    /// Labels added to every generated alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotation templates added to every generated alert (they override
    /// the computed ones of the same name).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The `severity` label of page and ticket alerts.
    #[serde(default)]
    pub severities: Severities,
    /// Evaluation interval of the generated rules (default: the global one).
    #[serde(default, with = "serde_opt")]
    pub interval: Option<Duration>,
}

fn default_period() -> Duration {
    Duration::from_secs(30 * 86_400)
}

/// The SLI: `errors` or `good`, and `total`. Each is either a PromQL query
/// using `$window` (e.g. `sum(rate(http_requests_total{code=~"5.."}[$window]))`)
/// or a counter selector, read as `sum(rate(SELECTOR[$window]))`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliConfig {
    #[serde(default)]
    pub errors: Option<String>,
    #[serde(default)]
    pub good: Option<String>,
    pub total: String,
}

/// The `severity` label values of the two alert kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Severities {
    pub page: String,
    pub ticket: String,
}

impl Default for Severities {
    fn default() -> Self {
        Self {
            page: "page".into(),
            ticket: "ticket".into(),
        }
    }
}

/// Page or ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    Page,
    Ticket,
}

/// One row of the SRE workbook's table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    pub kind: AlertKind,
    pub long: &'static str,
    pub short: &'static str,
    /// Burn rate both windows must exceed.
    pub factor: f64,
}

/// The multiwindow multi-burn-rate alerts of the SRE workbook, chapter 5.
pub const BURN_WINDOWS: [BurnWindow; 4] = [
    BurnWindow {
        kind: AlertKind::Page,
        long: "1h",
        short: "5m",
        factor: 14.4,
    },
    BurnWindow {
        kind: AlertKind::Page,
        long: "6h",
        short: "30m",
        factor: 6.0,
    },
    BurnWindow {
        kind: AlertKind::Ticket,
        long: "1d",
        short: "2h",
        factor: 3.0,
    },
    BurnWindow {
        kind: AlertKind::Ticket,
        long: "3d",
        short: "6h",
        factor: 1.0,
    },
];

/// The alert name of every generated rule.
pub const ALERT_NAME: &str = "ErrorBudgetBurn";

/// The rule group of an SLO's alerts.
pub fn group_name(slo: &str) -> String {
    format!("slo:{slo}")
}

/// One SLI part, as a query text with `$window`.
fn sli_template(field: &str, text: &str) -> Result<String, String> {
    if text.contains(WINDOW_PLACEHOLDER) {
        let probe = text.replace(WINDOW_PLACEHOLDER, "5m");
        let q = Query::parse(&probe).map_err(|e| format!("{field}: {e}"))?;
        if q.value_type() != ValueType::Vector {
            return Err(format!(
                "{field}: must return an instant vector, not a {}",
                q.value_type().as_str()
            ));
        }
        return Ok(text.to_owned());
    }
    let q = Query::parse(text).map_err(|e| format!("{field}: {e}"))?;
    match q.expr() {
        promql_parser::parser::Expr::VectorSelector(vs)
            if vs.offset.is_none() && vs.at.is_none() =>
        {
            Ok(format!("sum(rate({text}[{WINDOW_PLACEHOLDER}]))"))
        }
        _ => Err(format!(
            "{field}: give a counter selector (read as sum(rate(SELECTOR[$window]))) or a query using {WINDOW_PLACEHOLDER}"
        )),
    }
}

impl SloConfig {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        Slo::new(self).map(drop)
    }
}

/// A validated SLO: its budget and the query texts it is measured with.
#[derive(Debug, Clone)]
pub struct Slo {
    pub config: SloConfig,
    /// `1 - objective / 100`.
    pub budget: f64,
    /// The error ratio over `$window`.
    ratio: String,
}

impl Slo {
    /// Checks and prepares an SLO.
    pub fn new(config: &SloConfig) -> Result<Self, String> {
        if config.name.is_empty() {
            return Err("name: must not be empty".into());
        }
        if config.service.is_empty() {
            return Err("service: must not be empty".into());
        }
        if !(config.objective > 0.0 && config.objective < 100.0) {
            return Err(format!(
                "objective: must be a percentage between 0 and 100 (exclusive), e.g. 99.9; got {}",
                config.objective
            ));
        }
        if config.period.is_zero() {
            return Err("period: must be > 0".into());
        }
        if config.interval == Some(Duration::ZERO) {
            return Err("interval: must be > 0".into());
        }
        for (field, value) in [
            ("severities.page", &config.severities.page),
            ("severities.ticket", &config.severities.ticket),
        ] {
            if value.is_empty() {
                return Err(format!("{field}: must not be empty"));
            }
        }
        for name in config.labels.keys() {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__");
            if !valid {
                return Err(format!("labels: invalid label name `{name}`"));
            }
        }
        for (key, text) in config.labels.iter().chain(&config.annotations) {
            crate::rules::template::check(text).map_err(|e| format!("template of `{key}`: {e}"))?;
        }
        let total = sli_template("sli.total", &config.sli.total)?;
        let ratio = match (&config.sli.errors, &config.sli.good) {
            (Some(errors), None) => {
                format!("({}) / ({total})", sli_template("sli.errors", errors)?)
            }
            (None, Some(good)) => {
                format!("1 - ({}) / ({total})", sli_template("sli.good", good)?)
            }
            _ => return Err("sli: give exactly one of `errors` and `good`".into()),
        };
        let budget = (100.0 - config.objective) / 100.0;
        let slo = Self {
            config: config.clone(),
            budget,
            ratio,
        };
        // Every generated query must parse.
        for w in BURN_WINDOWS {
            Query::parse(&slo.alert_expr(&w)).map_err(|e| format!("sli: {e}"))?;
        }
        Query::parse(&slo.consumed_query()).map_err(|e| format!("sli: {e}"))?;
        Ok(slo)
    }

    /// The burn rate over `window` (a PromQL duration).
    pub fn burn_query(&self, window: &str) -> String {
        format!(
            "({}) / {}",
            self.ratio.replace(WINDOW_PLACEHOLDER, window),
            self.budget
        )
    }

    /// The budget consumed over the period: the burn rate over the period.
    pub fn consumed_query(&self) -> String {
        self.burn_query(&format_duration(self.config.period))
    }

    /// The generated rule's expression: both windows above the factor,
    /// valued by the long window's burn rate.
    pub fn alert_expr(&self, w: &BurnWindow) -> String {
        format!(
            "({}) > {f} and ({}) > {f}",
            self.burn_query(w.long),
            self.burn_query(w.short),
            f = w.factor
        )
    }

    /// The rule config of one generated alert (an ordinary `expr` rule).
    pub fn rule_config(&self, w: &BurnWindow) -> RuleConfig {
        let c = &self.config;
        let mut labels = c.labels.clone();
        labels.insert("slo".into(), c.name.clone());
        labels.insert("service".into(), c.service.clone());
        labels.insert(
            "severity".into(),
            match w.kind {
                AlertKind::Page => c.severities.page.clone(),
                AlertKind::Ticket => c.severities.ticket.clone(),
            },
        );
        labels.insert("long_window".into(), w.long.into());
        labels.insert("short_window".into(), w.short.into());
        RuleConfig {
            alert: Some(ALERT_NAME.into()),
            record: None,
            expr: Some(self.alert_expr(w)),
            query: None,
            window: None,
            baseline: None,
            detector: None,
            config: serde_json::Value::Object(Default::default()),
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels,
            annotations: c.annotations.clone(),
            composite: None,
            children: Vec::new(),
            on: Vec::new(),
            notify: true,
            judge_absent: false,
        }
    }

    /// Runs a query at `t_ms`: its samples by label set.
    fn by_labels(
        engine: &Engine,
        store: &Store,
        text: &str,
        t_ms: i64,
    ) -> Result<HashMap<Labels, f64>, String> {
        let q = Query::parse(text).map_err(|e| e.to_string())?;
        match engine.instant(store, &q, t_ms).map_err(|e| e.to_string())? {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
            Value::Scalar(v) => Ok(HashMap::from([(Labels::empty(), v)])),
            other => Err(format!(
                "an SLI query returned a {}",
                other.value_type().as_str()
            )),
        }
    }

    /// Burn rates over `windows` and the budget consumed, per SLI label set.
    pub fn measure(
        &self,
        engine: &Engine,
        store: &Store,
        t_ms: i64,
        windows: &[&str],
    ) -> Result<BTreeMap<Labels, SloNumbers>, String> {
        let mut out: BTreeMap<Labels, SloNumbers> = BTreeMap::new();
        for (labels, v) in Self::by_labels(engine, store, &self.consumed_query(), t_ms)? {
            out.entry(labels).or_default().consumed = Some(v);
        }
        for w in windows {
            for (labels, v) in Self::by_labels(engine, store, &self.burn_query(w), t_ms)? {
                out.entry(labels)
                    .or_default()
                    .burn_rates
                    .insert((*w).to_owned(), v);
            }
        }
        Ok(out)
    }

    /// The annotations of a firing alert of window row `w`.
    pub fn annotations(&self, w: &BurnWindow, n: &SloNumbers) -> BTreeMap<String, String> {
        let c = &self.config;
        let long = n.burn_rates.get(w.long).copied();
        let short = n.burn_rates.get(w.short).copied();
        let consumed = n.consumed;
        let remaining = consumed.map(|c| 1.0 - c);
        let tte = time_to_exhaustion(remaining, long, c.period);
        let rate = |v: Option<f64>| v.map_or("unknown".into(), |v| format!("{v:.2}"));
        let pct = |v: Option<f64>| v.map_or("unknown".into(), |v| format!("{:.2}%", v * 100.0));
        let mut a = BTreeMap::new();
        a.insert("slo".into(), c.name.clone());
        a.insert("objective".into(), format!("{}%", c.objective));
        a.insert("burn_rate".into(), rate(long));
        a.insert("burn_rate_short".into(), rate(short));
        a.insert("burn_rate_threshold".into(), format!("{}", w.factor));
        a.insert("budget_consumed".into(), pct(consumed));
        a.insert("budget_remaining".into(), pct(remaining));
        a.insert("time_to_exhaustion".into(), tte.clone());
        a.insert(
            "summary".into(),
            format!(
                "{}: SLO {} ({}% over {}) burning its error budget {}x over {} and {}x over {}; {} of the budget consumed, exhausted {}",
                c.service,
                c.name,
                c.objective,
                format_duration(c.period),
                rate(long),
                w.long,
                rate(short),
                w.short,
                pct(consumed),
                if tte == "now" { "now".to_owned() } else { format!("in {tte}") },
            ),
        );
        a
    }
}

/// What an SLO measures for one SLI label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloNumbers {
    /// Burn rate by window.
    pub burn_rates: BTreeMap<String, f64>,
    /// Budget consumed over the period (1 = all of it).
    pub consumed: Option<f64>,
}

/// `remaining × period / burn`: `now` when the budget is gone, `never` when
/// nothing burns, `unknown` without data.
fn time_to_exhaustion(remaining: Option<f64>, burn: Option<f64>, period: Duration) -> String {
    match (remaining, burn) {
        (Some(r), _) if r <= 0.0 => "now".into(),
        (Some(r), Some(b)) if b > 0.0 && r.is_finite() && b.is_finite() => {
            let secs = r * period.as_secs_f64() / b;
            format_duration(Duration::from_secs(secs.round() as u64))
        }
        (Some(_), Some(b)) if b <= 0.0 => "never".into(),
        _ => "unknown".into(),
    }
}

/// The SLO side of a generated rule: which SLO and window row it checks, so
/// a firing alert gets the SLO's numbers as annotations.
pub struct SloRule {
    pub expr: Query,
    pub slo: Slo,
    pub window: BurnWindow,
}

impl SloRule {
    /// The annotations of each alerting series at `t_ms`, by the series' labels.
    pub fn annotations_at(
        &self,
        engine: &Engine,
        store: &Store,
        t_ms: i64,
    ) -> Result<HashMap<Labels, BTreeMap<String, String>>, String> {
        let numbers =
            self.slo
                .measure(engine, store, t_ms, &[self.window.long, self.window.short])?;
        Ok(numbers
            .into_iter()
            .map(|(labels, n)| (labels, self.slo.annotations(&self.window, &n)))
            .collect())
    }
}

/// A finite number, or JSON null.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// `GET /api/v1/slos`: each SLO's objective, budget and, per SLI label set,
/// the budget consumed and remaining, the time to exhaustion at the 1h burn
/// rate, and the burn rate of every alerting window.
pub fn status(slos: &[SloConfig], store: &Store, t_ms: i64) -> serde_json::Value {
    let engine = Engine::default();
    let list: Vec<serde_json::Value> = slos
        .iter()
        .map(|cfg| {
            let slo = match Slo::new(cfg) {
                Ok(s) => s,
                Err(e) => return serde_json::json!({"name": cfg.name, "error": e}),
            };
            let (series, error) = match slo.measure(&engine, store, t_ms, &STATUS_WINDOWS) {
                Ok(m) => (
                    m.into_iter()
                        .map(|(labels, n)| {
                            let remaining = n.consumed.map(|c| 1.0 - c);
                            serde_json::json!({
                                "labels": labels.iter().collect::<BTreeMap<_, _>>(),
                                "budgetConsumed": n.consumed.and_then(finite),
                                "budgetRemaining": remaining.and_then(finite),
                                "timeToExhaustion": time_to_exhaustion(remaining, n.burn_rates.get("1h").copied(), cfg.period),
                                "burnRates": n.burn_rates.iter().map(|(w, v)| (w.clone(), finite(*v))).collect::<BTreeMap<_, _>>(),
                            })
                        })
                        .collect::<Vec<_>>(),
                    None,
                ),
                Err(e) => (Vec::new(), Some(e)),
            };
            serde_json::json!({
                "name": cfg.name,
                "service": cfg.service,
                "objective": cfg.objective,
                "period": format_duration(cfg.period),
                "errorBudget": slo.budget,
                "ruleGroup": group_name(&cfg.name),
                "series": series,
                "error": error,
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> SloConfig {
        serde_norway::from_str(yaml).expect("slo yaml")
    }

    const BASE: &str = "name: checkout\nservice: checkout\nobjective: 99.9\nsli:\n  errors: 'http_requests_total{code=~\"5..\"}'\n  total: http_requests_total\n";

    #[test]
    fn selectors_become_rate_queries() {
        let slo = Slo::new(&cfg(BASE)).unwrap();
        assert_eq!(
            slo.burn_query("1h"),
            format!(
                "((sum(rate(http_requests_total{{code=~\"5..\"}}[1h]))) / (sum(rate(http_requests_total[1h])))) / {}",
                slo.budget
            )
        );
        assert!((slo.budget - 0.001).abs() < 1e-12);
        assert_eq!(slo.consumed_query(), slo.burn_query("4w2d"));
        let rule = slo.rule_config(&BURN_WINDOWS[0]);
        assert_eq!(rule.labels["severity"], "page");
        assert_eq!(rule.labels["long_window"], "1h");
        assert!(rule.expr.unwrap().ends_with("> 14.4"));
    }

    #[test]
    fn good_queries_with_window_placeholder() {
        let slo = Slo::new(&cfg(
            "name: s\nservice: s\nobjective: 99\nsli:\n  good: 'sum(rate(ok_total[$window]))'\n  total: 'sum(rate(all_total[$window]))'\n",
        ))
        .unwrap();
        assert!(
            slo.burn_query("5m")
                .starts_with("(1 - (sum(rate(ok_total[5m]))) / (sum(rate(all_total[5m]))))")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = Slo::new(&cfg(&BASE.replace("99.9", "100"))).unwrap_err();
        assert!(e.starts_with("objective:"), "{e}");
        let e = Slo::new(&cfg(
            &BASE.replace("http_requests_total\n", "'rate(x[5m])'\n")
        ))
        .unwrap_err();
        assert!(e.starts_with("sli.total:"), "{e}");
        let e = Slo::new(&cfg(
            &BASE.replace("  errors: 'http_requests_total{code=~\"5..\"}'\n", "")
        ))
        .unwrap_err();
        assert!(e.starts_with("sli:"), "{e}");
        let e = Slo::new(&cfg(&format!("{BASE}labels: {{ 'bad-name': x }}\n"))).unwrap_err();
        assert!(e.starts_with("labels:"), "{e}");
    }

    #[test]
    fn time_to_exhaustion_cases() {
        let p = Duration::from_secs(30 * 86_400);
        // 0.5 × 30 d / 2 = 7.5 d
        assert_eq!(time_to_exhaustion(Some(0.5), Some(2.0), p), "1w12h");
        assert_eq!(time_to_exhaustion(Some(-0.1), Some(2.0), p), "now");
        assert_eq!(time_to_exhaustion(Some(0.5), Some(0.0), p), "never");
        assert_eq!(time_to_exhaustion(None, Some(1.0), p), "unknown");
    }
}
