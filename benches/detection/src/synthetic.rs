//! Labelled synthetic streams and the detection-quality metrics over them.
//!
//! - Metric stream: one sample a minute, level 100 with a ±20 % daily cycle
//!   (peak at noon), 15 % lower at weekends (6 h ramps in and out), Gaussian
//!   noise σ = 3, and 0.2 % of samples NaN (the occasional null).
//! - Score stream: 10 prediction scores a minute, Beta with mean 0.30 (±0.02 daily)
//!   and concentration 10.
//! - Class stream: a model's predicted-class counters, 4 classes (`approve`
//!   70 %, `review` 15 %, `decline` 10 %, `fraud` 5 %), one series per class with
//!   a `class` label, each counter pushed once a minute; requests per minute are
//!   Poisson with the metric's seasonal level as mean (~100/min), split
//!   multinomially over the fixed mix.
//! - Fault trials: one fault per simulated day, placed at a random minute of it,
//!   magnitude and sign drawn per trial (see [`Fault`]); 20 seeded trials per fault.
//!   The rule is evaluated every rule interval (1 min unless the registry sets
//!   another, times aligned to midnight) over the day after a 2-day warm-up (whose
//!   alerts are not counted). An alert whose onset falls between the fault's start
//!   and 15 minutes (or one rule interval, when longer) after its end is a true
//!   alert, any other a false one. Time to detect = the rule's evaluations that saw
//!   faulty data up to the first true onset (1 = the first evaluation at or after
//!   the fault's start).
//! - False alerts per week: onsets over 4 weeks of fault-free data, divided by 4.
//!
//! Everything is seeded (ChaCha8), so runs are identical. `seed_set` 0 is the
//! reported one; other sets (`--seed-set N`) draw fresh trials and fault-free weeks,
//! to check that a default chosen on set 0 holds on data it was not chosen on.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Binomial, Distribution, Normal, Poisson};

use crate::registry::{Entry, Fault, Feed, Input};
use crate::sim::{RuleRun, Sample, range};

/// Metric sample spacing, and the unit of windows, baselines and rule intervals.
pub const INTERVAL_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// 2026-01-05T00:00:00Z, a Monday: start of every generated stream.
const ORIGIN_MS: i64 = 1_767_571_200_000;
const NOISE: f64 = 3.0;
const SCORES_PER_INTERVAL: i64 = 10;
/// The class stream's categories (label `class`) and their fault-free shares.
pub const CLASSES: [&str; 4] = ["approve", "review", "decline", "fraud"];
const CLASS_MIX: [f64; 4] = [0.70, 0.15, 0.10, 0.05];
/// The label the class series carry their category in.
pub const CLASS_LABEL: &str = "class";
/// Trials per fault type.
pub const TRIALS: usize = 20;
const WARMUP_DAYS: i64 = 2;
const GRACE_INTERVALS: i64 = 15;
/// Weeks of fault-free data for the false-alert rate.
pub const CLEAN_WEEKS: i64 = 4;

/// One injected fault: kind, [start, end) and magnitude parameters.
#[derive(Debug, Clone, Copy)]
struct Injection {
    fault: Fault,
    start: i64,
    end: i64,
    sign: f64,
    size: f64,
}

/// The seasonal level at `t` (before noise).
fn level(t: i64) -> f64 {
    let day_phase = (t.rem_euclid(DAY_MS)) as f64 / DAY_MS as f64;
    let daily = 1.0 + 0.2 * (std::f64::consts::TAU * (day_phase - 0.25)).sin();
    // Day of week, 0 = Monday (ORIGIN is a Monday).
    let since = t - ORIGIN_MS;
    let weekday = since.div_euclid(DAY_MS).rem_euclid(7);
    let hour = day_phase * 24.0;
    let weekend = match weekday {
        5 => (hour / 6.0).min(1.0),       // Saturday: ramp in
        6 => 1.0,                         // Sunday
        0 => 1.0 - (hour / 6.0).min(1.0), // Monday: ramp out
        _ => 0.0,
    };
    100.0 * daily * (1.0 - 0.15 * weekend)
}

