//! The detectors the harness runs: one line each (name, how to call it, default
//! config, input, synthetic rule shape, NAB feed, the faults it is meant for).
//!
//! Configs are each detector's documented defaults, plus the fields a rule must set
//! (e.g. `threshold`'s `op` and `value`). Synthetic windows, baselines and evaluation
//! intervals are in minutes (each rule has its own interval, 1 min unless set with
//! [`Entry::every`]); NAB windows are in records.

use klaxon_sdk::Detector;
use klaxon_sdk::testing::run_detector_at;

use crate::sim::{AlertRule, EvalFn};

/// A fault injected into a synthetic stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 1-3 samples 6-10 σ away.
    Spike,
    /// The level moves 5-8 σ for 2 h.
    LevelShift,
    /// The level ramps to 8-12 σ over 3 h, held 1 h.
    Drift,
    /// The noise grows 3-5× for 2 h.
    Variance,
    /// 60 % of samples are NaN for 30 min.
    NullBurst,
    /// No sample for 1 h.
    Stale,
    /// The prediction-score distribution's mean moves +0.08..0.15 for 2 h.
    ScoreDrift,
    /// The predicted-class mix moves: one minority class's share +5..10 pp (taken
    /// from the majority class) for 2 h.
    ClassMix,
}

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; 8] = [
        Fault::Spike,
        Fault::LevelShift,
        Fault::Drift,
        Fault::Variance,
        Fault::NullBurst,
        Fault::Stale,
        Fault::ScoreDrift,
        Fault::ClassMix,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Spike => "spike",
            Fault::LevelShift => "level shift",
            Fault::Drift => "gradual drift",
            Fault::Variance => "variance change",
            Fault::NullBurst => "null burst",
            Fault::Stale => "stale feed",
            Fault::ScoreDrift => "score drift",
            Fault::ClassMix => "class mix",
        }
    }

    /// The stream the fault is injected into.
    pub fn input(self) -> Input {
        match self {
            Fault::ScoreDrift => Input::Scores,
            Fault::ClassMix => Input::Classes,
            _ => Input::Metric,
        }
    }
}

/// What a rule's query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One seasonal metric, one sample a minute (latency, request rate...).
    Metric,
    /// Raw prediction scores, 10 samples a minute.
    Scores,
    /// A model's predicted-class counters, one series per class (label `class`),
    /// each pushed once a minute; the rule gets every class series and raises one
    /// alert for the group.
    Classes,
}

/// How the synthetic rule feeds the detector (times in minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Every evaluation, the window `(t - window, t]` and optionally the baseline
    /// `(t - offset - length, t - offset]`.
    Windowed {
        /// Window length.
        window: i64,
        /// Baseline (offset, length).
        baseline: Option<(i64, i64)>,
    },
    /// Every evaluation, only the samples that arrived since the last one (the
    /// rule's interval); the detector's state carries the rest.
    Streaming,
}

/// How the NAB run feeds the detector, one record at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NabFeed {
    /// At each record, the last `n` records as the window.
    Window(usize),
    /// At each record, that record alone; state carries the rest.
    Stream,
}

/// One registered detector.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Plugin name.
    pub name: &'static str,
    /// Native call through the SDK's Wasm-export path.
    pub eval: EvalFn,
    /// Config JSON.
    pub config: &'static str,
    /// Stream it judges.
    pub input: Input,
    /// Synthetic rule shape.
    pub feed: Feed,
    /// NAB run, `None` for detectors that are not anomaly detectors.
    pub nab: Option<NabFeed>,
    /// Faults the targets apply to.
    pub meant_for: &'static [Fault],
    /// `for` and `keep_firing_for` of the rule, in evaluations (default 0 and 0).
    pub rule: AlertRule,
    /// The rule's evaluation interval in the synthetic runs, in minutes (default 1).
    pub interval: i64,
    /// Empty for the documented defaults; otherwise what a proposed variant changes.
    pub variant: &'static str,
}

