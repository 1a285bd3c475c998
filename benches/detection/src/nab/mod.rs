//! The Numenta Anomaly Benchmark: corpus loading, the streaming run of a detector
//! over every file, scoring (see [`score`]) and the checks against NAB's published
//! results (the null detector's per-file scores, the normalisation of every
//! published detector's totals).
//!
//! The corpus is `../shared/benchmark/nab/` beside the repository (the repo at
//! `X/main`, the corpus at `X/shared/benchmark/nab`), or `$KLAXON_NAB_DIR`.

pub mod score;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;

use score::{Point, Profile, ThresholdScore};

/// Where the corpus is, if present: `$KLAXON_NAB_DIR`, else `<repo>/../shared/benchmark/nab`.
pub fn locate() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KLAXON_NAB_DIR") {
        return Some(PathBuf::from(dir));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared/benchmark/nab");
    dir.join("labels/combined_windows.json")
        .is_file()
        .then_some(dir)
}

/// One data file with its labels.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to `data/`, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Record timestamps, Unix ms (the CSV's naive times read as UTC).
    pub timestamps: Vec<i64>,
    /// Record values.
    pub values: Vec<f64>,
    /// Anomaly windows, (start, end) timestamps, inclusive.
    pub windows: Vec<(i64, i64)>,
    /// The labelled anomaly timestamps (`combined_labels.json`).
    pub labels: Vec<i64>,
}

/// The corpus and its cost profiles.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Files in name order.
    pub files: Vec<DataFile>,
    /// standard, reward_low_FP_rate, reward_low_FN_rate.
    pub profiles: Vec<Profile>,
}

impl Corpus {
    /// Windows in the label file (the "perfect" detector finds them all).
    pub fn window_count(&self) -> usize {
        self.files.iter().map(|f| f.windows.len()).sum()
    }
}

/// The profile names in report order.
pub const PROFILES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

