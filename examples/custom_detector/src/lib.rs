//! A custom Klaxon detector, from scratch: `mean_shift`.
//!
//! **What it checks.** An ML model's prediction scores drift when its inputs drift.
//! This detector compares the mean prediction score of the current window against the
//! same rule's *baseline* window (for example the same hour yesterday, set with
//! `baseline: 1d` in the rule) and fires when the mean moved by more than `threshold`
//! baseline standard deviations:
//!
//! ```text
//! shift = (mean(window) - mean(baseline)) / max(stddev(baseline), min_stddev)
//! firing = |shift| > threshold
//! ```
//!
//! **How this example is laid out** (one concept per file, read them in this order):
//!
//! 1. `lib.rs` (this file): the plugin itself: one type, one trait, one macro.
//! 2. [`config`]: the config object users write in their rules, and how to validate it.
//! 3. [`shift`]: the statistic, a pure function over sample slices; easy to unit-test.
//! 4. [`streak`]: remembering something between evaluations with host-owned state.
//!
//! Build it (see `README.md`):
//!
//! ```text
//! cargo build --target wasm32-wasip2 --release -p klaxon-example-custom-detector
//! ```

// The prelude brings the trait (`Detector`), the types the host hands you (`Series`,
// `Window`), what you return (`Output`, `Verdict`), and helpers (`stats`, `log`,
// `format_value`). You never see wit-bindgen types.
use klaxon_sdk::prelude::*;

pub mod config;
pub mod shift;
pub mod streak;

use config::Config;

/// The plugin. It has no fields: a detector is stateless between calls, everything
/// it needs arrives as arguments (the config, the series, the state it returned last
/// time). A unit struct is just a name to hang the trait on.
pub struct MeanShift;

impl Detector for MeanShift {
    /// The SDK parses the rule's JSON config into this type for you, and turns serde
    /// errors into messages naming the field (`threshold: invalid type: ...`).
    type Config = Config;

    /// How the plugin presents itself. The host shows the description to operators
    /// and validates rule configs against the schema before asking `check_config`.
    fn info() -> Info {
        Info::new(
            "mean_shift",
            env!("CARGO_PKG_VERSION"),
            "Fires when the window's mean moved more than `threshold` baseline standard \
             deviations away from the baseline window's mean (e.g. prediction-score drift \
             against the same hour yesterday).",
        )
        .schema(config::SCHEMA)
    }

    /// Checks serde cannot do (ranges, relations between fields). Runs when the host
    /// loads a rule, and again before every evaluation, so `evaluate` can trust it.
    fn check_config(cfg: &Config) -> Result<(), String> {
        cfg.validate()
    }

    /// Judges ONE series. The SDK splits the host's batch (often hundreds of series
    /// in one call) and calls this once per series, in order. `series.window` and
    /// `series.baseline` are slices straight into the batch: no copies were made.
    ///
    /// Rule of thumb: never panic here. A panic traps the plugin and fails the whole
    /// batch; return a non-firing verdict that says what was missing instead.
    fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
        // The baseline span is empty when the rule has no `baseline` offset: that is a
        // configuration problem of the rule, not of this series. Say so in the summary.
        if series.baseline.is_empty() {
            return Verdict::ok(0.0, "no baseline window: give the rule a baseline offset").into();
        }

        // Step 3 of the tour: the statistic, computed on the raw value slices.
        let shift = match shift::mean_shift(
            series.window.values,
            series.baseline.values,
            cfg.min_samples,
            cfg.min_stddev,
        ) {
            Ok(shift) => shift,
            // Too few samples is normal right after a deploy: not firing, and the
            // summary explains why, so nobody wonders about a silent detector.
            Err(why) => return Verdict::ok(0.0, why).into(),
        };

        let firing = shift.sigmas.abs() > cfg.threshold;

        // Step 4 of the tour: how many evaluations in a row has the mean been off?
        // The previous count comes back in `series.state`; we return the next one.
        let streak = streak::next(series.state, firing);

        // Labels are parsed only when asked for; here only to log which model moved.
        if firing && streak == 1 {
            let model = series.labels.get("model_name").unwrap_or_default();
            log::info(&format!("mean shift started for model {model:?}"));
        }

        Verdict::new(
            firing,
            shift.sigmas,
            format!(
                "mean {} vs baseline {} ({} sigmas)",
                format_value(shift.window_mean),
                format_value(shift.baseline_mean),
                format_value(shift.sigmas)
            ),
        )
        // Annotations end up on the alert, next to the summary, for templates.
        .annotate("window_mean", format_value(shift.window_mean))
        .annotate("baseline_mean", format_value(shift.baseline_mean))
        .annotate("baseline_stddev", format_value(shift.baseline_stddev))
        .annotate("streak", streak.to_string())
        .with_state(streak::encode(streak))
    }
}

// The one macro. In a Wasm build it generates the component's exports (`info`,
// `check-config`, `evaluate`); in a native build (unit tests) it only checks that
// `MeanShift` implements `Detector`, so `cargo test` works on your machine.
klaxon_sdk::export_detector!(MeanShift);