/// The metric stream over `[from, to)`, with `injection` applied.
fn metric_stream(seed: u64, from: i64, to: i64, injection: Option<Injection>) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0).expect("unit normal");
    let mut out = Vec::with_capacity(((to - from) / INTERVAL_MS) as usize);
    let mut t = from;
    while t < to {
        let z: f64 = noise.sample(&mut rng);
        let null_draw: f64 = rng.random();
        let mut sigma = NOISE;
        let mut shift = 0.0;
        let mut null = null_draw < 0.002;
        let mut skip = false;
        if let Some(f) = injection.filter(|f| t >= f.start && t < f.end) {
            match f.fault {
                Fault::Spike | Fault::LevelShift => shift = f.sign * f.size * NOISE,
                Fault::Drift => {
                    let ramp = ((t - f.start) as f64 / (3.0 * 3_600_000.0)).min(1.0);
                    shift = f.sign * f.size * NOISE * ramp;
                }
                Fault::Variance => sigma *= f.size,
                Fault::NullBurst => null = null_draw < 0.6,
                Fault::Stale => skip = true,
                Fault::ScoreDrift | Fault::ClassMix => {}
            }
        }
        if !skip {
            let v = if null {
                f64::NAN
            } else {
                level(t) + shift + sigma * z
            };
            out.push((t, v));
        }
        t += INTERVAL_MS;
    }
    out
}

/// The score stream over `[from, to)`, with `injection` applied.
fn score_stream(seed: u64, from: i64, to: i64, injection: Option<Injection>) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let step = INTERVAL_MS / SCORES_PER_INTERVAL;
    let mut out = Vec::with_capacity(((to - from) / step) as usize);
    let mut t = from;
    while t < to {
        let day_phase = (t.rem_euclid(DAY_MS)) as f64 / DAY_MS as f64;
        let mut mean = 0.30 + 0.02 * (std::f64::consts::TAU * day_phase).sin();
        if let Some(f) = injection.filter(|f| t >= f.start && t < f.end) {
            mean += f.size;
        }
        let kappa = 10.0;
        let beta = Beta::new(mean * kappa, (1.0 - mean) * kappa).expect("beta parameters");
        out.push((t, beta.sample(&mut rng)));
        t += step;
    }
    out
}

/// The class shares at a minute under `injection`: a `ClassMix` fault moves `size`
/// of the majority class's share to `review` (sign +) or `decline` (sign -).
fn class_mix(t: i64, injection: Option<Injection>) -> [f64; 4] {
    let mut mix = CLASS_MIX;
    if let Some(f) = injection.filter(|f| f.fault == Fault::ClassMix && t >= f.start && t < f.end) {
        let gainer = if f.sign > 0.0 { 1 } else { 2 };
        mix[0] -= f.size;
        mix[gainer] += f.size;
    }
    mix
}

/// The class counters over `[from, to)`, one series per [`CLASSES`] entry, each
/// starting at 0 at `from`, with `injection` applied.
fn class_stream(seed: u64, from: i64, to: i64, injection: Option<Injection>) -> Vec<Vec<Sample>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let minutes = ((to - from) / INTERVAL_MS).max(0) as usize;
    let mut out: Vec<Vec<Sample>> = CLASSES
        .iter()
        .map(|_| Vec::with_capacity(minutes))
        .collect();
    let mut counters = [0u64; 4];
    let mut t = from;
    while t < to {
        let requests = Poisson::new(level(t)).expect("positive rate");
        let mut left = requests.sample(&mut rng) as u64;
        let mix = class_mix(t, injection);
        let mut share_left = 1.0;
        for (i, &p) in mix.iter().enumerate() {
            let k = if i + 1 == mix.len() {
                left
            } else {
                let q = (p / share_left).clamp(0.0, 1.0);
                Binomial::new(left, q)
                    .expect("probability in [0, 1]")
                    .sample(&mut rng)
            };
            left -= k;
            share_left -= p;
            counters[i] += k;
            out[i].push((t, counters[i] as f64));
        }
        t += INTERVAL_MS;
    }
    out
}