impl Entry {
    /// A proposed variant: another config and rule shape, labelled.
    pub fn proposed(
        mut self,
        variant: &'static str,
        config: &'static str,
        rule: AlertRule,
    ) -> Self {
        self.variant = variant;
        self.config = config;
        self.rule = rule;
        self
    }

    /// The same entry with another rule shape (`judge_absent`, `for`...).
    pub fn rule(mut self, rule: AlertRule) -> Self {
        self.rule = rule;
        self
    }

    /// The same entry evaluated every `minutes` in the synthetic runs.
    pub fn every(mut self, minutes: i64) -> Self {
        self.interval = minutes;
        self
    }

    /// Name and variant, for tables.
    pub fn label(&self) -> String {
        if self.variant.is_empty() {
            self.name.to_owned()
        } else {
            format!("{} ({})", self.name, self.variant)
        }
    }
}

fn run<D: Detector>() -> EvalFn {
    run_detector_at::<D>
}

const fn windowed(window: i64) -> Feed {
    Feed::Windowed {
        window,
        baseline: None,
    }
}

const fn with_baseline(window: i64, offset: i64, length: i64) -> Feed {
    Feed::Windowed {
        window,
        baseline: Some((offset, length)),
    }
}

/// Minutes per hour, day, week.
const HOUR: i64 = 60;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Evaluation interval of the distribution-drift rules (1 h window against the same
/// hour yesterday), in minutes: drift checks are usually run every 10-30 min.
const DRIFT_EVERY: i64 = 30;

/// Evaluation interval of the streaming detectors on seasonal residuals, in minutes.
const SEASON_EVERY: i64 = 30;

/// `knn`'s synthetic window, in minutes: the weekly cycle plus two hours.
const KNN_WINDOW: i64 = WEEK + 2 * HOUR;

/// NAB window of the windowed anomaly detectors, in records (≈ 1 day at NAB's
/// usual 5 min spacing). One value for the whole corpus.
pub const NAB_WINDOW: usize = 288;

/// Every registered detector. One line each; `.proposed(..)` adds a measured
/// alternative to the documented defaults.
#[rustfmt::skip]
pub fn registry() -> Vec<Entry> {
    use Fault::*;
    use Input::*;
    let e = |name, eval, config, input, feed, nab, meant_for| Entry {
        name,
        eval,
        config,
        input,
        feed,
        nab,
        meant_for,
        rule: AlertRule::default(),
        interval: 1,
        variant: "",
    };
    // Proposed rule shape for the anomaly detectors on NAB-like data: pages merged
    // while the condition flaps within 48 evaluations.
    let keep48 = AlertRule { keep_firing_for: 48, ..AlertRule::default() };
    let stream = Feed::Streaming;
    let nab = Some(NabFeed::Window(NAB_WINDOW));
    let nab_long = Some(NabFeed::Window(4 * NAB_WINDOW));
    let nab_stream = Some(NabFeed::Stream);
    // Same hour yesterday, for the distribution checks (and rate_of_change's old default).
    let yesterday = |window| with_baseline(window, DAY, HOUR);
    // The seasonal docs' rule: 4 past weeks ± 5 min through a baseline.
    let four_weeks = with_baseline(10, WEEK - 5, 3 * WEEK + 10);
    let absent_rule = AlertRule { judge_absent: true, ..AlertRule::default() };
    // Streaming detectors on seasonal data: the rule's baseline one week back makes
    // them test residuals against last week (the season the baseline implies; no
    // `season_seconds` needed), evaluated every 30 min like other drift checks; the
    // window holds the new samples, the baseline one week back (and the 5 min
    // lookback) for each of them. Documented defaults otherwise.
    let last_week = with_baseline(SEASON_EVERY, WEEK, SEASON_EVERY + 5);
    let season = |e: Entry| e.proposed("rule baseline one week back", "{}", AlertRule::default()).every(SEASON_EVERY);
    vec![
        // name, native call, config, input, synthetic rule, NAB feed, meant for
        e("zscore", run::<klaxon_plugin_zscore::ZScore>(), "{}", Metric, windowed(HOUR), nab, &[Spike, LevelShift]),
        e("zscore", run::<klaxon_plugin_zscore::ZScore>(), "{}", Metric, windowed(HOUR), nab_long, &[Spike, LevelShift])
            .proposed("threshold 5, keep_firing_for 48", r#"{"threshold":5}"#, keep48),
        e("mad", run::<klaxon_plugin_mad::Mad>(), "{}", Metric, windowed(HOUR), nab, &[Spike, LevelShift]),
        e("mad", run::<klaxon_plugin_mad::Mad>(), "{}", Metric, windowed(HOUR), nab_long, &[Spike, LevelShift])
            .proposed("threshold 7, keep_firing_for 48", r#"{"threshold":7}"#, keep48),
        e("ewma", run::<klaxon_plugin_ewma::Ewma>(), "{}", Metric, stream, nab_stream, &[LevelShift, Drift]),
        e("ewma", run::<klaxon_plugin_ewma::Ewma>(), "{}", Metric, stream, nab_stream, &[LevelShift, Drift])
            .proposed("l 7, keep_firing_for 48", r#"{"l":7}"#, keep48),
        season(e("ewma", run::<klaxon_plugin_ewma::Ewma>(), "{}", Metric, last_week, None, &[LevelShift, Drift])),
        e("cusum", run::<klaxon_plugin_cusum::Cusum>(), "{}", Metric, stream, nab_stream, &[LevelShift, Drift]),
        season(e("cusum", run::<klaxon_plugin_cusum::Cusum>(), "{}", Metric, last_week, None, &[LevelShift, Drift])),
        e("page_hinkley", run::<klaxon_plugin_page_hinkley::PageHinkley>(), "{}", Metric, stream, nab_stream, &[LevelShift, Drift]),
        season(e("page_hinkley", run::<klaxon_plugin_page_hinkley::PageHinkley>(), "{}", Metric, last_week, None, &[LevelShift, Drift])),
        e("adwin", run::<klaxon_plugin_adwin::Adwin>(), "{}", Metric, stream, nab_stream, &[LevelShift, Drift]),
        season(e("adwin", run::<klaxon_plugin_adwin::Adwin>(), "{}", Metric, last_week, None, &[LevelShift, Drift])),
        e("seasonal", run::<klaxon_plugin_seasonal::Seasonal>(), "{}", Metric, four_weeks, nab_long, &[Spike, LevelShift]),
        e("holt_winters", run::<klaxon_plugin_holt_winters::HoltWinters>(), "{}", Metric, stream, nab_stream, &[Spike, LevelShift]),
        e("holt_winters", run::<klaxon_plugin_holt_winters::HoltWinters>(), "{}", Metric, stream, nab_stream, &[Spike, LevelShift])
            .proposed("band 8, keep_firing_for 48", r#"{"band":8}"#, keep48),
        // rate_of_change's documented shape: the latest value against the half hour
        // before the same time last week, in standard errors of the difference.
        e("rate_of_change", run::<klaxon_plugin_rate_of_change::RateOfChange>(), "{}", Metric, with_baseline(10, WEEK, 30), nab, &[LevelShift]),
        e("rate_of_change", run::<klaxon_plugin_rate_of_change::RateOfChange>(), "{}", Metric, yesterday(5), None, &[LevelShift])
            .proposed("relative ±50 %, the default before sigma", r#"{"mode":"relative"}"#, AlertRule::default()),
        e("rate_of_change", run::<klaxon_plugin_rate_of_change::RateOfChange>(), "{}", Metric, with_baseline(2, WEEK - 5, 10), None, &[LevelShift])
            .proposed("level shift vs last week, threshold 4σ of the difference", r#"{"mode":"absolute","threshold":10,"current":"mean"}"#, AlertRule::default()),
        e("exhaustion", run::<klaxon_plugin_exhaustion::Exhaustion>(), r#"{"limit":150}"#, Metric, windowed(HOUR), None, &[]),
        e("threshold", run::<klaxon_plugin_threshold::Threshold>(), r#"{"op":">","value":150}"#, Metric, windowed(1), None, &[]),
        e("null_rate", run::<klaxon_plugin_null_rate::NullRate>(), "{}", Metric, windowed(HOUR), None, &[NullBurst]).every(5),
        e("freshness", run::<klaxon_plugin_freshness::Freshness>(), r#"{"max_age":"90s"}"#, Metric, windowed(2 * HOUR), None, &[Stale]),
        e("absent", run::<klaxon_plugin_absent::Absent>(), "{}", Metric, windowed(2), None, &[Stale]).rule(absent_rule),
        e("psi", run::<klaxon_plugin_psi::Psi>(), "{}", Scores, yesterday(HOUR), None, &[ScoreDrift]).every(DRIFT_EVERY),
        e("ks", run::<klaxon_plugin_ks::Ks>(), "{}", Scores, yesterday(HOUR), None, &[ScoreDrift]).every(DRIFT_EVERY),
        e("jensen_shannon", run::<klaxon_plugin_jensen_shannon::JensenShannon>(), "{}", Scores, yesterday(HOUR), None, &[ScoreDrift]).every(DRIFT_EVERY),
        e("wasserstein", run::<klaxon_plugin_wasserstein::Wasserstein>(), r#"{"threshold":0.05}"#, Scores, yesterday(HOUR), None, &[ScoreDrift]).every(DRIFT_EVERY),
        e("chi_square", run::<klaxon_plugin_chi_square::ChiSquare>(), r#"{"label":"class"}"#, Classes, yesterday(HOUR), None, &[ClassMix]).every(DRIFT_EVERY),
        // knn's window covers the metric's longest (weekly) cycle plus two hours, so
        // the lag vectors of the same minute last week are in it.
        e("knn", run::<klaxon_plugin_knn::Knn>(), "{}", Metric, windowed(KNN_WINDOW), nab_long, &[Spike, LevelShift]),
        e("knn", run::<klaxon_plugin_knn::Knn>(), "{}", Metric, windowed(KNN_WINDOW), nab_long, &[Spike, LevelShift])
            .proposed("keep_firing_for 24", "{}", AlertRule { keep_firing_for: 24, ..AlertRule::default() }),
    ]
}

/// A `k_of_n` combination of registered rules on NAB: fires while at least `k` of
/// the `children` (entry labels) have a firing alert. Computed by the harness from
/// the children's alert states, the way a `k_of_n` composite rule joins them; the
/// composite plugin itself is not run here.
#[derive(Debug, Clone, Copy)]
pub struct Combination {
    /// Table name.
    pub name: &'static str,
    /// Child entry labels.
    pub children: &'static [&'static str],
    /// Children that must fire.
    pub k: usize,
    /// `for` / `keep_firing_for` of the combination's own alert.
    pub rule: AlertRule,
}

/// Registered combinations.
#[rustfmt::skip]
pub fn combinations() -> Vec<Combination> {
    const Z: &str = "zscore (threshold 5, keep_firing_for 48)";
    const MAD: &str = "mad (threshold 7, keep_firing_for 48)";
    const HW: &str = "holt_winters (band 8, keep_firing_for 48)";
    const EWMA: &str = "ewma (l 7, keep_firing_for 48)";
    const KNN: &str = "knn (keep_firing_for 24)";
    let own = AlertRule::default();
    vec![
        Combination { name: "any(zscore, holt_winters)", children: &[Z, HW], k: 1, rule: own },
        Combination { name: "2 of (zscore, mad, holt_winters)", children: &[Z, MAD, HW], k: 2, rule: own },
        Combination { name: "2 of (zscore, mad, holt_winters, ewma)", children: &[Z, MAD, HW, EWMA], k: 2, rule: own },
        Combination { name: "any(knn, zscore)", children: &[KNN, Z], k: 1, rule: own },
        Combination { name: "2 of (knn, zscore, holt_winters)", children: &[KNN, Z, HW], k: 2, rule: own },
    ]
}
