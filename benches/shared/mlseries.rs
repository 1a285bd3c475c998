//! The generated ML-serving data set the comparison benches share:
//! 1 000 series (latency histogram buckets, prediction and error counters,
//! feature null rates, approval rates, drift event counters), one sample
//! every 15 s, deterministic.

#![allow(dead_code)]

use std::fmt::Write as _;

/// Seconds between samples.
pub const STEP_S: i64 = 15;

pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) as f64 / 1_000_000.0
    }
}

/// One family: its type and its series (labels text, values per step).
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub series: Vec<(String, Vec<f64>)>,
}

/// 1 000 series, `points` samples each.
pub fn generate(points: usize) -> Vec<Family> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let counter = |rate: f64, rng: &mut Rng| -> Vec<f64> {
        let mut v = 0.0;
        (0..points)
            .map(|_| {
                v += (rate * (0.5 + rng.next())).round();
                v
            })
            .collect()
    };
    let mut families = Vec::new();
    // 50 models × 6 buckets.
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    let share = [0.2, 0.5, 0.8, 0.95, 0.99, 1.0];
    let mut buckets = Vec::new();
    for m in 0..50 {
        let total = counter(100.0, &mut rng);
        for (le, s) in les.iter().zip(share) {
            let vals: Vec<f64> = total.iter().map(|t| (t * s).floor()).collect();
            buckets.push((
                format!(r#"job="model-server",model_name="m{m}",le="{le}""#),
                vals,
            ));
        }
    }
    families.push(Family {
        name: "ml_prediction_duration_seconds_bucket",
        kind: "counter",
        series: buckets,
    });
    let mut errors = Vec::new();
    let mut totals = Vec::new();
    for m in 0..50 {
        let total = counter(100.0, &mut rng);
        let err: Vec<f64> = total.iter().map(|t| (t * 0.02).floor()).collect();
        totals.push((format!(r#"model_name="m{m}""#), total));
        errors.push((format!(r#"model_name="m{m}""#), err));
    }
    families.push(Family {
        name: "ml_predictions_total",
        kind: "counter",
        series: totals,
    });
    families.push(Family {
        name: "ml_prediction_errors_total",
        kind: "counter",
        series: errors,
    });
    let mut nulls = Vec::new();
    for m in 0..50 {
        for f in 0..4 {
            let faulty = m % 10 == 0 && f == 0;
            let vals: Vec<f64> = (0..points)
                .map(|i| {
                    if faulty && i + 20 > points {
                        0.3
                    } else {
                        0.01 + 0.01 * rng.next()
                    }
                })
                .collect();
            nulls.push((format!(r#"model_name="m{m}",feature="f{f}""#), vals));
        }
    }
    families.push(Family {
        name: "ml_feature_null_rate",
        kind: "gauge",
        series: nulls,
    });
    let approvals = (0..50)
        .map(|m| {
            let vals = (0..points).map(|_| 0.8 + 0.05 * rng.next()).collect();
            (format!(r#"model_name="m{m}""#), vals)
        })
        .collect();
    families.push(Family {
        name: "ml_approval_rate",
        kind: "gauge",
        series: approvals,
    });
    for name in [
        "ml_feature_drift_events_total",
        "ml_prediction_drift_events_total",
    ] {
        let mut series = Vec::new();
        for m in 0..35 {
            for s in 0..5 {
                series.push((
                    format!(r#"model_name="m{m}",shard="s{s}""#),
                    counter(3.0, &mut rng),
                ));
            }
        }
        families.push(Family {
            name,
            kind: "counter",
            series,
        });
    }
    families
}

/// Prometheus text (timestamps in ms) for VictoriaMetrics and Klaxon, and
/// OpenMetrics (timestamps in s) for promtool's backfill.
pub fn render(families: &[Family], start_s: i64) -> (String, String) {
    let mut text = String::new();
    let mut om = String::new();
    for f in families {
        let om_kind = if f.kind == "counter" && !f.name.ends_with("_total") {
            "unknown"
        } else {
            f.kind
        };
        let _ = writeln!(om, "# TYPE {} {om_kind}", om_family(f.name, om_kind));
        for (labels, vals) in &f.series {
            for (i, v) in vals.iter().enumerate() {
                let t = start_s + i as i64 * STEP_S;
                let _ = writeln!(text, "{}{{{labels}}} {v} {}", f.name, t * 1000);
                let _ = writeln!(om, "{}{{{labels}}} {v} {t}", f.name);
            }
        }
    }
    om.push_str("# EOF\n");
    (text, om)
}

/// OpenMetrics names a counter family without its `_total` suffix.
fn om_family(name: &str, kind: &str) -> String {
    if kind == "counter" {
        name.trim_end_matches("_total").to_owned()
    } else {
        name.to_owned()
    }
}
