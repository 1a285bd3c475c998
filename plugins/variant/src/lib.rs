//! `variant`: a detector whose behaviour is set by a marker in its own data
//! segment, so tests can make many distinguishable versions of one component
//! by patching bytes (same length, so the component stays valid). A test
//! fixture only: never embed it as a stock plugin.
//!
//! The marker is [`MARKER_PREFIX`] followed by a mode byte and eight decimal
//! digits `N` (see [`variant_marker`]):
//!
//! | mode | what `evaluate` does |
//! |------|----------------------|
//! | `F`  | every series fires with score `N`, summary `vN` |
//! | `Q`  | no series fires (score `N`, summary `vN`) |
//! | `D`  | like `F`, but series with the label `diff="1"` do not fire |
//! | `T`  | like `F`, but traps (panics) on about 30 % of calls, chosen by a hash of the evaluation time |
//!
//! Any other mode byte or a malformed number fails the call. The config must
//! be an empty object.

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// What precedes the mode byte and the version digits in the component.
pub const MARKER_PREFIX: &str = "KLAXON-VARIANT-FIXTURE=";

/// The marker as built: mode `F`, version 1.
static MARKER: [u8; 32] = *b"KLAXON-VARIANT-FIXTURE=F00000001";

/// The marker for `mode` and `version` (the bytes tests substitute for the built one).
pub fn variant_marker(mode: char, version: u32) -> String {
    format!("{MARKER_PREFIX}{mode}{version:08}")
}

/// The variant detector.
pub struct Variant;

/// Parsed config: nothing.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "variant",
  "type": "object",
  "additionalProperties": false
}"#;

/// The mode and version read from the marker (through `black_box`, so the
/// optimiser cannot fold the built value into the code).
fn read_marker() -> Result<(u8, u32), String> {
    let bytes: &[u8; 32] = std::hint::black_box(&MARKER);
    let tail = &bytes[MARKER_PREFIX.len()..];
    let mode = tail[0];
    let digits = std::str::from_utf8(&tail[1..]).map_err(|e| e.to_string())?;
    let version = digits
        .parse::<u32>()
        .map_err(|e| format!("variant marker digits {digits:?}: {e}"))?;
    Ok((mode, version))
}

impl Detector for Variant {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "variant",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: fires or not with a score set by a patchable marker.",
        )
        .schema(SCHEMA)
    }

    fn evaluate(_cfg: &Config, _series: &Series<'_>) -> Output {
        Verdict::ok(0.0, "unused").into()
    }

    fn evaluate_batch(_cfg: &Config, batch: &Batch<'_>) -> Result<Vec<Output>, String> {
        let (mode, version) = read_marker()?;
        let firing: Result<bool, String> = match mode {
            b'F' | b'D' => Ok(true),
            b'Q' => Ok(false),
            b'T' => {
                if traps_at(batch.eval_time_ms()) {
                    panic!("variant: trap requested");
                }
                Ok(true)
            }
            other => Err(format!("unknown variant mode {:?}", other as char)),
        };
        // `D` judges each series by its labels.
        let firing = match mode {
            b'D' => {
                return Ok(batch
                    .iter()
                    .map(|s| {
                        let seeded = s.labels.get("diff").as_deref() == Some("1");
                        Verdict::new(!seeded, f64::from(version), format!("v{version}")).into()
                    })
                    .collect());
            }
            _ => firing?,
        };
        let score = f64::from(version);
        Ok(batch
            .iter()
            .map(|_| Verdict::new(firing, score, format!("v{version}")).into())
            .collect())
    }
}

/// Whether mode `T` traps at this evaluation time: for about 30 % of times.
pub fn traps_at(eval_time_ms: i64) -> bool {
    // splitmix64: consecutive times spread evenly.
    let mut z = (eval_time_ms as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z % 10 < 3
}

klaxon_sdk::export_detector!(Variant);

#[cfg(test)]
mod tests {
    use super::*;
    use klaxon_sdk::testing::{self, TestSeries};

    #[test]
    fn built_marker_fires_with_version_one() {
        assert_eq!(
            std::str::from_utf8(&MARKER).unwrap(),
            variant_marker('F', 1)
        );
        let out =
            testing::run_detector::<Variant>("{}", &[TestSeries::from_values(&[1.0])]).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].verdict.firing);
        assert_eq!(out[0].verdict.score, 1.0);
        assert_eq!(out[0].verdict.summary, "v1");
    }

    #[test]
    fn trap_mode_picks_about_thirty_percent_of_times() {
        let traps = (0..10_000i64)
            .filter(|t| traps_at(1_700_000_000_000 + t * 50))
            .count();
        assert!((2_700..3_300).contains(&traps), "{traps}");
    }

    #[test]
    fn config_must_be_empty() {
        assert!(
            testing::run_detector::<Variant>(r#"{"x":1}"#, &[TestSeries::from_values(&[1.0])])
                .is_err()
        );
    }
}