/// The series of `input` over `[from, to)`: one for a metric or scores, one per
/// class for the class counters.
fn stream(input: Input, seed: u64, from: i64, to: i64, inj: Option<Injection>) -> Vec<Vec<Sample>> {
    match input {
        Input::Metric => vec![metric_stream(seed, from, to, inj)],
        Input::Scores => vec![score_stream(seed, from, to, inj)],
        Input::Classes => class_stream(seed, from, to, inj),
    }
}

/// Draws the fault of one trial within day `[day, day + 1 d)`.
fn draw_injection(fault: Fault, rng: &mut ChaCha8Rng, day: i64) -> Injection {
    let minutes = |m: i64| m * INTERVAL_MS;
    let (duration, size) = match fault {
        Fault::Spike => (
            minutes(rng.random_range(1..=3)),
            rng.random_range(6.0..10.0),
        ),
        Fault::LevelShift => (minutes(120), rng.random_range(5.0..8.0)),
        Fault::Drift => (minutes(240), rng.random_range(8.0..12.0)),
        Fault::Variance => (minutes(120), rng.random_range(3.0..5.0)),
        Fault::NullBurst => (minutes(30), 0.0),
        Fault::Stale => (minutes(60), 0.0),
        Fault::ScoreDrift => (minutes(120), rng.random_range(0.08..0.15)),
        Fault::ClassMix => (minutes(120), rng.random_range(0.05..0.10)),
    };
    // Leave 1 h clear at both ends of the day and room for the grace period.
    let latest = DAY_MS - duration - minutes(60 + GRACE_INTERVALS);
    let start = day + minutes(60) + minutes(rng.random_range(0..(latest / INTERVAL_MS - 60)));
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    Injection {
        fault,
        start,
        end: start + duration,
        sign,
        size,
    }
}

/// How far back a rule reads (window or baseline), in ms.
fn reach_ms(feed: Feed, interval: i64) -> i64 {
    match feed {
        Feed::Windowed { window, baseline } => {
            window.max(baseline.map_or(0, |(o, l)| o + l)) * INTERVAL_MS
        }
        Feed::Streaming => interval * INTERVAL_MS,
    }
}

/// The rule's evaluation interval in ms (at least one minute).
fn every_ms(entry: &Entry) -> i64 {
    entry.interval.max(1) * INTERVAL_MS
}

/// The window and baseline of `samples` a rule with `feed` reads at `t`.
fn cut(feed: Feed, samples: &[Sample], t: i64, every: i64) -> (&[Sample], &[Sample]) {
    match feed {
        Feed::Windowed { window, baseline } => (
            range(samples, t - window * INTERVAL_MS, t),
            baseline.map_or(&[][..], |(o, l)| {
                let end = t - o * INTERVAL_MS;
                range(samples, end - l * INTERVAL_MS, end)
            }),
        ),
        Feed::Streaming => (range(samples, t - every, t), &[][..]),
    }
}

/// One alert onset: evaluation time, the verdict's score and summary.
pub type Onset = (i64, f64, String);

/// Runs `entry` over `series` (one, or one per class for the class stream),
/// evaluating every rule interval in `[from, to)`;
/// returns the onsets of evaluations at or after `score_from`, and the share
/// of those evaluations that ended with the alert firing.
fn onsets(
    entry: &Entry,
    series: &[Vec<Sample>],
    from: i64,
    score_from: i64,
    to: i64,
) -> (Vec<Onset>, f64, RuleRun<'static>) {
    let mut rule = RuleRun::new(entry.eval, entry.config, entry.rule);
    let mut found = Vec::new();
    let (mut scored, mut firing) = (0usize, 0usize);
    let every = every_ms(entry);
    let mut t = from;
    while t < to {
        let step = match series {
            [samples] => {
                let (window, baseline) = cut(entry.feed, samples, t, every);
                rule.evaluate(window, baseline, t)
            }
            _ => {
                let members: Vec<(&str, &[Sample], &[Sample])> = CLASSES
                    .iter()
                    .zip(series)
                    .map(|(&class, samples)| {
                        let (window, baseline) = cut(entry.feed, samples, t, every);
                        (class, window, baseline)
                    })
                    .collect();
                rule.evaluate_group(CLASS_LABEL, &members, t)
            }
        };
        if t >= score_from {
            scored += 1;
            firing += usize::from(step.firing);
            if step.onset {
                found.push((t, step.score, rule.last_summary.clone()));
            }
        }
        t += every;
    }
    (found, firing as f64 / scored.max(1) as f64, rule)
}