#[cfg(test)]
mod tests {
    //! End-to-end tests through `klaxon_sdk::testing`, which runs the plugin exactly as
    //! the Wasm export would: config text → parse → check → batch → `evaluate`.

    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    /// Baseline 0.2, 0.3, 0.2, 0.3, 0.2, 0.3: mean 0.25; deviations ±0.05, so
    /// m2 = 6 · 0.0025 = 0.015, sample variance 0.015 / 5 = 0.003,
    /// stddev = sqrt(0.003) ≈ 0.0547723.
    const BASELINE: [f64; 6] = [0.2, 0.3, 0.2, 0.3, 0.2, 0.3];

    fn series(window: &[f64]) -> TestSeries {
        TestSeries::from_values(window)
            .labels(&[("__name__", "prediction_score"), ("model_name", "fraud")])
            .baseline(&BASELINE)
    }

    #[test]
    fn shifted_mean_fires() {
        // Window mean 0.4: shift = (0.4 - 0.25) / 0.0547723 ≈ 2.73861 > 2.
        let config = r#"{"threshold": 2, "min_samples": 5}"#;
        let window = [0.4, 0.4, 0.4, 0.4, 0.4];
        let out = testing::run_detector::<MeanShift>(config, &[series(&window)]).unwrap();
        let v = &out[0].verdict;
        assert!(v.firing);
        assert!((v.score - 2.73861).abs() < 1e-5, "{}", v.score);
        assert_eq!(v.summary, "mean 0.4 vs baseline 0.25 (2.73861 sigmas)");
        assert_eq!(v.annotation("baseline_stddev"), Some("0.0547723"));
        assert_eq!(v.annotation("streak"), Some("1"));
        assert_eq!(testing::take_logs().len(), 1, "logs when a shift starts");
    }

    #[test]
    fn streak_counts_consecutive_shifts() {
        let config = r#"{"threshold": 2, "min_samples": 5}"#;
        let window = [0.4; 5];
        // As if the host handed back the state from two earlier firing evaluations.
        let previous = streak::encode(2);
        let out =
            testing::run_detector::<MeanShift>(config, &[series(&window).state(previous)]).unwrap();
        assert_eq!(out[0].verdict.annotation("streak"), Some("3"));
        assert_eq!(out[0].state, Some(streak::encode(3)));
    }

    #[test]
    fn steady_mean_does_not_fire() {
        // Window mean 0.26: shift = 0.01 / 0.0547723 ≈ 0.182574 < 3 (the default).
        let window = [0.26; 10];
        let out = testing::run_detector::<MeanShift>(r#"{"min_samples": 5}"#, &[series(&window)])
            .unwrap();
        assert!(!out[0].verdict.firing);
        assert!((out[0].verdict.score - 0.182574).abs() < 1e-6);
    }

    #[test]
    fn no_baseline_is_explained() {
        let s = TestSeries::from_values(&[0.4; 10]);
        let out = testing::run_detector::<MeanShift>("{}", &[s]).unwrap();
        assert!(!out[0].verdict.firing);
        assert!(out[0].verdict.summary.starts_with("no baseline window"));
    }

    /// The README's sample input gives the verdicts the README promises.
    #[test]
    fn sample_batch_json() {
        let input: serde_json::Value = serde_json::from_str(include_str!("../batch.json")).unwrap();
        let window = |w: &serde_json::Value| -> (Vec<i64>, Vec<f64>) {
            let ts = w["timestamps_ms"].as_array().unwrap();
            let vs = w["values"].as_array().unwrap();
            (
                ts.iter().map(|t| t.as_i64().unwrap()).collect(),
                // The host's input format writes non-finite values as "NaN", "+Inf", "-Inf".
                vs.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect(),
            )
        };
        let series: Vec<TestSeries> = input
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels: Vec<(&str, &str)> = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                    .collect();
                let (ts, vs) = window(&s["window"]);
                let (bts, bvs) = window(&s["baseline"]);
                let mut t = TestSeries::new(&labels, ts, vs);
                t.baseline_timestamps_ms = bts;
                t.baseline_values = bvs;
                t
            })
            .collect();
        let out =
            testing::run_detector::<MeanShift>(r#"{"threshold": 3, "min_samples": 5}"#, &series)
                .unwrap();
        // fraud: window mean 0.4, baseline mean 0.25, baseline stddev 0.011547:
        // (0.4 - 0.25) / 0.011547 ≈ 12.9904 sigmas, firing.
        assert!(out[0].verdict.firing);
        assert_eq!(
            out[0].verdict.summary,
            "mean 0.4 vs baseline 0.25 (12.9904 sigmas)"
        );
        // churn: both means 0.6 (the NaN sample is skipped): about 0 sigmas.
        assert!(!out[1].verdict.firing);
        assert!(out[1].verdict.score.abs() < 1e-9);
    }

    #[test]
    fn one_output_per_series() {
        let out = testing::run_detector::<MeanShift>(
            r#"{"min_samples": 5}"#,
            &[series(&[0.25; 5]), series(&[0.9; 5]), series(&[])],
        )
        .unwrap();
        let firing: Vec<bool> = out.iter().map(|o| o.verdict.firing).collect();
        assert_eq!(firing, [false, true, false]);
    }
}
