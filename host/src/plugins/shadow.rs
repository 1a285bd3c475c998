//! Shadow rollout: a candidate version that runs beside the live one on the
//! same batches (same windows, its own per-series state) without its
//! verdicts reaching any alert, and the report of how often it agrees with
//! the live version, with the differing verdicts and their series.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::Plugin;
use super::bindings::types::{Batch, SeriesOutput, Verdict};

/// Differing verdicts kept (the newest).
pub const MAX_DIFFS: usize = 100;

/// One verdict, as the report shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerdictView {
    pub firing: bool,
    pub score: f64,
    pub summary: String,
}

impl From<&Verdict> for VerdictView {
    fn from(v: &Verdict) -> Self {
        Self {
            firing: v.firing,
            score: v.score,
            summary: v.summary.clone(),
        }
    }
}

/// A series the two versions judged differently (firing or not).
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub rule: String,
    /// The series' labels, Prometheus style.
    pub labels: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub live: VerdictView,
    pub shadow: VerdictView,
}

/// A version running in shadow.
pub struct Shadow {
    pub plugin: Arc<Plugin>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    calls: AtomicU64,
    failures: AtomicU64,
    compared: AtomicU64,
    agreed: AtomicU64,
    diffs: parking_lot::Mutex<VecDeque<Diff>>,
    /// The shadow's own per-series state, by (rule, series fingerprint).
    state: parking_lot::Mutex<HashMap<(String, u64), Vec<u8>>>,
}

/// The report of `GET /api/v1/plugins/NAME/shadow`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    pub hash: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Batches the shadow judged.
    pub calls: u64,
    /// Shadow calls that failed (the live verdicts were used regardless).
    pub failures: u64,
    /// Series verdicts compared, and how many agreed.
    pub compared: u64,
    pub agreed: u64,
    /// `agreed / compared`; `null` before the first comparison.
    pub agreement_rate: Option<f64>,
    /// The newest differing verdicts (at most [`MAX_DIFFS`]), oldest first.
    pub diffs: Vec<Diff>,
}

impl Shadow {
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self {
            plugin,
            started_at: chrono::Utc::now(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            agreed: AtomicU64::new(0),
            diffs: parking_lot::Mutex::new(VecDeque::new()),
            state: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Judges `batch` (what the live version just judged) with the shadow
    /// version and compares verdicts. `series` are the batch's series
    /// (Prometheus label text, fingerprint), in order; `live` the live
    /// outputs. The batch's states are replaced by the shadow's own.
    pub fn run(
        &self,
        rule: &str,
        config: &str,
        batch: &Batch,
        series: &[(String, u64)],
        live: &[SeriesOutput],
    ) {
        let mut own = batch.clone();
        {
            let state = self.state.lock();
            for (input, (_, fp)) in own.series.iter_mut().zip(series) {
                input.state = state.get(&(rule.to_string(), *fp)).cloned();
            }
        }
        let outputs = match self.plugin.evaluate(config, &own) {
            Ok(o) => o,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin = %self.plugin.info.name, error = %e, "shadow call failed");
                return;
            }
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now();
        let mut state = self.state.lock();
        let mut diffs = Vec::new();
        for ((out, live), (labels, fp)) in outputs.iter().zip(live).zip(series) {
            match &out.state {
                Some(s) => state.insert((rule.to_string(), *fp), s.clone()),
                None => state.remove(&(rule.to_string(), *fp)),
            };
            self.compared.fetch_add(1, Ordering::Relaxed);
            if out.verdict.firing == live.verdict.firing {
                self.agreed.fetch_add(1, Ordering::Relaxed);
            } else {
                diffs.push(Diff {
                    rule: rule.to_string(),
                    labels: labels.clone(),
                    at: now,
                    live: (&live.verdict).into(),
                    shadow: (&out.verdict).into(),
                });
            }
        }
        drop(state);
        if !diffs.is_empty() {
            let mut kept = self.diffs.lock();
            for d in diffs {
                if kept.len() == MAX_DIFFS {
                    kept.pop_front();
                }
                kept.push_back(d);
            }
        }
    }

    pub fn report(&self) -> ShadowReport {
        let compared = self.compared.load(Ordering::Relaxed);
        let agreed = self.agreed.load(Ordering::Relaxed);
        ShadowReport {
            hash: self.plugin.hash.clone(),
            started_at: self.started_at,
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            compared,
            agreed,
            agreement_rate: (compared > 0).then(|| agreed as f64 / compared as f64),
            diffs: self.diffs.lock().iter().cloned().collect(),
        }
    }
}
