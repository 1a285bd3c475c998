//! The host's evaluation model, natively: one detector rule over one series.
//!
//! Mirrors `host/src/rules` for a plain-selector detector rule (one series, or
//! one group of category series judged together, [`RuleRun::evaluate_group`]): at each evaluation
//! time `t` the window is the samples in `(t - window, t]` and the baseline the
//! samples in `(t - offset - length, t - offset]`; a series with no sample in its
//! window is not judged (and, as in the host, loses its detector state); the state
//! a verdict returns is handed back on the next evaluation, `None` keeps none.
//! The alert follows `host/src/rules/state.rs`: a firing verdict makes it pending,
//! pending turns firing once `for` has elapsed (the *onset*: what pages someone),
//! a non-firing verdict drops a pending alert and resolves a firing one once
//! `keep_firing_for` has elapsed since the condition cleared. Both are counted in
//! evaluations (the host counts time; evaluations are one interval apart).
//!
//! Detectors are called through `klaxon_sdk::testing::run_detector_at`, the entry
//! point the plugin's Wasm export uses (config text → parse → check → batch → verdict).

use klaxon_sdk::testing::TestSeries;
use klaxon_sdk::verdict::Output;

/// How a detector is called: `klaxon_sdk::testing::run_detector_at::<D>`.
pub type EvalFn = fn(&str, &[TestSeries], i64) -> Result<Vec<Output>, String>;

/// One timestamped sample; NaN is a pushed null.
pub type Sample = (i64, f64);

/// What one evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The verdict fired (false when the series was not judged).
    pub condition: bool,
    /// The alert is firing after this evaluation.
    pub firing: bool,
    /// This evaluation turned the alert firing.
    pub onset: bool,
    /// The verdict's score (0 when not judged).
    pub score: f64,
}

/// An alert's state, as in the host's alert table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alert {
    Inactive,
    Pending { active_at: u64 },
    Firing { cleared_at: Option<u64> },
}

impl Alert {
    /// Applies one evaluation's condition at evaluation `now`; true on an onset.
    fn step(&mut self, now: u64, condition: bool, rule: AlertRule) -> bool {
        *self = match (*self, condition) {
            (Alert::Inactive, true) => Alert::Pending { active_at: now },
            (Alert::Firing { .. }, true) => Alert::Firing { cleared_at: None },
            (Alert::Pending { .. }, false) => Alert::Inactive,
            (Alert::Firing { cleared_at }, false) => {
                let since = cleared_at.unwrap_or(now);
                if now - since >= rule.keep_firing_for {
                    Alert::Inactive
                } else {
                    Alert::Firing {
                        cleared_at: Some(since),
                    }
                }
            }
            (other, _) => other,
        };
        if let Alert::Pending { active_at } = *self
            && now - active_at >= rule.hold
        {
            *self = Alert::Firing { cleared_at: None };
            return true;
        }
        false
    }

    fn firing(self) -> bool {
        matches!(self, Alert::Firing { .. })
    }
}

/// Rule settings that shape alerts (`for` and `keep_firing_for` in evaluations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertRule {
    /// `for`: evaluations a condition must hold before the alert fires.
    pub hold: u64,
    /// `keep_firing_for`: evaluations a firing alert outlives its condition.
    pub keep_firing_for: u64,
    /// `judge_absent: true`: when the window is empty the host calls the detector
    /// with one empty series labelled from the query's matchers, a different alert
    /// (and state) than the series' own.
    pub judge_absent: bool,
}

/// One rule over one series, carrying what the host carries between evaluations.
pub struct RuleRun<'a> {
    eval: EvalFn,
    config: &'a str,
    rule: AlertRule,
    evaluations: u64,
    state: Option<Vec<u8>>,
    alert: Alert,
    absent_state: Option<Vec<u8>>,
    absent_alert: Alert,
    /// Evaluations whose detector call failed (counted, judged not firing).
    pub errors: usize,
    /// The first error message, for the report.
    pub first_error: Option<String>,
    /// The summary of the last single-series verdict (for `--trace`).
    pub last_summary: String,
}

