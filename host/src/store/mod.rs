//! `store` owns recent samples: one window of `(timestamp_ms, value)` per
//! series, the inverted label index used to select series, and retention.
//! It hands samples forward to whoever queries it and knows nothing about
//! what they are used for: it must never import `rules`, `route`, `notify`,
//! `api` or `plugins` (nor `ingest`, which feeds it).
//!
//! # Layout
//! - `labels`: [`Labels`], the immutable sorted label set and its Prometheus fingerprint.
//! - `matcher`: [`Matcher`] (`=`, `!=`, `=~`, `!~`) and [`parse_selector`].
//! - `series`: one series' samples, two ring buffers in timestamp order.
//! - `index`: label name → value → series ids.
//! - here: [`Store`], which shards series by fingerprint.
//!
//! # Concurrency
//! Series live in 64 shards (`RwLock<HashMap<fingerprint, Arc<Series>>>`),
//! each series behind its own mutex. An append read-locks the shards its
//! batch touches (once each, in index order) and locks each series once;
//! creating a series takes its shard's write lock and the index write lock.
//! Lock order is always shard(s, ascending) → index → series, a writer holds
//! one shard at a time, and no path holds a series lock while acquiring
//! another lock.
//!
//! # Semantics
//! - Samples of a series are kept sorted by timestamp. In-order appends are
//!   the fast path (bulk copy); an older sample inside retention is inserted
//!   in place; a sample with a timestamp already stored replaces the value
//!   (last write wins, in batch order). NaN and ±Inf are stored as is.
//! - Retention: a series keeps samples newer than `retention` before its own
//!   newest sample, and [`Store::gc`] drops samples at or before
//!   `now_ms - retention` and forgets series left empty. On append, expiry is
//!   amortised (it runs once the oldest sample is `retention / 64` past the
//!   horizon) so a steady stream does not trim one sample per append; `gc` is
//!   exact. Samples that arrive already older than the horizon are counted as
//!   `samples_too_old` and dropped, which is not an error.
//! - Memory: 16 bytes per sample (no compression) plus ~200 bytes per series
//!   and its index entries; at a 15 s interval and 6 h retention that is
//!   ~23 KiB per series.
//! - A batch is applied whole or refused whole: the only refusal
//!   (`max_series`) is decided before anything is written. Readers may see a
//!   batch half applied while it is being written (no snapshot isolation).

mod index;
mod labels;
mod matcher;
mod series;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard};
use serde::Deserialize;

pub use labels::{Labels, METRIC_NAME, is_label_name};
pub use matcher::{MatchOp, Matcher, SelectorError, parse_selector};

use index::LabelIndex;
use series::{Samples, Series};

/// At most 64: `Store::append` tracks the shards a batch touches in a `u64`.
const SHARDS: usize = 64;
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS <= 64);

/// Top bits of a multiplicative hash: independent of the bits each shard's
/// map uses (`FpHasher`).
fn shard_index(fp: u64) -> usize {
    (fp.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros())) as usize
}

/// Store settings; in the config file under `store:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// How much history each series keeps, e.g. `6h`. Windows and baselines of
    /// rules must fit inside it.
    #[serde(with = "crate::duration::serde_str")]
    pub retention: Duration,
    /// Most series held at once; a batch that would create more is refused.
    pub max_series: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            retention: Duration::from_secs(6 * 3600),
            max_series: 1_000_000,
        }
    }
}

/// Samples of one series, as handed to [`Store::append`]. Samples may come in
/// any order; in timestamp order is fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' full label set, metric name included.
    pub labels: Labels,
    /// `(timestamp_ms, value)` pairs.
    pub samples: Vec<(i64, f64)>,
}

/// What one [`Store::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Series that did not exist before.
    pub series_created: usize,
    /// Samples added (in order or inserted in place).
    pub samples_appended: usize,
    /// Of `samples_appended`, those older than the series' newest sample.
    pub samples_out_of_order: usize,
    /// Samples whose timestamp was already stored: the value was replaced.
    pub samples_replaced: usize,
    /// Samples dropped for being outside retention.
    pub samples_too_old: usize,
}

