//! One series: its labels and its window of samples, one ring buffer of
//! `(timestamp_ms, value)` pairs in timestamp order.
//!
//! Why pairs and not two columns: an append then touches one cache line and
//! one page instead of two, and those misses are what bound ingest when many
//! series each get one sample (10 000 series × 1 sample with short windows
//! ran ~1.3× faster this way). Reads split the pairs into the caller's two
//! columns, a cheap loop.

use std::collections::VecDeque;

use parking_lot::Mutex;

use super::{AppendStats, Labels};

pub(super) struct Series {
    /// Store-wide unique, never reused; the label index refers to series by it.
    pub(super) id: u64,
    pub(super) labels: Labels,
    pub(super) data: Mutex<Samples>,
}

impl Series {
    pub(super) fn new(id: u64, labels: Labels, data: Samples) -> Series {
        Series {
            id,
            labels,
            data: Mutex::new(data),
        }
    }
}

pub(super) struct Samples {
    ring: VecDeque<(i64, f64)>,
    /// Timestamp of the front sample, or `i64::MAX` when empty, kept here so
    /// the retention check on append does not touch the (cold) front.
    oldest: i64,
    /// Set (under the shard write lock) when gc unlinks the series, so a
    /// second sweep does not unlink it twice.
    pub(super) removed: bool,
}

impl Default for Samples {
    fn default() -> Samples {
        Samples {
            ring: VecDeque::new(),
            oldest: i64::MAX,
            removed: false,
        }
    }
}

impl Samples {
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Merges `samples` (any order) into the window, then drops what is older
    /// than `retention_ms` before the newest sample. Returns the change in the
    /// number of stored samples.
    ///
    /// Expiry on append is amortised: it runs once the oldest sample is
    /// `retention / 64` past the horizon, so a steadily fed series trims a
    /// run of samples now and then instead of one per append. Reads are
    /// bounded by their own window, and `gc` trims exactly.
    pub(super) fn append(
        &mut self,
        samples: &[(i64, f64)],
        retention_ms: i64,
        stats: &mut AppendStats,
    ) -> isize {
        let (Some(&(first_t, _)), Some(&(last_t, _))) = (samples.first(), samples.last()) else {
            return 0;
        };
        let before = self.ring.len();
        let in_order = self.ring.back().is_none_or(|&(back, _)| first_t > back)
            && samples.windows(2).all(|w| w[0].0 < w[1].0);
        let newest;
        if in_order {
            // Fast path: one bulk copy.
            newest = last_t;
            let horizon = newest.saturating_sub(retention_ms);
            let skip = samples.partition_point(|&(t, _)| t <= horizon);
            stats.samples_too_old += skip;
            stats.samples_appended += samples.len() - skip;
            let fresh = &samples[skip..];
            let (len, need) = (self.ring.len(), self.ring.len() + fresh.len());
            if need > self.ring.capacity() {
                // Grow by a quarter rather than double: a series fed a few
                // samples at a time (remote write) otherwise ends up to half
                // empty, and its window is most of the store's memory.
                self.ring.reserve_exact(fresh.len().max(len / 4).max(4));
            }
            match fresh {
                [] => {}
                &[sample] => self.ring.push_back(sample),
                fresh => self.ring.extend(fresh.iter().copied()),
            }
            if before == 0 {
                self.oldest = self.ring.front().map_or(i64::MAX, |s| s.0);
            }
        } else {
            let mut newest_seen = self.ring.back().map_or(i64::MIN, |s| s.0);
            for &(t, v) in samples {
                newest_seen = newest_seen.max(t);
                if t <= newest_seen.saturating_sub(retention_ms) {
                    stats.samples_too_old += 1;
                    continue;
                }
                match self.ring.back_mut() {
                    Some(back) if t == back.0 => {
                        back.1 = v;
                        stats.samples_replaced += 1;
                    }
                    Some(back) if t < back.0 => match self.ring.binary_search_by(|s| s.0.cmp(&t)) {
                        Ok(i) => {
                            self.ring[i].1 = v;
                            stats.samples_replaced += 1;
                        }
                        Err(i) => {
                            self.oldest = self.oldest.min(t);
                            self.ring.insert(i, (t, v));
                            stats.samples_appended += 1;
                            stats.samples_out_of_order += 1;
                        }
                    },
                    _ => {
                        self.oldest = self.oldest.min(t);
                        self.ring.push_back((t, v));
                        stats.samples_appended += 1;
                    }
                }
            }
            newest = newest_seen;
        }
        let horizon = newest.saturating_sub(retention_ms);
        if self.oldest <= horizon.saturating_sub(retention_ms / 64) {
            self.trim(horizon);
        }
        self.ring.len() as isize - before as isize
    }

    /// Drops samples at or before `horizon`; returns how many.
    pub(super) fn trim(&mut self, horizon: i64) -> usize {
        if self.oldest > horizon {
            return 0;
        }
        let n = self.ring.partition_point(|&(t, _)| t <= horizon);
        self.ring.drain(..n);
        self.oldest = self.ring.front().map_or(i64::MAX, |s| s.0);
        n
    }

    /// Gives back memory after a burst: keeps at most twice what is used.
    pub(super) fn shrink(&mut self) {
        let len = self.ring.len();
        if self.ring.capacity() > 64 && self.ring.capacity() / 4 > len {
            self.ring.shrink_to(len * 2);
        }
    }

    /// Appends samples with `start_ms < t <= end_ms` to the output columns.
    pub(super) fn read(
        &self,
        start_ms: i64,
        end_ms: i64,
        ts_out: &mut Vec<i64>,
        vals_out: &mut Vec<f64>,
    ) {
        let lo = self.ring.partition_point(|&(t, _)| t <= start_ms);
        let hi = self.ring.partition_point(|&(t, _)| t <= end_ms);
        if lo >= hi {
            return;
        }
        ts_out.reserve(hi - lo);
        vals_out.reserve(hi - lo);
        for &(t, v) in self.ring.range(lo..hi) {
            ts_out.push(t);
            vals_out.push(v);
        }
    }

    pub(super) fn last(&self) -> Option<(i64, f64)> {
        self.ring.back().copied()
    }
}