impl<'a> RuleRun<'a> {
    /// A rule with no history.
    pub fn new(eval: EvalFn, config: &'a str, rule: AlertRule) -> Self {
        Self {
            eval,
            config,
            rule,
            evaluations: 0,
            state: None,
            alert: Alert::Inactive,
            absent_state: None,
            absent_alert: Alert::Inactive,
            errors: 0,
            first_error: None,
            last_summary: String::new(),
        }
    }

    /// Evaluates at `eval_time_ms` on an explicit window and baseline.
    pub fn evaluate(&mut self, window: &[Sample], baseline: &[Sample], eval_time_ms: i64) -> Step {
        if window.is_empty() {
            // The host skips the series: no verdict (it counts as not firing) and,
            // since states are rebuilt from the outputs, its state is dropped.
            self.state = None;
            if !self.rule.judge_absent {
                return self.advance(false, 0.0);
            }
            let state = self.absent_state.take();
            let (firing, score) = self.call(&[], &[], state, eval_time_ms, true);
            return self.advance_both(false, firing, score);
        }
        let state = self.state.take();
        let (firing, score) = self.call(window, baseline, state, eval_time_ms, false);
        self.absent_state = None;
        self.advance_both(firing, false, score)
    }

    /// Evaluates at `eval_time_ms` on several series of one group (one per category
    /// value, `(label value, window, baseline)`, labelled `label`), as one batched
    /// call: the group's verdicts are one alert, firing when any series' verdict
    /// fires (group verdicts give every member the same one); the score is the
    /// largest. Series with an empty window are not sent, as in the host; when none
    /// is left the group is not judged. No state is carried between group
    /// evaluations (the grouped detectors keep none).
    pub fn evaluate_group(
        &mut self,
        label: &str,
        members: &[(&str, &[Sample], &[Sample])],
        eval_time_ms: i64,
    ) -> Step {
        let batch: Vec<TestSeries> = members
            .iter()
            .filter(|(_, window, _)| !window.is_empty())
            .map(|&(value, window, baseline)| {
                let mut series = TestSeries::new(
                    &[("__name__", "bench"), (label, value)],
                    window.iter().map(|s| s.0).collect(),
                    window.iter().map(|s| s.1).collect(),
                );
                series.baseline_timestamps_ms = baseline.iter().map(|s| s.0).collect();
                series.baseline_values = baseline.iter().map(|s| s.1).collect();
                series
            })
            .collect();
        if batch.is_empty() {
            return self.advance(false, 0.0);
        }
        match (self.eval)(self.config, &batch, eval_time_ms) {
            Ok(outputs) if outputs.len() == batch.len() => {
                let firing = outputs.iter().any(|o| o.verdict.firing);
                let score = outputs.iter().map(|o| o.verdict.score).fold(0.0, f64::max);
                self.advance(firing, score)
            }
            Ok(outputs) => {
                self.fail(format!(
                    "{} outputs for {} series",
                    outputs.len(),
                    batch.len()
                ));
                self.advance(false, 0.0)
            }
            Err(e) => {
                self.fail(e);
                self.advance(false, 0.0)
            }
        }
    }

    /// Calls the detector on one series; stores the state it returns.
    fn call(
        &mut self,
        window: &[Sample],
        baseline: &[Sample],
        state: Option<Vec<u8>>,
        eval_time_ms: i64,
        absent: bool,
    ) -> (bool, f64) {
        let mut series = TestSeries::new(
            &[("__name__", "bench")],
            window.iter().map(|s| s.0).collect(),
            window.iter().map(|s| s.1).collect(),
        );
        series.baseline_timestamps_ms = baseline.iter().map(|s| s.0).collect();
        series.baseline_values = baseline.iter().map(|s| s.1).collect();
        series.state = state;
        match (self.eval)(self.config, &[series], eval_time_ms) {
            Ok(mut outputs) if outputs.len() == 1 => {
                let mut out = outputs.remove(0);
                self.last_summary = std::mem::take(&mut out.verdict.summary);
                if absent {
                    self.absent_state = out.state;
                } else {
                    self.state = out.state;
                }
                (out.verdict.firing, out.verdict.score)
            }
            Ok(outputs) => {
                self.fail(format!("{} outputs for 1 series", outputs.len()));
                (false, 0.0)
            }
            Err(e) => {
                self.fail(e);
                (false, 0.0)
            }
        }
    }

