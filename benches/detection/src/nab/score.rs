//! NAB's scoring, re-implemented from its definition (NAB v1.1, `nab/sweeper.py`,
//! `nab/optimizer.py`, `nab/runner.py`).
//!
//! - Every record gets a *sweep score* as if it were detected: inside an anomaly
//!   window, `S(p) / S(-1) · tpWeight` with `p = -(right - i + 1) / width`; outside,
//!   `S(p) · fpWeight` with `p = |i - right_prev| / (width_prev - 1)` measured from the
//!   end of the previous window, or `p = 3` (so `-fpWeight`) before the first window.
//!   `S(p) = 2·sigmoid(-5p) - 1`, and `-1` when `p ≥ 3` (the scaled sigmoid).
//! - The first `min(⌊0.15·n⌋, 0.15·5000)` records are probationary: never scored, and
//!   a window made only of probationary records does not count.
//! - A threshold `θ` detects the records whose anomaly score is `≥ θ`. A file's score
//!   at `θ` is the sum of its detected false positives' sweep scores plus, per window,
//!   the best detected sweep score in it or `-fnWeight` when none is detected.
//!   Thresholds are swept from the highest anomaly score down, starting at 1.1
//!   (nothing detected).
//! - The optimiser picks, per profile, the one threshold maximising the corpus total;
//!   each file is then scored at that threshold.
//! - Normalised score: `100 · (raw - null) / (perfect - null)`, with `null` the null
//!   detector's raw total and `perfect = windows · tpWeight`.
//!
//! One deviation: when every anomaly score of a file is at or above the threshold
//! and none equals it, NAB's `scoreDataSet` finds no matching row (and fails); here
//! the last row (everything detected) is taken, which is what the threshold means.

use std::collections::HashMap;

/// One cost profile of `config/profiles.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `standard`, `reward_low_FP_rate` or `reward_low_FN_rate`.
    pub name: String,
    /// Weight of a detected window.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a missed window.
    pub fn_: f64,
}

/// Where a record sits, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// In the probationary period: not scored.
    Probationary,
    /// Outside every window.
    Outside,
    /// Inside the window with this corpus-wide id.
    Window(usize),
}

/// One record ready to be swept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The detector's anomaly score.
    pub anomaly: f64,
    /// The record's contribution if detected.
    pub sweep: f64,
    /// Where it sits.
    pub tag: Tag,
}

/// A file's (or the corpus') score at one threshold, with its record counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    /// The threshold.
    pub threshold: f64,
    /// The raw score.
    pub score: f64,
    /// Detected records inside windows.
    pub tp: usize,
    /// Undetected records outside windows.
    pub tn: usize,
    /// Detected records outside windows.
    pub fp: usize,
    /// Undetected records inside windows.
    pub fn_: usize,
}

/// NAB's logistic.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// NAB's scaled sigmoid of a relative position.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position >= 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * position) - 1.0
    }
}

/// Records of a file of `n` rows that are probationary (compared as NAB does, as a float).
pub fn probationary_length(n: usize) -> f64 {
    let fraction = 0.15;
    ((fraction * n as f64).floor()).min(fraction * 5000.0)
}

