//! The byte format of a streaming detector's per-series state, and which samples of
//! a window the detector has not consumed yet.
//!
//! Layout: one tag byte naming the detector, one version byte, then fixed-width
//! little-endian fields (`f64`, `i64`, `u64`), in an order each detector documents.
//! A state whose tag, version or length does not match is refused as a whole
//! ([`StateReader::open`] or a getter returns `None`, [`StateReader::finish`] fails on
//! leftover bytes): the detector then starts fresh instead of misreading it.
//!
//! Each state carries the timestamp of the newest sample consumed; [`unseen`] hands
//! out only samples after it, so evaluating overlapping windows every interval
//! counts each sample once.

use klaxon_sdk::Window;

/// Builds a state: tag, version, then fields in order.
#[derive(Debug, Clone)]
pub struct StateWriter {
    bytes: Vec<u8>,
}

impl StateWriter {
    /// Starts a state of detector `tag`, format `version`.
    pub fn new(tag: u8, version: u8) -> Self {
        let mut bytes = Vec::with_capacity(64);
        bytes.push(tag);
        bytes.push(version);
        Self { bytes }
    }

    /// Appends an `f64`.
    pub fn f64(mut self, x: f64) -> Self {
        self.bytes.extend_from_slice(&x.to_le_bytes());
        self
    }

    /// Appends an `i64`.
    pub fn i64(mut self, x: i64) -> Self {
        self.bytes.extend_from_slice(&x.to_le_bytes());
        self
    }

    /// Appends an optional time in ms (`i64::MIN` stands for none).
    pub fn time(self, t: Option<i64>) -> Self {
        self.i64(t.unwrap_or(i64::MIN))
    }

    /// Appends a `u64`.
    pub fn u64(mut self, x: u64) -> Self {
        self.bytes.extend_from_slice(&x.to_le_bytes());
        self
    }

    /// Appends a `u8`.
    pub fn u8(mut self, x: u8) -> Self {
        self.bytes.push(x);
        self
    }

    /// The encoded state.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads a state written by [`StateWriter`], field by field.
#[derive(Debug, Clone)]
pub struct StateReader<'a> {
    rest: &'a [u8],
}

impl<'a> StateReader<'a> {
    /// Opens `bytes` when they start with `tag` and `version`; `None` otherwise.
    pub fn open(bytes: &'a [u8], tag: u8, version: u8) -> Option<Self> {
        match bytes {
            [t, v, rest @ ..] if *t == tag && *v == version => Some(Self { rest }),
            _ => None,
        }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    /// The next `f64`.
    pub fn f64(&mut self) -> Option<f64> {
        self.take::<8>().map(f64::from_le_bytes)
    }

    /// The next `i64`.
    pub fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_le_bytes)
    }

    /// The next optional time in ms, as [`StateWriter::time`] wrote it.
    pub fn time(&mut self) -> Option<Option<i64>> {
        self.i64().map(|t| (t != i64::MIN).then_some(t))
    }

    /// The next `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    /// The next `u8`.
    pub fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// `Some(())` when every byte was read: a longer state is another format.
    pub fn finish(self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// The samples of `window` newer than `last_seen_ms` (all of them when `None`),
/// oldest first, whatever their value.
pub fn unseen<'a>(
    window: &Window<'a>,
    last_seen_ms: Option<i64>,
) -> impl Iterator<Item = (i64, f64)> + 'a {
    let from = match last_seen_ms {
        Some(t) => window.timestamps_ms.partition_point(|&ts| ts <= t),
        None => 0,
    };
    let timestamps: &'a [i64] = window.timestamps_ms.get(from..).unwrap_or_default();
    let values: &'a [f64] = window.values.get(from..).unwrap_or_default();
    timestamps.iter().copied().zip(values.iter().copied())
}

/// The time of the oldest sample of `window` newer than `last_seen_ms`: where the
/// samples an evaluation consumes begin (`None` when there are none).
pub fn first_unseen(window: &Window<'_>, last_seen_ms: Option<i64>) -> Option<i64> {
    unseen(window, last_seen_ms).next().map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = StateWriter::new(b'E', 1)
            .f64(1.5)
            .i64(-7)
            .u64(9)
            .u8(3)
            .finish();
        assert_eq!(bytes.len(), 2 + 8 + 8 + 8 + 1);
        let mut r = StateReader::open(&bytes, b'E', 1).unwrap();
        assert_eq!(r.f64(), Some(1.5));
        assert_eq!(r.i64(), Some(-7));
        assert_eq!(r.u64(), Some(9));
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.finish(), Some(()));
    }

    #[test]
    fn foreign_or_short_states_are_refused() {
        let bytes = StateWriter::new(b'E', 1).f64(1.0).finish();
        assert!(StateReader::open(&bytes, b'E', 2).is_none());
        assert!(StateReader::open(&bytes, b'C', 1).is_none());
        assert!(StateReader::open(&[], b'E', 1).is_none());
        let mut r = StateReader::open(&bytes[..5], b'E', 1).unwrap();
        assert_eq!(r.f64(), None);
        let mut r = StateReader::open(&bytes, b'E', 1).unwrap();
        assert_eq!(r.u8(), Some(0));
        assert_eq!(r.finish(), None);
    }

    #[test]
    fn unseen_skips_consumed_samples() {
        let ts = [10, 20, 30, 40];
        let vs = [1.0, 2.0, f64::NAN, 4.0];
        let w = Window::new(&ts, &vs);
        assert_eq!(unseen(&w, None).count(), 4);
        let after_20: Vec<i64> = unseen(&w, Some(20)).map(|(t, _)| t).collect();
        assert_eq!(after_20, vec![30, 40]);
        assert_eq!(unseen(&w, Some(25)).count(), 2);
        assert_eq!(unseen(&w, Some(40)).count(), 0);
        assert_eq!(unseen(&w, Some(5)).count(), 4);
    }
}