/// Results of one detector on one fault type.
#[derive(Debug, Clone, Default)]
pub struct FaultResult {
    /// Trials run.
    pub trials: usize,
    /// Trials whose fault was detected.
    pub detected: usize,
    /// Onsets inside a fault's detection span.
    pub true_alerts: usize,
    /// Onsets elsewhere in the trial days.
    pub false_alerts: usize,
    /// Time to detect per detected trial, in evaluations.
    pub ttd: Vec<f64>,
    /// The false onsets (minutes from the fault's start, the onset), for `--trace`.
    pub false_onsets: Vec<(i64, Onset)>,
}

impl FaultResult {
    /// True alerts / all alerts (`None` without alerts).
    pub fn precision(&self) -> Option<f64> {
        let all = self.true_alerts + self.false_alerts;
        (all > 0).then(|| self.true_alerts as f64 / all as f64)
    }

    /// Detected trials / trials.
    pub fn recall(&self) -> f64 {
        self.detected as f64 / self.trials.max(1) as f64
    }
}

/// One detector's synthetic results.
#[derive(Debug, Clone)]
pub struct DetectorResult {
    /// Per fault of the detector's input kind, in [`Fault::ALL`] order.
    pub faults: Vec<(Fault, FaultResult)>,
    /// Alert onsets per week on fault-free data.
    pub false_per_week: f64,
    /// Share of fault-free evaluations spent firing (an alert that never resolves
    /// has few onsets but is no use either).
    pub firing_share: f64,
    /// Failed detector calls (all runs).
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// The fault-free onsets (time, score, verdict summary), for `--trace`.
    pub clean_onsets: Vec<Onset>,
}

/// The [`TRIALS`] seeded trials of one fault; `note` sees each trial's rule run.
fn fault_trials(
    entry: &Entry,
    fault: Fault,
    history: i64,
    seed_set: u64,
    note: &mut impl FnMut(&RuleRun<'_>),
) -> FaultResult {
    let k = Fault::ALL.iter().position(|&f| f == fault).unwrap_or(0);
    let mut result = FaultResult::default();
    for trial in 0..TRIALS {
        let seed = 0x6b6c_6178_6f6e_0000 + (k as u64) * 1_000 + trial as u64 + (seed_set << 32);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Each trial lands on a different weekday.
        let day = ORIGIN_MS + history + (WARMUP_DAYS + trial as i64 % 7) * DAY_MS;
        let inj = draw_injection(fault, &mut rng, day);
        let samples = stream(
            entry.input,
            seed ^ 0xffff,
            ORIGIN_MS,
            day + DAY_MS,
            Some(inj),
        );
        let warm = day - WARMUP_DAYS * DAY_MS;
        let (found, _, rule) = onsets(entry, &samples, warm, day, day + DAY_MS);
        note(&rule);
        result.trials += 1;
        let every = every_ms(entry);
        let span_end = inj.end + (GRACE_INTERVALS * INTERVAL_MS).max(every);
        // The first evaluation that saw faulty data (evaluation times are `warm`
        // plus whole intervals).
        let first_eval = warm + (inj.start - warm + every - 1).div_euclid(every) * every;
        let (inside, outside): (Vec<i64>, Vec<i64>) = found
            .iter()
            .map(|o| o.0)
            .partition(|&t| t >= inj.start && t <= span_end);
        result.false_onsets.extend(
            found
                .iter()
                .filter(|o| o.0 < inj.start || o.0 > span_end)
                .map(|o| ((o.0 - inj.start).div_euclid(INTERVAL_MS), o.clone())),
        );
        result.true_alerts += inside.len();
        result.false_alerts += outside.len();
        if let Some(&first) = inside.first() {
            result.detected += 1;
            result.ttd.push(((first - first_eval) / every + 1) as f64);
        }
    }
    result
}

/// History every stream starts with, so all detectors see the same data: the
/// longest reach (window or baseline) of `entries`, in whole days, plus a day.
pub fn history_ms(entries: &[Entry]) -> i64 {
    let reach = entries
        .iter()
        .map(|e| reach_ms(e.feed, e.interval))
        .max()
        .unwrap_or(0);
    reach.div_euclid(DAY_MS) * DAY_MS + DAY_MS
}

/// Runs every fault trial and the fault-free weeks for `entry`, with `history`
/// (from [`history_ms`]) before the first evaluated day, on seed set `seed_set`.
pub fn evaluate(entry: &Entry, history: i64, seed_set: u64) -> DetectorResult {
    let mut errors = 0;
    let mut first_error = None;
    let mut note = |rule: &RuleRun<'_>| {
        errors += rule.errors;
        if first_error.is_none() {
            first_error.clone_from(&rule.first_error);
        }
    };
    let mut faults = Vec::new();
    for &fault in &Fault::ALL {
        if fault.input() != entry.input {
            continue;
        }
        faults.push((
            fault,
            fault_trials(entry, fault, history, seed_set, &mut note),
        ));
    }
    let clean_from = ORIGIN_MS + history + WARMUP_DAYS * DAY_MS;
    let clean_to = clean_from + CLEAN_WEEKS * 7 * DAY_MS;
    let clean_seed = 0x636c_6561_6e00 + (seed_set << 48);
    let samples = stream(entry.input, clean_seed, ORIGIN_MS, clean_to, None);
    let (found, firing_share, rule) = onsets(
        entry,
        &samples,
        clean_from - WARMUP_DAYS * DAY_MS,
        clean_from,
        clean_to,
    );
    note(&rule);
    DetectorResult {
        faults,
        false_per_week: found.len() as f64 / CLEAN_WEEKS as f64,
        firing_share,
        errors,
        first_error,
        clean_onsets: found,
    }
}

