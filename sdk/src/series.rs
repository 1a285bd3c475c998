//! The evaluation batch a detector receives, and the per-series view over it. Reads the
//! wire batch (only its types, never the generated functions) and must never copy a
//! column.
//!
//! # Batch layout
//!
//! The host evaluates one rule over many series in a single call. Rather than one list
//! of samples per series, the batch is columnar:
//!
//! ```text
//! timestamps_ms: [ t0 t1 t2 t3 | u0 u1 u2 | b0 b1 b2 b3 | ... ]   (i64, Unix ms)
//! values:        [ v0 v1 v2 v3 | w0 w1 w2 | c0 c1 c2 c3 | ... ]   (f64, same length)
//!                  \_ series 0 _/ \series 1/ \_ series 0  _/
//!                     window       window      baseline
//! series[i] = { labels, window: span(start, len), baseline: span(start, len), state }
//! ```
//!
//! Every window's and baseline's samples are concatenated into the two columns, and
//! each series points into them with `[start, start + len)` spans. Samples are oldest
//! first; values may be NaN or ±Inf. An empty baseline span means the rule has none.
//! The SDK checks every span once per call (an out-of-range span fails the call, naming
//! the series) and then hands out sub-slices of the columns: nothing is copied per
//! series, and labels are parsed only if the plugin asks ([`Labels`]).

use crate::bindings::types as wit;
use crate::labels::Labels;

/// One detector call: every series of the batch, over shared sample columns.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    series: &'a [wit::SeriesInput],
    timestamps_ms: &'a [i64],
    values: &'a [f64],
    eval_time_ms: i64,
}

impl<'a> Batch<'a> {
    /// Checks the spans of `batch` and views it. Errors name the first bad series.
    pub(crate) fn new(batch: &'a wit::Batch) -> Result<Self, String> {
        if batch.timestamps_ms.len() != batch.values.len() {
            return Err(format!(
                "batch columns differ in length: {} timestamps, {} values",
                batch.timestamps_ms.len(),
                batch.values.len()
            ));
        }
        let columns = batch.values.len() as u64;
        for (i, s) in batch.series.iter().enumerate() {
            for (what, span) in [("window", s.window), ("baseline", s.baseline)] {
                let end = u64::from(span.start) + u64::from(span.len);
                if end > columns {
                    return Err(format!(
                        "series {i}: {what} span [{}, {end}) exceeds the {columns} samples of the batch",
                        span.start
                    ));
                }
            }
        }
        Ok(Self {
            series: &batch.series,
            timestamps_ms: &batch.timestamps_ms,
            values: &batch.values,
            eval_time_ms: batch.eval_time_ms,
        })
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the batch has no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Evaluation time (Unix ms): the end of every window.
    pub fn eval_time_ms(&self) -> i64 {
        self.eval_time_ms
    }

    /// The `i`-th series.
    pub fn get(&self, i: usize) -> Option<Series<'a>> {
        self.series.get(i).map(|s| self.view(s))
    }

