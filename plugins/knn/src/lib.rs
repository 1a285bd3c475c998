//! `knn`: shape novelty. Fires when the newest stretch of samples looks unlike any
//! earlier stretch of the window: the distance from the newest lag vector to its
//! nearest earlier neighbours, judged against the distances this series usually has.
//! (Draft under measurement on NAB.)

use klaxon_anomaly_common::MAX_SCORE;
use klaxon_anomaly_common::state::{StateReader, StateWriter};
use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The k-nearest-neighbour shape novelty detector.
pub struct Knn;

/// Parsed config; see the crate docs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Lag vector length.
    pub dimension: usize,
    /// Nearest neighbours averaged.
    pub neighbours: usize,
    /// Fire when the novelty score exceeds it.
    pub threshold: f64,
    /// Samples of memory of the usual distance.
    pub history: f64,
    /// Earlier lag vectors needed before a sample is judged.
    pub min_samples: usize,
    /// Distances learned before any verdict.
    pub min_history: u64,
    /// Relative floor of distances (fraction of the window's standard deviation).
    pub floor: f64,
    /// Log distances averaged before judging.
    pub averaging: usize,
    /// New-extreme tolerance (fraction of the earlier range); negative: off.
    pub extreme: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dimension: 6,
            neighbours: 3,
            threshold: 4.0,
            history: 1000.0,
            min_samples: 50,
            min_history: 50,
            floor: 0.01,
            averaging: 1,
            extreme: -1.0,
        }
    }
}

const TAG: u8 = b'K';
const VERSION: u8 = 1;

/// Per-series state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    /// Timestamp of the newest sample consumed.
    pub last_seen_ms: Option<i64>,
    /// Distances learned.
    pub learned: u64,
    /// Mean of log distances.
    pub mean: f64,
    /// Variance of log distances.
    pub variance: f64,
    /// Recent log distances, newest last.
    pub recent: Vec<f64>,
}

impl Model {
    /// Decodes a state; `None` for anything but this exact format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = StateReader::open(bytes, TAG, VERSION)?;
        let last_seen = r.i64()?;
        let mut m = Self {
            last_seen_ms: (last_seen != i64::MIN).then_some(last_seen),
            learned: r.u64()?,
            mean: r.f64()?,
            variance: r.f64()?,
            recent: Vec::new(),
        };
        let n = r.u8()?;
        for _ in 0..n {
            m.recent.push(r.f64()?);
        }
        r.finish()?;
        Some(m)
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        let w = StateWriter::new(TAG, VERSION)
            .i64(self.last_seen_ms.unwrap_or(i64::MIN))
            .u64(self.learned)
            .f64(self.mean)
            .f64(self.variance);
        let mut w = w.u8(self.recent.len() as u8);
        for x in &self.recent {
            w = w.f64(*x);
        }
        w.finish()
    }

    /// Scores log distance `u` then learns it; returns the score (None while learning).
    fn judge(&mut self, cfg: &Config, u: f64) -> Option<f64> {
        self.recent.push(u);
        if self.recent.len() > cfg.averaging {
            self.recent.remove(0);
        }
        if self.recent.len() < cfg.averaging {
            return None;
        }
        let u = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let ready = self.learned >= cfg.min_history;
        let sigma = self.variance.sqrt();
        let z = if ready {
            Some(if sigma > 0.0 {
                ((u - self.mean) / sigma).clamp(-MAX_SCORE, MAX_SCORE)
            } else if u > self.mean {
                MAX_SCORE
            } else {
                0.0
            })
        } else {
            None
        };
        let cleaned = if ready {
            u.min(self.mean + cfg.threshold * sigma)
        } else {
            u
        };
        if ready {
            let a = 1.0 / cfg.history;
            let d = cleaned - self.mean;
            self.mean += a * d;
            self.variance = (1.0 - a) * (self.variance + a * d * d);
        } else {
            self.learned += 1;
            let n = self.learned as f64;
            let d = cleaned - self.mean;
            self.mean += d / n;
            // running population variance
            self.variance += (d * (cleaned - self.mean) - self.variance) / n;
        }
        z
    }
}