/// Sweep scores of one file. `windows` are (start, end) timestamps that must be
/// record timestamps; `first_window_id` numbers this file's windows corpus-wide.
pub fn sweep_points(
    timestamps: &[i64],
    anomaly: &[f64],
    windows: &[(i64, i64)],
    first_window_id: usize,
    profile: &Profile,
) -> Result<Vec<Point>, String> {
    if timestamps.len() != anomaly.len() {
        return Err(format!(
            "{} timestamps but {} anomaly scores",
            timestamps.len(),
            anomaly.len()
        ));
    }
    let index_of = |t: i64| {
        timestamps
            .iter()
            .position(|&x| x == t)
            .ok_or_else(|| format!("window limit {t} is not a record timestamp"))
    };
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probationary_length(timestamps.len());
    let mut next_window = 0;
    // (id, right index, width) of the window the sweep is in.
    let mut current: Option<(usize, usize, f64, i64)> = None;
    let mut previous: Option<(usize, f64)> = None;
    let mut points = Vec::with_capacity(timestamps.len());
    for (i, (&t, &a)) in timestamps.iter().zip(anomaly).enumerate() {
        if next_window < windows.len() && t == windows[next_window].0 {
            let (start, end) = windows[next_window];
            let right = index_of(end)?;
            let left = index_of(start)?;
            let width = (right as f64) - (left as f64) + 1.0;
            current = Some((first_window_id + next_window, right, width, end));
            next_window += 1;
        }
        let (sweep, tag) = match current {
            Some((id, right, width, _)) => {
                let position = -((right as f64) - (i as f64) + 1.0) / width;
                (
                    scaled_sigmoid(position) * profile.tp / max_tp,
                    Tag::Window(id),
                )
            }
            None => {
                let position = match previous {
                    None => 3.0,
                    Some((right, width)) => ((right as f64) - (i as f64)).abs() / (width - 1.0),
                };
                (scaled_sigmoid(position) * profile.fp, Tag::Outside)
            }
        };
        let tag = if (i as f64) < probation {
            Tag::Probationary
        } else {
            tag
        };
        points.push(Point {
            anomaly: a,
            sweep,
            tag,
        });
        if let Some((_, _, width, end)) = current
            && t == end
        {
            previous = Some((i, width));
            current = None;
        }
    }
    Ok(points)
}

/// Scores at every threshold, highest first (NAB's `calcScoreByThreshold`).
pub fn scores_by_threshold(points: &[Point], profile: &Profile) -> Vec<ThresholdScore> {
    let mut scorable: Vec<&Point> = points
        .iter()
        .filter(|p| p.tag != Tag::Probationary)
        .collect();
    // Stable, highest anomaly score first (ties keep record order, as Python's sort).
    scorable.sort_by(|a, b| b.anomaly.total_cmp(&a.anomaly));
    // Per-window parts in first-appearance order, as NAB's dict sums them.
    let mut window_slot: HashMap<usize, usize> = HashMap::new();
    let mut window_parts: Vec<f64> = Vec::new();
    for p in &scorable {
        if let Tag::Window(id) = p.tag {
            window_slot.entry(id).or_insert_with(|| {
                window_parts.push(-profile.fn_);
                window_parts.len() - 1
            });
        }
    }
    let mut fp_part = 0.0;
    let total =
        |fp_part: f64, parts: &[f64]| parts.iter().fold(0.0 + fp_part, |sum, part| sum + part);
    let (mut tp, mut fp) = (0, 0);
    let mut tn = scorable.iter().filter(|p| p.tag == Tag::Outside).count();
    let mut fn_ = scorable.len() - tn;
    let mut current = 1.1;
    let mut rows = Vec::new();
    for p in &scorable {
        if p.anomaly != current {
            rows.push(ThresholdScore {
                threshold: current,
                score: total(fp_part, &window_parts),
                tp,
                tn,
                fp,
                fn_,
            });
            current = p.anomaly;
        }
        match p.tag {
            Tag::Window(id) => {
                tp += 1;
                fn_ -= 1;
                let slot = window_slot[&id];
                window_parts[slot] = window_parts[slot].max(p.sweep);
            }
            _ => {
                fp += 1;
                tn -= 1;
                fp_part += p.sweep;
            }
        }
    }
    rows.push(ThresholdScore {
        threshold: current,
        score: total(fp_part, &window_parts),
        tp,
        tn,
        fp,
        fn_,
    });
    rows
}