/// What one [`Store::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    pub samples_removed: usize,
    pub series_removed: usize,
}

/// Why the store refused a batch. Nothing of the batch was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "series limit reached (store.max_series = {limit}): the batch would create {new} new series, \
         {current} exist"
    )]
    SeriesLimit {
        limit: usize,
        current: usize,
        new: usize,
    },
}

/// A series found by [`Store::select`] or [`Store::get`]; read it with
/// [`Store::read_window`]. Holding a handle keeps the labels alive, not the
/// samples: retention still applies.
#[derive(Clone)]
pub struct SeriesHandle(Arc<Series>);

impl SeriesHandle {
    /// The series' label set.
    pub fn labels(&self) -> &Labels {
        &self.0.labels
    }
}

impl std::fmt::Debug for SeriesHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SeriesHandle").field(&self.0.labels).finish()
    }
}

/// Hashes a fingerprint (already a hash, but FNV's low bits are weak) with
/// the murmur3 finaliser.
#[derive(Clone, Copy, Default)]
pub(crate) struct FpBuildHasher;

#[derive(Default)]
pub(crate) struct FpHasher(u64);

impl BuildHasher for FpBuildHasher {
    type Hasher = FpHasher;
    fn build_hasher(&self) -> FpHasher {
        FpHasher(0)
    }
}

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[derive(Default)]
struct Shard {
    by_fp: HashMap<u64, Arc<Series>, FpBuildHasher>,
    /// Series whose fingerprint collides with the one in `by_fp`.
    collisions: HashMap<u64, Vec<Arc<Series>>, FpBuildHasher>,
}

impl Shard {
    fn find(&self, fp: u64, labels: &Labels) -> Option<&Arc<Series>> {
        let first = self.by_fp.get(&fp)?;
        if first.labels == *labels {
            return Some(first);
        }
        self.collisions
            .get(&fp)?
            .iter()
            .find(|s| s.labels == *labels)
    }

    fn insert(&mut self, fp: u64, series: Arc<Series>) {
        match self.by_fp.entry(fp) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(fp).or_default().push(series);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(series);
            }
        }
    }

    fn remove(&mut self, fp: u64, series: &Arc<Series>) {
        if self.by_fp.get(&fp).is_some_and(|s| Arc::ptr_eq(s, series)) {
            self.by_fp.remove(&fp);
            if let Some(others) = self.collisions.get_mut(&fp) {
                if let Some(promoted) = others.pop() {
                    self.by_fp.insert(fp, promoted);
                }
                if others.is_empty() {
                    self.collisions.remove(&fp);
                }
            }
        } else if let Some(others) = self.collisions.get_mut(&fp) {
            others.retain(|s| !Arc::ptr_eq(s, series));
            if others.is_empty() {
                self.collisions.remove(&fp);
            }
        }
    }
}

/// Per-series windows of recent samples with a label index. `Send + Sync`;
/// share it as `Arc<Store>`.
pub struct Store {
    retention_ms: i64,
    max_series: usize,
    shards: Box<[RwLock<Shard>]>,
    index: RwLock<LabelIndex>,
    /// Series present, plus creations reserved by batches in flight.
    series_count: AtomicUsize,
    sample_count: AtomicI64,
    next_id: AtomicU64,
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Store {
        Store {
            retention_ms: crate::duration::as_millis_i64(config.retention),
            max_series: config.max_series,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            index: RwLock::new(LabelIndex::default()),
            series_count: AtomicUsize::new(0),
            sample_count: AtomicI64::new(0),
            next_id: AtomicU64::new(0),
        }
    }