/// Mean distance from the lag vector ending at `j` to its `k` nearest earlier,
/// non-overlapping lag vectors; `None` with fewer than `min` candidates.
pub fn novelty(xs: &[f64], j: usize, d: usize, k: usize, min: usize) -> Option<f64> {
    if j + 2 < 2 * d {
        return None;
    }
    let last = j + 1 - d; // candidates end at d-1 ..= j-d
    let candidates = (last + 1).saturating_sub(d - 1);
    if candidates < min.max(k) {
        return None;
    }
    let target = &xs[j + 1 - d..=j];
    let mut best: Vec<f64> = Vec::with_capacity(k + 1);
    for i in (d - 1)..last {
        let v = &xs[i + 1 - d..=i];
        let mut s = 0.0;
        let bound = best.last().copied().filter(|_| best.len() == k);
        for (a, b) in v.iter().zip(target) {
            s += (a - b) * (a - b);
            if bound.is_some_and(|w| s >= w) {
                break;
            }
        }
        if bound.is_some_and(|w| s >= w) {
            continue;
        }
        let at = best.partition_point(|&w| w <= s);
        best.insert(at, s);
        best.truncate(k);
    }
    Some(best.iter().map(|s| s.sqrt()).sum::<f64>() / best.len() as f64)
}

impl Detector for Knn {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "knn",
            env!("CARGO_PKG_VERSION"),
            "Shape novelty: distance of the newest lag vector to its nearest earlier neighbours.",
        )
    }

    fn check_config(cfg: &Config) -> Result<(), String> {
        if cfg.dimension < 1 {
            return Err("dimension: must be at least 1".into());
        }
        if cfg.neighbours < 1 {
            return Err("neighbours: must be at least 1".into());
        }
        Ok(())
    }

    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        let mut model = series.state.and_then(Model::decode).unwrap_or_default();
        let (mut ts, mut xs) = (Vec::new(), Vec::new());
        for (t, x) in series.window.iter() {
            if x.is_finite() {
                ts.push(t);
                xs.push(x);
            }
        }
        let scale = stats::stddev(&xs).unwrap_or(0.0);
        let from = match model.last_seen_ms {
            Some(t) => ts.partition_point(|&x| x <= t),
            None => 0,
        };
        let mut best: Option<(f64, f64)> = None;
        let mut extreme = false;
        for j in from..xs.len() {
            if cfg.extreme >= 0.0 && j >= cfg.min_samples {
                let (lo, hi) = xs[..j]
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
                let tol = cfg.extreme * (hi - lo);
                if xs[j] > hi + tol || xs[j] < lo - tol {
                    extreme = true;
                }
            }
            let Some(dist) = novelty(&xs, j, cfg.dimension, cfg.neighbours, cfg.min_samples)
            else {
                continue;
            };
            let u = if scale > 0.0 {
                (dist / scale + cfg.floor).ln()
            } else if dist > 0.0 {
                MAX_SCORE.ln()
            } else {
                cfg.floor.ln()
            };
            if let Some(z) = model.judge(cfg, u)
                && best.is_none_or(|(b, _)| z > b)
            {
                best = Some((z, dist));
            }
        }
        if let Some(&t) = ts.last() {
            model.last_seen_ms = Some(model.last_seen_ms.map_or(t, |s| s.max(t)));
        }
        let state = model.encode();
        match best {
            Some((z, dist)) => Verdict::new(extreme || z > cfg.threshold, z, format!("novelty z={z:.2}"))
                .annotate("distance", format_value(dist))
                .with_state(state),
            None => Verdict::ok(0.0, "learning").with_state(state),
        }
    }
}

klaxon_sdk::export_detector!(Knn);