/// A file's score at `threshold` (NAB's `scoreDataSet` row matching).
pub fn score_at(points: &[Point], profile: &Profile, threshold: f64) -> ThresholdScore {
    let rows = scores_by_threshold(points, profile);
    let mut previous: Option<ThresholdScore> = None;
    for row in &rows {
        if row.threshold == threshold {
            return *row;
        }
        if row.threshold < threshold {
            // The first row is always 1.1, above any anomaly score in [0, 1].
            return previous.unwrap_or(*row);
        }
        previous = Some(*row);
    }
    // Every score is ≥ threshold: NAB finds no row here; take "all detected".
    rows[rows.len() - 1]
}

/// The threshold maximising the corpus total (NAB's optimiser): the first best row
/// of the corpus-wide sweep, i.e. the highest threshold among equal best scores.
pub fn optimise_threshold(all_points: &[Point], profile: &Profile) -> ThresholdScore {
    let rows = scores_by_threshold(all_points, profile);
    let mut best = rows[0];
    for row in &rows[1..] {
        if row.score > best.score {
            best = *row;
        }
    }
    best
}

/// `100 · (raw - null) / (perfect - null)`.
pub fn normalise(raw: f64, null: f64, windows: usize, profile: &Profile) -> f64 {
    let perfect = windows as f64 * profile.tp;
    100.0 * (raw - null) / (perfect - null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile {
            name: "standard".into(),
            tp: 1.0,
            fp: 0.11,
            fn_: 1.0,
        }
    }

    #[test]
    fn scaled_sigmoid_values_from_nab_docs() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750() {
        assert_eq!(probationary_length(4032), 604.0);
        assert_eq!(probationary_length(15858), 750.0);
    }

    /// 100 records, one window [60, 69]; probation = 15 records.
    fn file(anomaly: &[(usize, f64)]) -> Vec<Point> {
        let ts: Vec<i64> = (0..100).collect();
        let mut a = vec![0.0; 100];
        for &(i, v) in anomaly {
            a[i] = v;
        }
        sweep_points(&ts, &a, &[(60, 69)], 0, &standard()).expect("points")
    }

    #[test]
    fn earliest_detection_in_a_window_scores_tp_weight() {
        let row = score_at(&file(&[(60, 1.0)]), &standard(), 0.5);
        assert!((row.score - 1.0).abs() < 1e-12);
        assert_eq!((row.tp, row.fp, row.fn_, row.tn), (1, 0, 9, 75));
        // Last record of the window: p = -1/10, S = 2·sigmoid(0.5) - 1.
        let row = score_at(&file(&[(69, 1.0)]), &standard(), 0.5);
        let expected = (2.0 * sigmoid(0.5) - 1.0) / scaled_sigmoid(-1.0);
        assert!((row.score - expected).abs() < 1e-12);
    }

    #[test]
    fn false_positives_before_and_after_the_window() {
        // Before any window: -fpWeight, and the window is missed: -1.
        let row = score_at(&file(&[(20, 1.0)]), &standard(), 0.5);
        assert!((row.score - (-0.11 - 1.0)).abs() < 1e-12);
        // Right after the window (i = 70): p = 1/9.
        let row = score_at(&file(&[(70, 1.0)]), &standard(), 0.5);
        let expected = -1.0 + 0.11 * scaled_sigmoid(1.0 / 9.0);
        assert!((row.score - expected).abs() < 1e-12);
        // In probation: ignored.
        let row = score_at(&file(&[(3, 1.0)]), &standard(), 0.5);
        assert_eq!(row.score, -1.0);
    }

    #[test]
    fn threshold_detects_scores_at_or_above_it() {
        let points = file(&[(60, 0.7), (65, 0.4)]);
        assert!((score_at(&points, &standard(), 0.7).score - 1.0).abs() < 1e-12);
        assert!(score_at(&points, &standard(), 0.5).score > 0.99);
        assert_eq!(score_at(&points, &standard(), 0.8).score, -1.0);
        let best = optimise_threshold(&points, &standard());
        assert_eq!(best.threshold, 0.7);
    }
}