fn parse_time(text: &str) -> Result<i64> {
    let t = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .with_context(|| format!("timestamp `{text}`"))?;
    Ok(t.and_utc().timestamp_millis())
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads the corpus: every file named in `labels/combined_windows.json`.
pub fn load(dir: &Path) -> Result<Corpus> {
    let windows: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_value(read_json(&dir.join("labels/combined_windows.json"))?)
            .context("combined_windows.json: expected {file: [[start, end], ...]}")?;
    let labels: BTreeMap<String, Vec<String>> =
        serde_json::from_value(read_json(&dir.join("labels/combined_labels.json"))?)
            .context("combined_labels.json: expected {file: [timestamp, ...]}")?;
    let mut files = Vec::with_capacity(windows.len());
    for (name, limits) in &windows {
        let path = dir.join("data").join(name);
        let mut reader =
            csv::Reader::from_path(&path).with_context(|| format!("opening {}", path.display()))?;
        let (mut timestamps, mut values) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.with_context(|| format!("reading {}", path.display()))?;
            let (Some(t), Some(v)) = (record.get(0), record.get(1)) else {
                bail!("{}: a record without timestamp and value", path.display());
            };
            timestamps.push(parse_time(t)?);
            values.push(
                v.trim()
                    .parse::<f64>()
                    .with_context(|| format!("{}: value `{v}`", path.display()))?,
            );
        }
        let windows = limits
            .iter()
            .map(|(a, b)| Ok((parse_time(a)?, parse_time(b)?)))
            .collect::<Result<Vec<_>>>()?;
        let labels = labels
            .get(name)
            .map(|l| l.iter().map(|t| parse_time(t)).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        files.push(DataFile {
            name: name.clone(),
            timestamps,
            values,
            windows,
            labels,
        });
    }
    let profiles_json = read_json(&dir.join("config/profiles.json"))?;
    let profiles = PROFILES
        .iter()
        .map(|&name| {
            let m = &profiles_json[name]["CostMatrix"];
            let weight = |k: &str| {
                m[k].as_f64()
                    .with_context(|| format!("profiles.json: {name}.CostMatrix.{k}"))
            };
            Ok(Profile {
                name: name.to_owned(),
                tp: weight("tpWeight")?,
                fp: weight("fpWeight")?,
                fn_: weight("fnWeight")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Corpus {
        dir: dir.to_owned(),
        files,
        profiles,
    })
}

/// A detector's anomaly scores, one vector per corpus file.
pub type Scores = Vec<Vec<f64>>;

fn points_of(corpus: &Corpus, scores: &Scores, profile: &Profile) -> Result<Vec<Vec<Point>>> {
    let mut first_id = 0;
    corpus
        .files
        .iter()
        .zip(scores)
        .map(|(f, s)| {
            let p = score::sweep_points(&f.timestamps, s, &f.windows, first_id, profile)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
            first_id += f.windows.len();
            Ok(p)
        })
        .collect()
}

/// One profile's result for a detector.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    /// The corpus-wide threshold NAB's optimiser chose.
    pub threshold: f64,
    /// Per file, at that threshold.
    pub per_file: Vec<ThresholdScore>,
    /// Sum of the per-file scores.
    pub raw: f64,
}

/// Scores a detector under every profile at the threshold NAB's optimiser picks.
pub fn score_optimised(corpus: &Corpus, scores: &Scores) -> Result<Vec<ProfileResult>> {
    corpus
        .profiles
        .iter()
        .map(|profile| {
            let points = points_of(corpus, scores, profile)?;
            let all: Vec<Point> = points.iter().flatten().copied().collect();
            let threshold = score::optimise_threshold(&all, profile).threshold;
            Ok(score_fixed_points(&points, profile, threshold))
        })
        .collect()
}

fn score_fixed_points(points: &[Vec<Point>], profile: &Profile, threshold: f64) -> ProfileResult {
    let per_file: Vec<ThresholdScore> = points
        .iter()
        .map(|p| score::score_at(p, profile, threshold))
        .collect();
    let raw = per_file.iter().map(|r| r.score).sum();
    ProfileResult {
        threshold,
        per_file,
        raw,
    }
}

/// Scores a detector under every profile at one given threshold.
pub fn score_fixed(corpus: &Corpus, scores: &Scores, threshold: f64) -> Result<Vec<ProfileResult>> {
    corpus
        .profiles
        .iter()
        .map(|profile| {
            let points = points_of(corpus, scores, profile)?;
            Ok(score_fixed_points(&points, profile, threshold))
        })
        .collect()
}

/// One row of a published `<detector>_<profile>_scores.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// Data file (or `Totals`).
    pub file: String,
    /// Threshold used.
    pub threshold: Option<f64>,
    /// Raw score.
    pub score: f64,
    /// tp, tn, fp, fn, total count.
    pub counts: [u64; 5],
}

/// Reads a published per-file score table.
pub fn read_published(path: &Path) -> Result<Vec<PublishedRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record.with_context(|| format!("reading {}", path.display()))?;
        let field = |i: usize| r.get(i).unwrap_or("").trim().to_owned();
        let num = |i: usize| -> Result<f64> {
            let f = field(i);
            f.parse::<f64>()
                .with_context(|| format!("{}: column {i} `{f}`", path.display()))
        };
        let file = if field(2).is_empty() {
            field(0)
        } else {
            field(2)
        };
        let mut counts = [0u64; 5];
        for (k, c) in counts.iter_mut().enumerate() {
            *c = num(5 + k)? as u64;
        }
        rows.push(PublishedRow {
            file,
            threshold: num(3).ok(),
            score: num(4)?,
            counts,
        });
    }
    Ok(rows)
}

/// Outcome of a check against published numbers.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Values compared.
    pub compared: usize,
    /// Human-readable differences (empty: exact match).
    pub mismatches: Vec<String>,
    /// Published values not comparable, and why.
    pub skipped: Vec<String>,
}

