//! `detection`: the detection-quality harness. Runs every registered stock detector
//! natively (through the SDK's Wasm-export entry point, with host-owned state
//! carried between evaluations) over labelled synthetic streams and over the
//! Numenta Anomaly Benchmark, and prints Markdown tables for BENCHMARKS.md.
//!
//! Layout:
//! - `registry`: the detectors, one line each;
//! - `sim`: the host's evaluation model (window, baseline, state, alert onsets);
//! - `synthetic`: seeded seasonal streams, injected faults, precision/recall/TTD;
//! - `nab`: the NAB corpus, the streaming run, NAB's scoring and its checks.
//!
//! Run: `cargo run --release -p klaxon-detection -- [synthetic|nab|check|all] [--only a,b]`
//! (`--trace` lists each false alert onset of the synthetic run on stderr;
//! `--defaults` drops the proposed variants).

mod nab;
mod registry;
mod sim;
mod synthetic;

use std::time::Instant;

use anyhow::{Context, Result, bail};

use registry::{Entry, Feed, NabFeed};
use sim::RuleRun;

struct Args {
    synthetic: bool,
    nab: bool,
    check: bool,
    only: Option<Vec<String>>,
    nab_window: Option<usize>,
    window: Option<i64>,
    baseline: Option<(i64, i64)>,
    config: Option<String>,
    hold: Option<u64>,
    keep: Option<u64>,
    interval: Option<i64>,
    seed_set: u64,
    firing: bool,
    trace: bool,
    defaults: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        synthetic: false,
        nab: false,
        check: false,
        only: None,
        nab_window: None,
        window: None,
        baseline: None,
        config: None,
        hold: None,
        keep: None,
        interval: None,
        seed_set: 0,
        firing: false,
        trace: false,
        defaults: false,
    };
    let mut it = std::env::args().skip(1);
    let mut any = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "synthetic" => (args.synthetic, any) = (true, true),
            "nab" => (args.nab, args.check, any) = (true, true, true),
            "check" => (args.check, any) = (true, true),
            "all" => (args.synthetic, args.nab, args.check, any) = (true, true, true, true),
            "--only" => {
                let v = it.next().context("--only needs a comma-separated list")?;
                args.only = Some(v.split(',').map(str::to_owned).collect());
            }
            "--nab-window" => {
                let v = it.next().context("--nab-window needs a record count")?;
                args.nab_window = Some(v.parse().context("--nab-window")?);
            }
            "--window" => {
                let v = it.next().context("--window needs minutes")?;
                args.window = Some(v.parse().context("--window")?);
            }
            "--baseline" => {
                let v = it
                    .next()
                    .context("--baseline needs OFFSET,LENGTH in minutes")?;
                let (o, l) = v
                    .split_once(',')
                    .context("--baseline needs OFFSET,LENGTH in minutes")?;
                args.baseline = Some((
                    o.trim().parse().context("--baseline offset")?,
                    l.trim().parse().context("--baseline length")?,
                ));
            }
            "--seed-set" => {
                let v = it.next().context("--seed-set needs a number")?;
                args.seed_set = v.parse().context("--seed-set")?;
            }
            "--interval" => {
                let v = it.next().context("--interval needs minutes")?;
                args.interval = Some(v.parse().context("--interval")?);
            }
            "--config" => args.config = Some(it.next().context("--config needs JSON")?),
            "--hold" | "--keep" => {
                let v: u64 = it
                    .next()
                    .context("--hold/--keep need an evaluation count")?
                    .parse()
                    .context("--hold/--keep")?;
                if a == "--hold" {
                    args.hold = Some(v);
                } else {
                    args.keep = Some(v);
                }
            }
            "--firing" => args.firing = true,
            "--trace" => args.trace = true,
            "--defaults" => args.defaults = true,
            "--bench" => {} // passed by `cargo bench`
            other => bail!(
                "unknown argument `{other}` (synthetic|nab|check|all, --only a,b, --config JSON, --hold N, --keep N, --window MINUTES, --baseline OFFSET,LENGTH, --interval MINUTES, --seed-set N, --nab-window RECORDS, --firing, --trace, --defaults)"
            ),
        }
    }
    if !any {
        (args.synthetic, args.nab, args.check) = (true, true, true);
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut entries = registry::registry();
    if let Some(only) = &args.only {
        entries.retain(|e| only.iter().any(|o| o == e.name));
    }
    if args.defaults {
        entries.retain(|e| e.variant.is_empty());
    }
    if args.config.is_some() || args.hold.is_some() || args.keep.is_some() {
        // Exploration: every selected detector with this config / rule shape.
        let config: &'static str = match args.config.clone() {
            Some(c) => Box::leak(c.into_boxed_str()),
            None => "",
        };
        for e in &mut entries {
            let c = if config.is_empty() { e.config } else { config };
            let rule = sim::AlertRule {
                hold: args.hold.unwrap_or(e.rule.hold),
                keep_firing_for: args.keep.unwrap_or(e.rule.keep_firing_for),
                ..e.rule
            };
            *e = e.proposed("command line", c, rule);
        }
    }
    if let Some(minutes) = args.interval {
        for e in &mut entries {
            *e = e.every(minutes);
        }
    }
    if let Some(minutes) = args.window {
        for e in &mut entries {
            if let Feed::Windowed { window, .. } = &mut e.feed {
                *window = minutes;
            }
        }
    }
    if let Some(b) = args.baseline {
        for e in &mut entries {
            if let Feed::Windowed { baseline, .. } = &mut e.feed {
                *baseline = Some(b);
            }
        }
    }
    if let Some(n) = args.nab_window {
        for e in &mut entries {
            if let Some(NabFeed::Window(_)) = e.nab {
                e.nab = Some(NabFeed::Window(n));
            }
        }
    }
    if args.synthetic {
        run_synthetic(&entries, args.seed_set, args.trace);
    }
    if args.check || args.nab {
        match nab::locate() {
            None => println!(
                "NAB corpus not found (../shared/benchmark/nab beside the repository, or $KLAXON_NAB_DIR): NAB skipped."
            ),
            Some(dir) => run_nab(&dir, &entries, args.nab, args.firing)?,
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |x| format!("{x:.digits$}"))
}