/// `Mon 13:05`: day of week and UTC time of `t_ms`.
pub fn when(t_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = (t_ms - ORIGIN_MS).div_euclid(DAY_MS).rem_euclid(7) as usize;
    let minute = t_ms.rem_euclid(DAY_MS) / INTERVAL_MS;
    format!("{} {:02}:{:02}", DAYS[day], minute / 60, minute % 60)
}

/// The `q`-quantile (0..1) by linear interpolation between closest ranks.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::TestSeries;
    use klaxon_sdk::{Output, Verdict};

    #[test]
    fn streams_are_deterministic_and_seasonal() {
        let a = metric_stream(7, ORIGIN_MS, ORIGIN_MS + DAY_MS, None);
        let b = metric_stream(7, ORIGIN_MS, ORIGIN_MS + DAY_MS, None);
        assert_eq!(a.len(), 1440);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && (x.1 == y.1 || (x.1.is_nan() && y.1.is_nan())))
        );
        // Noon above midnight, weekends lower.
        assert!(level(ORIGIN_MS + DAY_MS / 2) > level(ORIGIN_MS) + 30.0);
        assert!(level(ORIGIN_MS + 6 * DAY_MS + DAY_MS / 2) < 0.9 * level(ORIGIN_MS + DAY_MS / 2));
    }

    #[test]
    fn faults_land_where_drawn() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let day = ORIGIN_MS + 10 * DAY_MS;
        let inj = draw_injection(Fault::Stale, &mut rng, day);
        assert!(inj.start >= day && inj.end < day + DAY_MS);
        let s = metric_stream(3, day, day + DAY_MS, Some(inj));
        assert_eq!(s.len(), 1440 - 60, "an hour of samples missing");
        assert!(range(&s, inj.start - 1, inj.end - 1).is_empty());
    }

    #[test]
    fn class_stream_is_deterministic_and_the_mix_moves_where_drawn() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let day = ORIGIN_MS + 3 * DAY_MS;
        let inj = draw_injection(Fault::ClassMix, &mut rng, day);
        assert!(inj.start >= day && inj.end < day + DAY_MS);
        assert_eq!(inj.end - inj.start, 120 * INTERVAL_MS);
        assert!((0.05..0.10).contains(&inj.size));
        let a = class_stream(9, day, day + DAY_MS, Some(inj));
        let b = class_stream(9, day, day + DAY_MS, Some(inj));
        assert_eq!(a, b, "same seed, same counters");
        assert_eq!(a.len(), CLASSES.len());
        assert!(a.iter().all(|s| s.len() == 1440));
        // Counters never go down.
        assert!(a.iter().all(|s| s.windows(2).all(|w| w[1].1 >= w[0].1)));
        // Each class's share of the increase over `(from, to]`.
        let shares = |from: i64, to: i64| -> Vec<f64> {
            let inc: Vec<f64> = a
                .iter()
                .map(|s| {
                    let w = range(s, from - INTERVAL_MS, to - INTERVAL_MS);
                    w.last().map_or(0.0, |l| l.1) - w.first().map_or(0.0, |f| f.1)
                })
                .collect();
            let total: f64 = inc.iter().sum();
            inc.iter().map(|c| c / total).collect()
        };
        let gainer = if inj.sign > 0.0 { 1 } else { 2 };
        let during = shares(inj.start, inj.end);
        assert!(
            (during[gainer] - CLASS_MIX[gainer] - inj.size).abs() < 0.02,
            "{during:?} vs +{}",
            inj.size
        );
        assert!(
            (during[0] - CLASS_MIX[0] + inj.size).abs() < 0.02,
            "{during:?}"
        );
        // Outside the fault (the day's first hour is always clear) the mix is the base.
        let before = shares(day, day + 60 * INTERVAL_MS);
        for (got, want) in before.iter().zip(CLASS_MIX) {
            assert!((got - want).abs() < 0.03, "{before:?}");
        }
        // The fault changes only the fault's minutes: the mix is the base elsewhere.
        assert_eq!(class_mix(inj.start - INTERVAL_MS, Some(inj)), CLASS_MIX);
        assert_eq!(class_mix(inj.end, Some(inj)), CLASS_MIX);
        assert_ne!(class_mix(inj.start, Some(inj)), CLASS_MIX);
    }

    /// Fires when the newest sample is more than one interval old.
    fn stale_oracle(_: &str, series: &[TestSeries], eval_ms: i64) -> Result<Vec<Output>, String> {
        let last = series[0].timestamps_ms.last().copied().unwrap_or(i64::MIN);
        Ok(vec![
            Verdict::new(eval_ms - last > INTERVAL_MS, 0.0, "").into(),
        ])
    }

    /// [`stale_oracle`] as a harness rule meant for stale feeds, evaluated every minute.
    fn stale_oracle_entry() -> Entry {
        Entry {
            name: "oracle",
            eval: stale_oracle,
            config: "",
            input: Input::Metric,
            feed: Feed::Windowed {
                window: 120,
                baseline: None,
            },
            nab: None,
            meant_for: &[Fault::Stale],
            rule: crate::sim::AlertRule::default(),
            interval: 1,
            variant: "",
        }
    }

    #[test]
    fn a_perfect_detector_scores_perfectly() {
        let entry = stale_oracle_entry();
        let r = fault_trials(&entry, Fault::Stale, DAY_MS, 0, &mut |_| {});
        assert_eq!(
            (r.trials, r.detected, r.true_alerts, r.false_alerts),
            (TRIALS, TRIALS, TRIALS, 0)
        );
        // Gap from t0: the evaluation at t0 sees the t0-1 min sample (age 1 min, not
        // more), the next sees age 2 min: the second evaluation of the fault.
        assert!(r.ttd.iter().all(|&t| t == 2.0), "{:?}", r.ttd);
        assert_eq!(r.precision(), Some(1.0));
    }

    #[test]
    fn time_to_detect_counts_the_rules_own_evaluations() {
        let entry = stale_oracle_entry().every(10);
        let r = fault_trials(&entry, Fault::Stale, DAY_MS, 0, &mut |_| {});
        assert_eq!((r.detected, r.false_alerts), (TRIALS, 0));
        // Every 10 min: the first evaluation at or after the gap's start sees it
        // (age > 1 min) unless it falls on the start itself, then the next does.
        assert!(r.ttd.iter().all(|&t| t == 1.0 || t == 2.0), "{:?}", r.ttd);
        assert!(r.ttd.contains(&1.0));
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