/// Scores the null detector (anomaly score 0 everywhere) at the published threshold
/// and compares every file's score and counts with `results/null/null_<profile>_scores.csv`.
/// Published `Total_Count` is the file's record count (older NAB scorers wrote that).
pub fn check_null(corpus: &Corpus) -> Result<Check> {
    let zeros: Scores = corpus
        .files
        .iter()
        .map(|f| vec![0.0; f.timestamps.len()])
        .collect();
    let mut check = Check::default();
    for (k, profile) in corpus.profiles.iter().enumerate() {
        let path = corpus
            .dir
            .join(format!("results/null/null_{}_scores.csv", profile.name));
        let published = read_published(&path)?;
        let threshold = published
            .iter()
            .find_map(|r| r.threshold)
            .context("null scores: no threshold")?;
        let ours = score_fixed(corpus, &zeros, threshold)?.swap_remove(k);
        for row in &published {
            if row.file == "Totals" {
                check.compared += 1;
                if row.score != ours.raw {
                    check.mismatches.push(format!(
                        "{}: total {} published, {} here",
                        profile.name, row.score, ours.raw
                    ));
                }
                continue;
            }
            let Some(i) = corpus.files.iter().position(|f| f.name == row.file) else {
                check
                    .mismatches
                    .push(format!("{}: {} not in the corpus", profile.name, row.file));
                continue;
            };
            let r = &ours.per_file[i];
            let mine = [
                r.tp as u64,
                r.tn as u64,
                r.fp as u64,
                r.fn_ as u64,
                corpus.files[i].timestamps.len() as u64,
            ];
            check.compared += 1;
            if row.score != r.score || row.counts != mine {
                check.mismatches.push(format!(
                    "{} {}: published score {} counts {:?}, here {} {:?}",
                    profile.name, row.file, row.score, row.counts, r.score, mine
                ));
            }
        }
    }
    Ok(check)
}

/// NAB's published final scores (`results/final_results.json`): detector → [standard, low FP, low FN].
pub fn published_final(corpus: &Corpus) -> Result<BTreeMap<String, [f64; 3]>> {
    let json = read_json(&corpus.dir.join("results/final_results.json"))?;
    let obj = json
        .as_object()
        .context("final_results.json: expected an object")?;
    obj.iter()
        .map(|(name, v)| {
            let mut s = [0.0; 3];
            for (k, p) in PROFILES.iter().enumerate() {
                s[k] = v[*p]
                    .as_f64()
                    .with_context(|| format!("final_results.json: {name}.{p}"))?;
            }
            Ok((name.clone(), s))
        })
        .collect()
}

/// The null detector's raw totals per profile, from the published tables.
pub fn null_totals(corpus: &Corpus) -> Result<[f64; 3]> {
    let mut t = [0.0; 3];
    for (k, p) in PROFILES.iter().enumerate() {
        let rows = read_published(&corpus.dir.join(format!("results/null/null_{p}_scores.csv")))?;
        t[k] = rows
            .iter()
            .find(|r| r.file == "Totals")
            .map(|r| r.score)
            .context("null scores: no Totals row")?;
    }
    Ok(t)
}

/// Re-normalises every published detector's raw totals and compares with
/// `final_results.json` (checks the normalisation and the window count).
pub fn check_normalisation(corpus: &Corpus) -> Result<Check> {
    let finals = published_final(corpus)?;
    let nulls = null_totals(corpus)?;
    let windows = corpus.window_count();
    let records: u64 = corpus.files.iter().map(|f| f.timestamps.len() as u64).sum();
    let mut check = Check::default();
    for (name, expected) in &finals {
        for (k, profile) in corpus.profiles.iter().enumerate() {
            let path = corpus
                .dir
                .join(format!("results/{name}/{name}_{}_scores.csv", profile.name));
            if !path.is_file() {
                continue;
            }
            let rows = read_published(&path)?;
            let Some(total) = rows.iter().find(|r| r.file == "Totals") else {
                continue;
            };
            if total.counts[4] != records {
                // The table is of another run than final_results.json (NAB's
                // `random` is averaged over seeds; its table covers part of the corpus).
                check.skipped.push(format!(
                    "{name} {}: table covers {} of {records} records",
                    profile.name, total.counts[4]
                ));
                continue;
            }
            let ours = score::normalise(total.score, nulls[k], windows, profile);
            check.compared += 1;
            if (ours - expected[k]).abs() > 1e-9 * expected[k].abs().max(1.0) {
                check.mismatches.push(format!(
                    "{name} {}: published {}, re-normalised {ours}",
                    profile.name, expected[k]
                ));
            }
        }
    }
    Ok(check)
}