fn rule_text(rule: sim::AlertRule) -> String {
    let mut t = String::new();
    if rule.hold > 0 {
        t.push_str(&format!(", for {}", rule.hold));
    }
    if rule.keep_firing_for > 0 {
        t.push_str(&format!(", keep_firing_for {}", rule.keep_firing_for));
    }
    t
}

fn feed_text(feed: Feed, interval: i64) -> String {
    let every = format!("every {interval}m, ");
    every
        + &match feed {
            Feed::Windowed {
                window,
                baseline: None,
            } => format!("window {window}m"),
            Feed::Windowed {
                window,
                baseline: Some((o, l)),
            } => format!("window {window}m, baseline {l}m @ -{o}m"),
            Feed::Streaming => "streaming".to_owned(),
        }
}

fn run_synthetic(entries: &[Entry], seed_set: u64, trace: bool) {
    use std::fmt::Write as _;
    println!("### Synthetic streams\n");
    if seed_set != 0 {
        println!("Seed set {seed_set} (validation; the reported tables use set 0).\n");
    }
    println!(
        "{} seeded trials per fault, one fault per simulated day, rule evaluated at its own interval \
         (the rule column's `every`; windows and baselines in minutes); \
         TTD in that rule's evaluations (1 = the first evaluation at or after the fault's start); \
         false alerts per week over {} fault-free weeks, and the share of that time the alert was firing. \
         Targets on the faults a detector is meant for: precision ≥ 0.9, recall ≥ 0.9, median TTD ≤ 2; \
         on fault-free data ≤ 1 false alert/week (and firing < 1 % of the time).\n",
        synthetic::TRIALS,
        synthetic::CLEAN_WEEKS
    );
    let mut full = String::new();
    full.push_str(
        "| detector | config | rule | fault | meant for | precision | recall | median TTD | p90 TTD | verdict |\n",
    );
    full.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let mut summary = String::new();
    summary.push_str(
        "| detector | config | rule | meant for: precision / recall / median TTD / p90 TTD | false alerts / week | time firing | targets |\n",
    );
    summary.push_str("|---|---|---|---|---|---|---|\n");
    // From the whole registry, so a run with --only sees the same streams.
    let history = synthetic::history_ms(&registry::registry());
    for entry in entries {
        let started = Instant::now();
        let r = synthetic::evaluate(entry, history, seed_set);
        eprintln!(
            "synthetic {}: {:.1}s",
            entry.label(),
            started.elapsed().as_secs_f64()
        );
        if trace {
            for (fault, f) in &r.faults {
                for (after, (t, score, summary)) in &f.false_onsets {
                    eprintln!(
                        "  {} trial: false onset {} ({after:+} min from the fault) score {score:.2}: {summary}",
                        fault.name(),
                        synthetic::when(*t)
                    );
                }
            }
            for (t, score, summary) in &r.clean_onsets {
                eprintln!(
                    "  fault-free onset {} score {score:.2}: {summary}",
                    synthetic::when(*t)
                );
            }
        }
        let rule = format!(
            "{}{}",
            feed_text(entry.feed, entry.interval),
            rule_text(entry.rule)
        );
        let mut meant_text = Vec::new();
        let mut all_ok = true;
        for (fault, f) in &r.faults {
            let meant = entry.meant_for.contains(fault);
            let median = synthetic::quantile(&f.ttd, 0.5);
            let p90 = synthetic::quantile(&f.ttd, 0.9);
            let verdict = if meant {
                let ok = f.precision().is_some_and(|p| p >= 0.9)
                    && f.recall() >= 0.9
                    && median.is_some_and(|m| m <= 2.0);
                all_ok &= ok;
                meant_text.push(format!(
                    "{}: {} / {:.2} / {} / {}",
                    fault.name(),
                    fmt_opt(f.precision(), 2),
                    f.recall(),
                    fmt_opt(median, 1),
                    fmt_opt(p90, 1)
                ));
                if ok { "✅" } else { "❌" }
            } else {
                ""
            };
            let _ = writeln!(
                full,
                "| {} | `{}` | {rule} | {} | {} | {} | {:.2} | {} | {} | {verdict} |",
                entry.label(),
                entry.config,
                fault.name(),
                if meant { "yes" } else { "" },
                fmt_opt(f.precision(), 2),
                f.recall(),
                fmt_opt(median, 1),
                fmt_opt(p90, 1),
            );
        }
        // Few onsets from an alert that never resolves is no pass either.
        let quiet = r.false_per_week <= 1.0 && r.firing_share < 0.01;
        let targets = if entry.meant_for.is_empty() {
            if quiet { "quiet ✅" } else { "quiet ❌" }
        } else if all_ok && quiet {
            "✅"
        } else {
            "❌"
        };
        let _ = writeln!(
            summary,
            "| {} | `{}` | {rule} | {} | {:.2} | {:.1} % | {targets}{} |",
            entry.label(),
            entry.config,
            if meant_text.is_empty() {
                "— (no fault here)".to_owned()
            } else {
                meant_text.join("<br>")
            },
            r.false_per_week,
            100.0 * r.firing_share,
            if r.errors > 0 {
                format!(
                    " ({} failed calls: {})",
                    r.errors,
                    r.first_error.unwrap_or_default()
                )
            } else {
                String::new()
            }
        );
    }
    println!("{summary}");
    println!(
        "<details><summary>Every detector on every fault of its input</summary>\n\n{full}\n</details>\n"
    );
}

