//! Test helpers the detector crates share (native builds only).
//!
//! - [`river_stream`]: 600 samples, N(0, 1) then N(3, 1) from sample 300, rounded to 3
//!   decimals (`testdata/ph.py` made them with Python's `random.Random(7)`); the
//!   river-computed vectors in the `page_hinkley` and `adwin` tests run over it.
//! - [`replay`]: evaluates a stream the way the host does, window after overlapping
//!   window with the state handed back, to check streaming detectors against a
//!   one-shot evaluation.

use klaxon_sdk::Detector;
use klaxon_sdk::testing::{self, TestSeries};
use klaxon_sdk::verdict::Output;

/// The reference stream (see the module docs).
pub fn river_stream() -> Vec<f64> {
    include_str!("../testdata/river_stream.txt")
        .trim()
        .split(',')
        .map(|x| x.trim().parse().expect("river_stream.txt holds numbers"))
        .collect()
}

/// Evaluates `values` (15 s apart, as [`TestSeries::from_values`] spaces them) in
/// evaluations every `step` samples over windows of the last `window` samples,
/// handing each evaluation's state to the next, and returns the last output. The
/// evaluation time is the newest sample's.
pub fn replay<D: Detector>(config: &str, values: &[f64], window: usize, step: usize) -> Output {
    let full = TestSeries::from_values(values);
    let mut state: Option<Vec<u8>> = None;
    let mut last = None;
    let mut end = 0;
    while end < values.len() {
        end = (end + step.max(1)).min(values.len());
        let start = end.saturating_sub(window);
        let mut s = TestSeries::new(
            &[("__name__", "test")],
            full.timestamps_ms[start..end].to_vec(),
            values[start..end].to_vec(),
        );
        s.state = state.take();
        let out = testing::run_detector_at::<D>(config, &[s], full.timestamps_ms[end - 1])
            .expect("evaluate")
            .remove(0);
        state = out.state.clone();
        last = Some(out);
    }
    last.expect("replay needs at least one sample")
}