    /// One step of the alert state machine on a condition computed elsewhere (a
    /// composite over other rules' alerts).
    pub fn advance(&mut self, condition: bool, score: f64) -> Step {
        self.advance_both(condition, false, score)
    }

    /// Steps the series' alert and the absent-series alert.
    fn advance_both(&mut self, condition: bool, absent_condition: bool, score: f64) -> Step {
        let now = self.evaluations;
        self.evaluations += 1;
        let onset = self.alert.step(now, condition, self.rule);
        let absent_onset = self.absent_alert.step(now, absent_condition, self.rule);
        Step {
            condition: condition || absent_condition,
            firing: self.alert.firing() || self.absent_alert.firing(),
            onset: onset || absent_onset,
            score,
        }
    }

    fn fail(&mut self, error: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }
}

/// The samples of `samples` (sorted by time) in `(start_ms, end_ms]`, as the
/// store's `read_window` selects them.
pub fn range(samples: &[Sample], start_ms: i64, end_ms: i64) -> &[Sample] {
    let lo = samples.partition_point(|&(t, _)| t <= start_ms);
    let hi = samples.partition_point(|&(t, _)| t <= end_ms);
    if lo >= hi { &[] } else { &samples[lo..hi] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_left_open_right_closed() {
        let s: Vec<Sample> = (0..5).map(|i| (i * 10, i as f64)).collect();
        assert_eq!(range(&s, 10, 30), &s[2..4]);
        assert_eq!(range(&s, -1, 0), &s[0..1]);
        assert!(range(&s, 40, 100).is_empty());
    }

    #[test]
    fn state_is_carried_and_onsets_counted() {
        let zscore: EvalFn = klaxon_sdk::testing::run_detector_at::<klaxon_plugin_zscore::ZScore>;
        let mut rule = RuleRun::new(
            zscore,
            r#"{"min_samples":2,"threshold":3}"#,
            AlertRule::default(),
        );
        let calm: Vec<Sample> = (0..10).map(|i| (i, (i % 2) as f64)).collect();
        let mut spiked = calm.clone();
        spiked.push((10, 50.0));
        assert!(!rule.evaluate(&calm, &[], 9).firing);
        let step = rule.evaluate(&spiked, &[], 10);
        assert!(step.firing && step.onset);
        let mut still = spiked.clone();
        still.push((11, 60.0));
        let step = rule.evaluate(&still, &[], 11);
        assert!(
            step.firing && !step.onset,
            "an alert already firing is no new onset"
        );
        assert!(
            !rule.evaluate(&[], &[], 12).firing,
            "an empty window is not judged"
        );
        assert_eq!(rule.errors, 0);
    }

    /// Scores the number of evaluations it has seen, counted in its state.
    fn counter(_: &str, series: &[TestSeries], _: i64) -> Result<Vec<Output>, String> {
        let seen = series[0].state.as_ref().map_or(0, |s| s[0]);
        Ok(vec![
            klaxon_sdk::Verdict::ok(f64::from(seen), "").with_state(vec![seen + 1]),
        ])
    }

    #[test]
    fn state_returns_on_the_next_evaluation_and_is_lost_when_skipped() {
        let mut rule = RuleRun::new(counter, "", AlertRule::default());
        let w = [(0, 1.0)];
        let scores: Vec<f64> = (0..3).map(|t| rule.evaluate(&w, &[], t).score).collect();
        assert_eq!(scores, vec![0.0, 1.0, 2.0]);
        rule.evaluate(&[], &[], 3);
        assert_eq!(
            rule.evaluate(&w, &[], 4).score,
            0.0,
            "state dropped with the skipped series"
        );
    }

    /// Fires on an empty window: `absent`.
    fn fires_when_empty(_: &str, series: &[TestSeries], _: i64) -> Result<Vec<Output>, String> {
        Ok(vec![
            klaxon_sdk::Verdict::new(series[0].values.is_empty(), 0.0, "").into(),
        ])
    }

    #[test]
    fn judge_absent_calls_the_detector_on_an_empty_window() {
        let w = [(0, 1.0)];
        for (judge_absent, expected) in [
            (false, vec![false; 4]),
            (true, vec![false, true, false, false]),
        ] {
            let rule = AlertRule {
                judge_absent,
                ..AlertRule::default()
            };
            let mut run = RuleRun::new(fires_when_empty, "", rule);
            let onsets: Vec<bool> = [&w[..], &[], &[], &w[..]]
                .iter()
                .enumerate()
                .map(|(t, window)| run.evaluate(window, &[], t as i64).onset)
                .collect();
            assert_eq!(onsets, expected, "judge_absent: {judge_absent}");
        }
    }

    #[test]
    fn a_group_of_category_series_is_one_alert() {
        let chi: EvalFn =
            klaxon_sdk::testing::run_detector_at::<klaxon_plugin_chi_square::ChiSquare>;
        let mut rule = RuleRun::new(chi, r#"{"label":"class"}"#, AlertRule::default());
        // Counters: `a` grows 9 a step and `b` 1 in the baseline; in the drifted
        // window both grow 5.
        let counter =
            |per_step: f64| -> Vec<Sample> { (0..20).map(|i| (i, per_step * i as f64)).collect() };
        let (base_a, base_b) = (counter(9.0), counter(1.0));
        let (same_a, same_b) = (counter(9.0), counter(1.0));
        let (moved_a, moved_b) = (counter(5.0), counter(5.0));
        let calm = rule.evaluate_group(
            "class",
            &[("a", &same_a, &base_a), ("b", &same_b, &base_b)],
            20,
        );
        assert!(!calm.firing && !calm.condition);
        let drift = rule.evaluate_group(
            "class",
            &[("a", &moved_a, &base_a), ("b", &moved_b, &base_b)],
            21,
        );
        assert!(drift.firing && drift.onset && drift.score > 0.0);
        let still = rule.evaluate_group(
            "class",
            &[("a", &moved_a, &base_a), ("b", &moved_b, &base_b)],
            22,
        );
        assert!(still.firing && !still.onset, "one alert for the group");
        let empty = rule.evaluate_group("class", &[("a", &[], &base_a), ("b", &[], &base_b)], 23);
        assert!(!empty.condition, "a group with no samples is not judged");
        assert_eq!(rule.errors, 0, "{:?}", rule.first_error);
    }

    /// A condition pattern through the alert state machine: which steps are onsets.
    fn onsets(rule: AlertRule, conditions: &[bool]) -> Vec<usize> {
        let mut run = RuleRun::new(|_, _, _| Ok(Vec::new()), "", rule);
        conditions
            .iter()
            .enumerate()
            .filter(|&(_, &c)| run.advance(c, 0.0).onset)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn for_and_keep_firing_for_shape_onsets() {
        let pattern = [
            true, false, true, true, false, false, true, false, false, false, true,
        ];
        assert_eq!(onsets(AlertRule::default(), &pattern), vec![0, 2, 6, 10]);
        // for: 1 evaluation: a lone firing verdict never pages.
        let hold = AlertRule {
            hold: 1,
            ..AlertRule::default()
        };
        assert_eq!(onsets(hold, &pattern), vec![3]);
        // keep_firing_for: 2 evaluations: gaps of one or two clear verdicts are bridged.
        let keep = AlertRule {
            keep_firing_for: 2,
            ..AlertRule::default()
        };
        assert_eq!(onsets(keep, &pattern), vec![0, 10]);
    }
}