    /// The configured retention in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    fn shard(&self, fp: u64) -> &RwLock<Shard> {
        &self.shards[shard_index(fp)]
    }

    /// Appends a batch, all of it or (on error) none of it. See the module
    /// docs for ordering, duplicate and retention semantics.
    pub fn append(&self, batch: &[SeriesSamples]) -> Result<AppendStats, StoreError> {
        let mut stats = AppendStats::default();
        // Read-lock every shard the batch touches, once, in index order: a
        // fixed order cannot deadlock with another batch, and writers hold a
        // single shard. While held, gc cannot unlink the series we find, so
        // they are used by reference: no per-series lock or refcount traffic
        // beyond the series' own mutex.
        let mut touched: u64 = 0;
        for entry in batch.iter().filter(|e| !e.samples.is_empty()) {
            touched |= 1 << shard_index(entry.labels.fingerprint());
        }
        let mut guards: [Option<RwLockReadGuard<'_, Shard>>; SHARDS] =
            std::array::from_fn(|_| None);
        for (i, guard) in guards.iter_mut().enumerate() {
            if touched & (1 << i) != 0 {
                *guard = Some(self.shards[i].read());
            }
        }

        // Resolve every entry before writing anything.
        let mut found: Vec<Option<&Series>> = Vec::with_capacity(batch.len());
        let mut new_entries: Vec<usize> = Vec::new();
        for (i, entry) in batch.iter().enumerate() {
            if entry.samples.is_empty() {
                found.push(None);
                continue;
            }
            let fp = entry.labels.fingerprint();
            let series = guards[shard_index(fp)]
                .as_ref()
                .and_then(|shard| shard.find(fp, &entry.labels));
            if series.is_none() {
                new_entries.push(i);
            }
            found.push(series.map(|s| &**s));
        }
        if !new_entries.is_empty() {
            self.reserve_series(batch, &new_entries)?;
        }

        let mut sample_delta: i64 = 0;
        for (entry, series) in batch.iter().zip(&found) {
            if let Some(series) = series {
                sample_delta +=
                    series
                        .data
                        .lock()
                        .append(&entry.samples, self.retention_ms, &mut stats)
                        as i64;
            }
        }
        drop(found);
        drop(guards);
        // Creating takes shard write locks, so only now; the entries of one
        // series are all new or all existing, so batch order per series holds.
        for i in new_entries {
            sample_delta += self.create_or_append(&batch[i], &mut stats);
        }
        self.sample_count.fetch_add(sample_delta, Ordering::Relaxed);
        Ok(stats)
    }

    /// Reserves room for the distinct new series of a batch, or refuses it.
    /// Reserves one slot per new *entry*; `create_or_append` gives back the
    /// slots it does not use (duplicates, races, all samples too old).
    fn reserve_series(
        &self,
        batch: &[SeriesSamples],
        new_entries: &[usize],
    ) -> Result<(), StoreError> {
        let distinct = if new_entries.len() == 1 {
            1
        } else {
            let new: HashSet<&Labels> = new_entries.iter().map(|&i| &batch[i].labels).collect();
            new.len()
        };
        let mut current = self.series_count.load(Ordering::Relaxed);
        loop {
            if current.saturating_add(distinct) > self.max_series {
                return Err(StoreError::SeriesLimit {
                    limit: self.max_series,
                    current,
                    new: distinct,
                });
            }
            match self.series_count.compare_exchange_weak(
                current,
                current + new_entries.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Creates the entry's series holding its samples, or appends to it if it
    /// appeared meanwhile. The caller has reserved one series slot; it is
    /// released unless a series is created. Returns the sample count change.
    fn create_or_append(&self, entry: &SeriesSamples, stats: &mut AppendStats) -> i64 {
        let fp = entry.labels.fingerprint();
        let mut shard = self.shard(fp).write();
        if let Some(series) = shard.find(fp, &entry.labels).cloned() {
            // Lock the series before letting go of the shard: gc unlinks only
            // under the shard's write lock, so it cannot be `removed` now.
            let mut data = series.data.lock();
            drop(shard);
            self.series_count.fetch_sub(1, Ordering::Relaxed);
            return data.append(&entry.samples, self.retention_ms, stats) as i64;
        }
        let mut data = Samples::default();
        let delta = data.append(&entry.samples, self.retention_ms, stats) as i64;
        if data.is_empty() {
            // Every sample was outside retention: no series to keep.
            self.series_count.fetch_sub(1, Ordering::Relaxed);
            return 0;
        }
        let series = Arc::new(Series::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            entry.labels.clone(),
            data,
        ));
        // Index under the shard lock, so gc never sees a series in one and
        // not the other.
        self.index.write().insert(&series);
        shard.insert(fp, series);
        stats.series_created += 1;
        delta
    }

    /// Drops samples at or before `now_ms - retention` and forgets series
    /// left empty (from the map and the index).
    pub fn gc(&self, now_ms: i64) -> GcStats {
        let horizon = now_ms.saturating_sub(self.retention_ms);
        let mut stats = GcStats::default();
        for shard in self.shards.iter() {
            let mut empty = Vec::new();
            {
                let shard = shard.read();
                let all = shard
                    .by_fp
                    .values()
                    .chain(shard.collisions.values().flatten());
                for series in all {
                    let mut data = series.data.lock();
                    stats.samples_removed += data.trim(horizon);
                    data.shrink();
                    if data.is_empty() {
                        empty.push(Arc::clone(series));
                    }
                }
            }
            if empty.is_empty() {
                continue;
            }
            let mut shard = shard.write();
            let mut index = self.index.write();
            for series in empty {
                let mut data = series.data.lock();
                // Re-check: an append may have refilled it meanwhile.
                if data.is_empty() && !data.removed {
                    data.removed = true;
                    shard.remove(series.labels.fingerprint(), &series);
                    index.remove(&series);
                    stats.series_removed += 1;
                }
            }
        }
        self.series_count
            .fetch_sub(stats.series_removed, Ordering::Relaxed);
        self.sample_count
            .fetch_sub(stats.samples_removed as i64, Ordering::Relaxed);
        stats
    }

    /// Series satisfying all matchers (none: every series), sorted by labels.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesHandle> {
        let mut found = self.index.read().select(matchers);
        found.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        found.into_iter().map(SeriesHandle).collect()
    }

    /// The series with exactly these labels, if stored.
    pub fn get(&self, labels: &Labels) -> Option<SeriesHandle> {
        let fp = labels.fingerprint();
        self.shard(fp)
            .read()
            .find(fp, labels)
            .cloned()
            .map(SeriesHandle)
    }

    /// Appends the series' samples with `start_ms < t <= end_ms` (left-open,
    /// like a PromQL range selector) to `ts_out` / `vals_out`, in timestamp
    /// order, leaving what they already hold in place.
    pub fn read_window(
        &self,
        h: &SeriesHandle,
        start_ms: i64,
        end_ms: i64,
        ts_out: &mut Vec<i64>,
        vals_out: &mut Vec<f64>,
    ) {
        h.0.data.lock().read(start_ms, end_ms, ts_out, vals_out);
    }

    /// The newest sample of a series.
    pub fn last_sample(&self, h: &SeriesHandle) -> Option<(i64, f64)> {
        h.0.data.lock().last()
    }

    /// Number of samples a series holds now.
    pub fn series_len(&self, h: &SeriesHandle) -> usize {
        h.0.data.lock().len()
    }

    /// Series stored (may briefly include creations in flight).
    pub fn series_count(&self) -> usize {
        self.series_count.load(Ordering::Relaxed)
    }

    /// Samples stored.
    pub fn sample_count(&self) -> usize {
        usize::try_from(self.sample_count.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Label names in use, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.index.read().label_names()
    }

    /// Values in use for one label name, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.index.read().label_values(name)
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new(StoreConfig::default())
    }
}