    /// Every series, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Series<'a>> + '_ {
        self.series.iter().map(|s| self.view(s))
    }

    /// The whole timestamp column, for plugins that vectorise across series.
    pub fn timestamps_ms(&self) -> &'a [i64] {
        self.timestamps_ms
    }

    /// The whole value column.
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    fn view(&self, s: &'a wit::SeriesInput) -> Series<'a> {
        Series {
            labels: Labels::new(&s.labels),
            window: self.window(s.window),
            baseline: self.window(s.baseline),
            state: s.state.as_deref(),
            eval_time_ms: self.eval_time_ms,
        }
    }

    fn window(&self, span: wit::Span) -> Window<'a> {
        // `new` checked every span; the fallbacks only keep this panic-free.
        let start = span.start as usize;
        let end = start.saturating_add(span.len as usize);
        Window {
            timestamps_ms: self.timestamps_ms.get(start..end).unwrap_or_default(),
            values: self.values.get(start..end).unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("eval_time_ms", &self.eval_time_ms)
            .field("series", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// One series to judge: its labels, windows and the state returned last time.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Labels, parsed on demand.
    pub labels: Labels<'a>,
    /// The current window, oldest sample first, ending at `eval_time_ms`.
    pub window: Window<'a>,
    /// The baseline (offset) window; empty when the rule has none.
    pub baseline: Window<'a>,
    /// What this plugin returned as state for this series last time; `None` the first time.
    pub state: Option<&'a [u8]>,
    /// Evaluation time (Unix ms).
    pub eval_time_ms: i64,
}

/// A run of samples: parallel timestamp and value slices, oldest first.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window<'a> {
    /// Unix milliseconds, ascending.
    pub timestamps_ms: &'a [i64],
    /// Sample values; may be NaN or ±Inf.
    pub values: &'a [f64],
}

impl<'a> Window<'a> {
    /// A window over parallel slices (the SDK's own windows always have equal lengths).
    pub const fn new(timestamps_ms: &'a [i64], values: &'a [f64]) -> Self {
        Self {
            timestamps_ms,
            values,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(timestamp_ms, value)` pairs, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, f64)> + 'a {
        self.timestamps_ms
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    /// The newest sample, whatever its value.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.iter().next_back()
    }

    /// Index and value of the newest finite sample (neither NaN nor ±Inf).
    pub fn last_finite(&self) -> Option<(usize, f64)> {
        self.values
            .iter()
            .rposition(|v| v.is_finite())
            .map(|i| (i, self.values[i]))
    }

    /// Time from the first to the last sample, 0 with fewer than two samples.
    pub fn duration_ms(&self) -> i64 {
        match (self.timestamps_ms.first(), self.timestamps_ms.last()) {
            (Some(first), Some(last)) => last.saturating_sub(*first),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(labels: &str, window: (u32, u32), baseline: (u32, u32)) -> wit::SeriesInput {
        wit::SeriesInput {
            labels: labels.to_owned(),
            window: wit::Span {
                start: window.0,
                len: window.1,
            },
            baseline: wit::Span {
                start: baseline.0,
                len: baseline.1,
            },
            state: None,
        }
    }

    #[test]
    fn views_slices_of_the_columns() {
        let raw = wit::Batch {
            series: vec![
                input(r#"{a="1"}"#, (0, 2), (4, 1)),
                input(r#"{a="2"}"#, (2, 2), (0, 0)),
            ],
            timestamps_ms: vec![10, 20, 10, 20, 5],
            values: vec![1.0, 2.0, 3.0, 4.0, 0.5],
            eval_time_ms: 20,
        };
        let batch = Batch::new(&raw).unwrap();
        assert_eq!(batch.len(), 2);
        let s1 = batch.get(1).unwrap();
        assert_eq!(s1.window.values, &[3.0, 4.0]);
        assert!(s1.baseline.is_empty());
        assert_eq!(s1.labels.get("a").as_deref(), Some("2"));
        let s0 = batch.get(0).unwrap();
        assert_eq!(s0.baseline.values, &[0.5]);
        assert_eq!(s0.baseline.timestamps_ms, &[5]);
        // The slices point into the batch's own columns: nothing was copied.
        assert!(std::ptr::eq(s1.window.values.as_ptr(), &raw.values[2]));
    }

    #[test]
    fn out_of_range_spans_fail_the_call() {
        let raw = wit::Batch {
            series: vec![
                input("{}", (0, 1), (0, 0)),
                input("{}", (1, u32::MAX), (0, 0)),
            ],
            timestamps_ms: vec![1, 2],
            values: vec![1.0, 2.0],
            eval_time_ms: 2,
        };
        let err = Batch::new(&raw).unwrap_err();
        assert!(err.starts_with("series 1: window span"), "{err}");

        let uneven = wit::Batch {
            series: vec![],
            timestamps_ms: vec![1],
            values: vec![],
            eval_time_ms: 0,
        };
        assert!(Batch::new(&uneven).is_err());
    }

    #[test]
    fn window_helpers() {
        let w = Window::new(&[1, 2, 3, 4], &[1.0, 5.0, f64::INFINITY, f64::NAN]);
        assert_eq!(w.last_finite(), Some((1, 5.0)));
        assert_eq!(w.duration_ms(), 3);
        assert!(w.last().unwrap().1.is_nan());
        assert_eq!(Window::default().last_finite(), None);
    }
}
