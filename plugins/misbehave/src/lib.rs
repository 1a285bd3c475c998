//! `misbehave`: a detector that breaks the rules on purpose, so the host's defences can
//! be tested. A test fixture only: never embed it as a stock plugin.
//!
//! # Config
//!
//! ```json
//! { "mode": "ok" }
//! ```
//!
//! | `mode`    | what `evaluate` does | what the host should do |
//! |-----------|----------------------|-------------------------|
//! | `ok`      | one not-firing verdict per series (score 0, summary `ok`) | accept it |
//! | `loop`    | spins forever | interrupt it (epoch deadline) |
//! | `alloc`   | allocates 1 GiB and writes to every page | refuse the memory (limit), trap |
//! | `panic`   | panics with `misbehave: panic requested` | trap, log the message |
//! | `invalid` | returns one output more than there are series | reject the result |
//! | `recurse` | recurses without end | trap on the exhausted stack |
//! | `flood`   | returns a million verdicts | reject the result (or the memory it takes) |
//! | `bigstring` | returns a 100 MB summary | refuse the memory, or the string over its cap |
//! | `snoop`   | reads `/etc/passwd`, lists `/`, counts environment variables and arguments; fires if any of it worked | give it nothing: the verdict never fires |
//!
//! `mode` defaults to `ok`; unknown fields are an error. `info` and `check-config`
//! always behave.

use std::hint::black_box;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The misbehaving detector.
pub struct Misbehave;

/// Parsed config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to do wrong.
    #[serde(default)]
    pub mode: Mode,
}

/// The misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Behave.
    #[default]
    Ok,
    /// Never return.
    Loop,
    /// Exhaust memory.
    Alloc,
    /// Panic (a trap in Wasm).
    Panic,
    /// Return more outputs than inputs.
    Invalid,
    /// Recurse until the stack runs out.
    Recurse,
    /// Return a million verdicts.
    Flood,
    /// Return a 100 MB string.
    Bigstring,
    /// Look for files, environment and arguments.
    Snoop,
}

/// Verdicts `flood` mode returns.
pub const FLOOD_VERDICTS: usize = 1_000_000;

/// Bytes of the summary `bigstring` mode returns.
pub const BIG_STRING_BYTES: usize = 100 << 20;

/// Bytes `alloc` mode asks for.
pub const ALLOC_BYTES: usize = 1 << 30;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "misbehave",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "mode": {"enum": ["ok", "loop", "alloc", "panic", "invalid", "recurse", "flood", "bigstring", "snoop"], "default": "ok"}
  }
}"#;

impl Detector for Misbehave {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "misbehave",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: loops, exhausts memory, panics or returns invalid results on demand.",
        )
        .schema(SCHEMA)
    }

    fn evaluate(_cfg: &Config, _series: &Series<'_>) -> Output {
        Verdict::ok(0.0, "ok").into()
    }

    fn evaluate_batch(cfg: &Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        let ok = || Output::from(Verdict::ok(0.0, "ok"));
        match cfg.mode {
            Mode::Ok => Ok(batch.iter().map(|s| Self::evaluate(cfg, &s)).collect()),
            Mode::Loop => spin(),
            Mode::Alloc => {
                let touched = exhaust_memory();
                Err(format!(
                    "allocated and touched {touched} bytes, yet still alive"
                ))
            }
            Mode::Panic => panic!("misbehave: panic requested"),
            Mode::Invalid => Ok((0..=batch.len()).map(|_| ok()).collect()),
            Mode::Recurse => {
                let depth = recurse(0);
                Err(format!("recursed {depth} deep, yet still alive"))
            }
            Mode::Flood => Ok((0..FLOOD_VERDICTS).map(|_| ok()).collect()),
            Mode::Bigstring => {
                let summary = "x".repeat(BIG_STRING_BYTES);
                Ok(batch
                    .iter()
                    .map(|_| Verdict::ok(0.0, summary.clone()).into())
                    .collect())
            }
            Mode::Snoop => {
                let found = snoop();
                Ok(batch
                    .iter()
                    .map(|_| Verdict::new(!found.is_empty(), 0.0, found.join("; ")).into())
                    .collect())
            }
        }
    }
}

/// Loops forever; `black_box` keeps the optimiser from proving the loop useless.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates [`ALLOC_BYTES`] and fills them with a non-zero byte, so every page is
/// written (no lazily zeroed memory stays untouched); returns the bytes held. In Wasm
/// the allocation itself fails under any sane memory limit, which aborts the instance.
fn exhaust_memory() -> usize {
    let block = vec![1u8; ALLOC_BYTES];
    black_box(&block).len()
}

/// Recurses without end (not a tail call: the addition follows the call).
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1).wrapping_add(black_box(1))
}

/// What the sandbox let through: each finding is one thing it should not have.
fn snoop() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
        found.push(format!("read /etc/passwd ({} bytes)", text.len()));
    }
    if let Ok(entries) = std::fs::read_dir("/") {
        found.push(format!("listed / ({} entries)", entries.count()));
    }
    let vars = std::env::vars().count();
    if vars > 0 {
        found.push(format!("{vars} environment variables"));
    }
    let args = std::env::args().count();
    if args > 0 {
        found.push(format!("{args} arguments"));
    }
    found
}

klaxon_sdk::export_detector!(Misbehave);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    fn two_series() -> [TestSeries; 2] {
        [
            TestSeries::from_values(&[1.0]),
            TestSeries::from_values(&[2.0]),
        ]
    }

    #[test]
    fn ok_mode_behaves() {
        let out = testing::run_detector::<Misbehave>(r#"{"mode":"ok"}"#, &two_series()).unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| !o.verdict.firing && o.verdict.score == 0.0)
        );
        // The default mode is ok too.
        assert_eq!(
            testing::run_detector::<Misbehave>("{}", &two_series())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn invalid_mode_returns_one_output_too_many() {
        // 2 series in, 3 outputs out; the harness rejects it as the host must.
        let err =
            testing::run_detector::<Misbehave>(r#"{"mode":"invalid"}"#, &two_series()).unwrap_err();
        assert!(err.contains("3 outputs for 2 inputs"), "{err}");
    }

    #[test]
    #[should_panic(expected = "misbehave: panic requested")]
    fn panic_mode_panics() {
        let _ = testing::run_detector::<Misbehave>(r#"{"mode":"panic"}"#, &two_series());
    }

    // `loop` and `alloc` are only meaningful in Wasm, against the host's limits.

    #[test]
    fn config_checks() {
        let check = testing::check_detector_config::<Misbehave>;
        for mode in [
            "ok",
            "loop",
            "alloc",
            "panic",
            "invalid",
            "recurse",
            "flood",
            "bigstring",
            "snoop",
        ] {
            assert!(check(&format!(r#"{{"mode":"{mode}"}}"#)).is_ok(), "{mode}");
        }
        let err = check(r#"{"mode":"explode"}"#).unwrap_err();
        assert!(err.starts_with("mode: unknown variant `explode`"), "{err}");
    }
}