/// One file's anomaly scores under both mappings: (onset, firing).
fn nab_file(entry: &Entry, feed: NabFeed, file: &nab::DataFile) -> (Vec<f64>, Vec<f64>, usize) {
    let samples: Vec<sim::Sample> = file
        .timestamps
        .iter()
        .copied()
        .zip(file.values.iter().copied())
        .collect();
    let mut rule = RuleRun::new(entry.eval, entry.config, entry.rule);
    let mut onset = Vec::with_capacity(samples.len());
    let mut firing = Vec::with_capacity(samples.len());
    for i in 0..samples.len() {
        let from = match feed {
            NabFeed::Window(n) => (i + 1).saturating_sub(n),
            NabFeed::Stream => i,
        };
        let step = rule.evaluate(&samples[from..=i], &[], samples[i].0);
        onset.push(if step.onset { 1.0 } else { 0.0 });
        firing.push(if step.firing { 1.0 } else { 0.0 });
    }
    (onset, firing, rule.errors)
}

fn run_nab(
    dir: &std::path::Path,
    entries: &[Entry],
    run_detectors: bool,
    firing_mapping: bool,
) -> Result<()> {
    let corpus = nab::load(dir).with_context(|| format!("loading NAB from {}", dir.display()))?;
    println!("### NAB\n");
    let null = nab::check_null(&corpus)?;
    println!(
        "Scorer check: null detector, {} per-file rows and totals over 3 profiles compared with results/null: {}.",
        null.compared,
        if null.mismatches.is_empty() {
            "all identical".to_owned()
        } else {
            format!(
                "{} MISMATCHES: {:?}",
                null.mismatches.len(),
                null.mismatches
            )
        }
    );
    let norm = nab::check_normalisation(&corpus)?;
    println!(
        "Normalisation check: {} published detector totals re-normalised against final_results.json: {}; not comparable: {:?}.\n",
        norm.compared,
        if norm.mismatches.is_empty() {
            "all equal".to_owned()
        } else {
            format!(
                "{} MISMATCHES: {:?}",
                norm.mismatches.len(),
                norm.mismatches
            )
        },
        norm.skipped
    );
    if !run_detectors {
        return Ok(());
    }
    let nulls = nab::null_totals(&corpus)?;
    // Alert firing state per record of every rule, for the combinations.
    let mut alert_states: std::collections::HashMap<String, nab::Scores> = Default::default();
    let windows = corpus.window_count();
    println!(
        "| detector | config | feed | mapping | standard | reward low FP | reward low FN | window recall | precision | mean TTD (records) | alerts |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for entry in entries {
        let Some(feed) = entry.nab else { continue };
        let started = Instant::now();
        let (mut onsets, mut firings, mut errors) = (Vec::new(), Vec::new(), 0);
        for file in &corpus.files {
            let (o, f, e) = nab_file(entry, feed, file);
            onsets.push(o);
            firings.push(f);
            errors += e;
        }
        eprintln!(
            "nab {}: {:.1}s",
            entry.label(),
            started.elapsed().as_secs_f64()
        );
        let feed_text = match feed {
            NabFeed::Window(n) => format!("last {n} records"),
            NabFeed::Stream => "one record at a time".to_owned(),
        } + &rule_text(entry.rule);
        let ctx = NabContext {
            corpus: &corpus,
            nulls,
            windows,
        };
        if let Ok(path) = std::env::var("KLAXON_NAB_DUMP") {
            let names: Vec<&str> = corpus.files.iter().map(|f| f.name.as_str()).collect();
            let dump = serde_json::json!({"files": names, "onsets": onsets});
            std::fs::write(&path, dump.to_string()).with_context(|| format!("writing {path}"))?;
        }
        ctx.row(&entry.label(), entry.config, &feed_text, "onset", &onsets)?;
        // The other mapping (every firing record = 1), on request.
        if firing_mapping {
            ctx.row(&entry.label(), entry.config, &feed_text, "firing", &firings)?;
        }
        alert_states.insert(entry.label(), firings);
        if errors > 0 {
            println!(
                "| {} | failed calls: {errors} | | | | | | | | | |",
                entry.name
            );
        }
    }
    for combo in registry::combinations() {
        let Some(children) = combo
            .children
            .iter()
            .map(|c| alert_states.get(*c))
            .collect::<Option<Vec<_>>>()
        else {
            eprintln!("combination {}: a child was not run (--only?)", combo.name);
            continue;
        };
        let onsets: nab::Scores = (0..corpus.files.len())
            .map(|f| {
                let mut alert = RuleRun::new(|_, _, _| Ok(Vec::new()), "", combo.rule);
                (0..corpus.files[f].timestamps.len())
                    .map(|i| {
                        let up = children.iter().filter(|c| c[f][i] > 0.5).count();
                        if alert.advance(up >= combo.k, up as f64).onset {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let ctx = NabContext {
            corpus: &corpus,
            nulls,
            windows,
        };
        let what = format!("{} of [{}]", combo.k, combo.children.join(", "));
        ctx.row(
            combo.name,
            &what,
            &format!("harness k_of_n{}", rule_text(combo.rule)),
            "onset",
            &onsets,
        )?;
    }
    println!("\nNAB's published scoreboard (results/final_results.json):\n");
    println!("| detector | standard | reward low FP | reward low FN |");
    println!("|---|---|---|---|");
    let mut published: Vec<_> = nab::published_final(&corpus)?.into_iter().collect();
    published.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]));
    for (name, s) in published {
        println!("| {name} | {:.1} | {:.1} | {:.1} |", s[0], s[1], s[2]);
    }
    println!();
    Ok(())
}

/// What a NAB table row needs besides the scores.
struct NabContext<'a> {
    corpus: &'a nab::Corpus,
    nulls: [f64; 3],
    windows: usize,
}

impl NabContext<'_> {
    /// Scores `scores` as NAB does (optimised threshold per profile, normalised) and
    /// prints one table row.
    fn row(
        &self,
        label: &str,
        config: &str,
        feed: &str,
        mapping: &str,
        scores: &nab::Scores,
    ) -> Result<()> {
        let results = nab::score_optimised(self.corpus, scores)?;
        let normalised: Vec<f64> = results
            .iter()
            .zip(&self.corpus.profiles)
            .enumerate()
            .map(|(k, (r, p))| nab::score::normalise(r.raw, self.nulls[k], self.windows, p))
            .collect();
        let d = nab::detection_stats(self.corpus, scores, 0.5);
        println!(
            "| {label} | `{config}` | {feed} | {mapping} | {:.1} | {:.1} | {:.1} | {:.2} | {:.3} | {:.1} | {} |",
            normalised[0],
            normalised[1],
            normalised[2],
            d.window_recall,
            d.precision,
            d.mean_ttd_records,
            d.detections
        );
        if results.iter().any(|r| r.threshold > 1.0) {
            eprintln!(
                "  {label} ({mapping}): NAB's optimiser chose to detect nothing for some profile"
            );
        }
        Ok(())
    }
}