/// Window recall, precision and time to detect at one threshold (detections =
/// records scored ≥ threshold after the probationary period).
#[derive(Debug, Clone, Copy, Default)]
pub struct Detection {
    /// Scorable windows with a detection / scorable windows.
    pub window_recall: f64,
    /// Detections inside windows / all detections.
    pub precision: f64,
    /// Mean records from the window's first labelled anomaly to its first detection
    /// (negative: detected before the label), over detected windows with a label.
    pub mean_ttd_records: f64,
    /// Detections counted.
    pub detections: usize,
}

/// [`Detection`] numbers of a detector's scores.
pub fn detection_stats(corpus: &Corpus, scores: &Scores, threshold: f64) -> Detection {
    let (mut windows, mut found, mut inside, mut all) = (0usize, 0usize, 0usize, 0usize);
    let mut ttd = Vec::new();
    for (f, s) in corpus.files.iter().zip(scores) {
        let probation = score::probationary_length(f.timestamps.len());
        let scorable = |i: usize| (i as f64) >= probation;
        let detected: Vec<usize> = (0..s.len())
            .filter(|&i| scorable(i) && s[i] >= threshold)
            .collect();
        all += detected.len();
        for &(start, end) in &f.windows {
            let lo = f.timestamps.partition_point(|&t| t < start);
            let hi = f.timestamps.partition_point(|&t| t <= end);
            if !(lo..hi).any(scorable) {
                continue;
            }
            windows += 1;
            let hits: Vec<usize> = detected
                .iter()
                .copied()
                .filter(|i| (lo..hi).contains(i))
                .collect();
            inside += hits.len();
            if let Some(&first) = hits.first() {
                found += 1;
                if let Some(label) = f.labels.iter().find(|&&l| l >= start && l <= end) {
                    let at = f.timestamps.partition_point(|&t| t < *label);
                    ttd.push(first as f64 - at as f64);
                }
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Detection {
        window_recall: ratio(found, windows),
        precision: ratio(inside, all),
        mean_ttd_records: if ttd.is_empty() {
            f64::NAN
        } else {
            ttd.iter().sum::<f64>() / ttd.len() as f64
        },
        detections: all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scorer reproduces NAB's published per-file scores of the null detector
    /// exactly, and NAB's normalisation of every published detector's totals.
    /// Skipped (with a message) when the corpus is not beside the repository.
    #[test]
    fn reproduces_published_null_scores_and_normalisation() {
        let Some(dir) = locate() else {
            eprintln!("NAB corpus not found (../shared/benchmark/nab or $KLAXON_NAB_DIR): skipped");
            return;
        };
        let corpus = load(&dir).expect("corpus");
        assert_eq!(corpus.files.len(), 58);
        let null = check_null(&corpus).expect("null check");
        assert_eq!(null.compared, 3 * 59, "58 files + totals, 3 profiles");
        assert!(null.mismatches.is_empty(), "{:#?}", null.mismatches);
        let norm = check_normalisation(&corpus).expect("normalisation check");
        // 15 published detectors; ARTime's and random's tables cover only part of
        // the corpus (another run than final_results.json), so 13 × 3 profiles.
        assert_eq!(norm.compared, 3 * 13, "skipped: {:?}", norm.skipped);
        assert!(norm.mismatches.is_empty(), "{:#?}", norm.mismatches);
    }
}
