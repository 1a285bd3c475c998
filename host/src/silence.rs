//! Silences with Alertmanager's semantics: a silence mutes every alert whose
//! labels match all of its matchers while it is active (`startsAt <= now <=
//! endsAt`). Silences are created, updated and expired through the API; a
//! silence may start in the future (a maintenance window). Expired silences
//! are kept for `retention` and then dropped.
//!
//! Owns the silence set and its log in the data dir (`silences.jsonl`: each
//! change appends the silence as it now is, the last line per id wins; the
//! log is compacted at start, after a retention sweep and when stale lines
//! pile up), so silences survive a restart and a crash loses no change that
//! was acknowledged. Imports nothing from route, rules or api.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::store::{Labels, MatchOp, Matcher, is_label_name};

/// How long expired silences are kept, unless configured: Alertmanager's
/// `--data.retention` default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// One matcher of a silence, in the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// `false` for `!=` and `!~`; Alertmanager defaults it to true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn op(&self) -> MatchOp {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::RegexMatch,
            (true, false) => MatchOp::RegexNoMatch,
        }
    }

    /// The compiled matcher (regexes anchored, as Alertmanager does).
    fn compile(&self) -> Result<Matcher, SilenceError> {
        if !is_label_name(&self.name) {
            return Err(SilenceError::Invalid(format!(
                "invalid label matcher: invalid label name {:?}",
                self.name
            )));
        }
        Matcher::new(self.op(), self.name.clone(), self.value.clone())
            .map_err(|e| SilenceError::Invalid(format!("invalid label matcher: {e}")))
    }
}

/// A silence as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// Alertmanager's `getState`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// What a client posts to create or update a silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// Why a silence operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot persist silences to {path}: {source}")]
    Persist {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A silence and its compiled matchers.
struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

impl Entry {
    fn new(silence: Silence) -> Result<Self, SilenceError> {
        let matchers = silence
            .matchers
            .iter()
            .map(SilenceMatcher::compile)
            .collect::<Result<_, _>>()?;
        Ok(Self { silence, matchers })
    }

    /// Whether every matcher matches `labels` (the tests' scan, against
    /// which the index is checked).
    #[cfg(test)]
    fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
    }
}

/// The silence set.
pub struct Silences {
    entries: RwLock<FxHashMap<String, Entry>>,
    /// Which silences may mute an alert, by its label pairs; changed only
    /// while `entries` is write-locked.
    index: RwLock<MatchIndex>,
    log: Option<parking_lot::Mutex<Log>>,
    retention: Duration,
}

/// Silences by one equality matcher each (label name → value → probes):
/// an alert can be muted only by the silences filed under one of its own
/// label pairs, or by those with no equality matcher to file them under
/// (`unfiled`). With 1 000 silences each naming an alert, checking one
/// alert looks at a handful instead of all of them. Each silence is kept
/// here as a [`Probe`], so a check reads the index alone.
#[derive(Default)]
struct MatchIndex {
    filed: FxHashMap<String, FxHashMap<String, Vec<Probe>>>,
    unfiled: Vec<Probe>,
}

/// What the index keeps of a silence: its window and the matchers left to
/// check once its bucket matched.
struct Probe {
    id: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    /// The matchers other than the one the silence is filed under (all of
    /// them when unfiled).
    rest: Vec<Matcher>,
}

impl Probe {
    /// Whether the silence is active at `now` and mutes `labels`, its
    /// bucket's matcher being known to match.
    fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.starts_at <= now
            && now <= self.ends_at
            && self
                .rest
                .iter()
                .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
    }
}

impl MatchIndex {
    fn build(entries: &FxHashMap<String, Entry>) -> Self {
        let mut index = Self::default();
        for entry in entries.values() {
            index.add(entry);
        }
        index
    }

    /// Where a silence is filed: the place among its matchers of its first
    /// `name="value"` with a non-empty value (an empty one also matches a
    /// missing label).
    fn key(silence: &Silence) -> Option<usize> {
        silence
            .matchers
            .iter()
            .position(|m| !m.is_regex && m.is_equal && !m.value.is_empty())
    }

    fn add(&mut self, entry: &Entry) {
        let silence = &entry.silence;
        let key = Self::key(silence);
        let probe = Probe {
            id: silence.id.clone(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            rest: entry
                .matchers
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != key)
                .map(|(_, m)| m.clone())
                .collect(),
        };
        match key.map(|i| &silence.matchers[i]) {
            Some(m) => self
                .filed
                .entry(m.name.clone())
                .or_default()
                .entry(m.value.clone())
                .or_default()
                .push(probe),
            None => self.unfiled.push(probe),
        }
    }

    /// Follows a change of a silence's window (an update in place or
    /// an expiry; its matchers never change).
    fn set_window(&mut self, silence: &Silence) {
        let bucket = match Self::key(silence).map(|i| &silence.matchers[i]) {
            Some(m) => self
                .filed
                .get_mut(&m.name)
                .and_then(|values| values.get_mut(&m.value)),
            None => Some(&mut self.unfiled),
        };
        if let Some(probe) = bucket.and_then(|b| b.iter_mut().find(|p| p.id == silence.id)) {
            probe.starts_at = silence.starts_at;
            probe.ends_at = silence.ends_at;
        }
    }

    /// The silences that may match `labels` (each once).
    fn candidates<'a>(&'a self, labels: &'a Labels) -> impl Iterator<Item = &'a Probe> + 'a {
        labels
            .iter()
            .filter_map(|(name, value)| self.filed.get(name)?.get(value))
            .flatten()
            .chain(&self.unfiled)
    }
}

/// The append-only silence log.
struct Log {
    path: PathBuf,
    file: std::fs::File,
    /// Lines in the file.
    lines: usize,
}

/// Compact when the log holds this many more lines than silences.
const COMPACT_SLACK: usize = 1000;

impl Silences {
    /// An empty set kept only in memory.
    pub fn in_memory(retention: Duration) -> Self {
        Self {
            entries: RwLock::new(FxHashMap::default()),
            index: RwLock::new(MatchIndex::default()),
            log: None,
            retention,
        }
    }

    /// The set persisted in `dir/silences.jsonl`, loaded from it when
    /// present. A line that does not parse (a torn last write) is skipped
    /// and logged.
    pub fn open(dir: &Path, retention: Duration) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::io::BufRead;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let path = dir.join("silences.jsonl");
        let mut entries = FxHashMap::default();
        match std::fs::File::open(&path) {
            Ok(f) => {
                for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
                    let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                    let silence = match serde_json::from_str::<Silence>(&line) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping unreadable silence line");
                            continue;
                        }
                    };
                    let id = silence.id.clone();
                    let entry = Entry::new(silence)
                        .with_context(|| format!("silence {id} in {}", path.display()))?;
                    entries.insert(id, entry);
                }
                tracing::info!(silences = entries.len(), file = %path.display(), "silences loaded");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        let file =
            rewrite(&path, &entries).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            log: Some(parking_lot::Mutex::new(Log {
                path,
                file,
                lines: entries.len(),
            })),
            index: RwLock::new(MatchIndex::build(&entries)),
            entries: RwLock::new(entries),
            retention,
        })
    }

    /// Creates a silence, or updates the one with the posted id: in place
    /// when Alertmanager allows it (same matchers; an active silence keeps
    /// its start and does not end in the past; a pending one does not start
    /// in the past), otherwise by expiring the old one and creating a new
    /// one. Returns the id now in effect.
    pub fn set(&self, post: PostableSilence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        validate(&post, now)?;
        // Millisecond precision, the API's: a silence read back and posted
        // again compares equal.
        let now = millis(now);
        let (starts_at, ends_at) = (millis(post.starts_at), millis(post.ends_at));
        let mut entries = self.entries.write();
        let mut silence = Silence {
            id: post.id.clone().unwrap_or_default(),
            matchers: post.matchers,
            starts_at,
            ends_at,
            updated_at: now,
            created_by: post.created_by,
            comment: post.comment,
        };
        let prev = match post.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => Some(entries.get(id).ok_or(SilenceError::NotFound)?),
            None => None,
        };
        if let Some(prev) = prev {
            if can_update(&prev.silence, &silence, now) {
                let entry = Entry::new(silence)?;
                let id = entry.silence.id.clone();
                self.index.write().set_window(&entry.silence);
                entries.insert(id.clone(), entry);
                self.persist(&entries, &[&id])?;
                return Ok(id);
            }
            let prev_id = prev.silence.id.clone();
            if prev.silence.state(now) != SilenceState::Expired {
                self.expire_indexed(&mut entries, &prev_id, now)?;
                self.persist(&entries, &[&prev_id])?;
            }
        }
        silence.id = uuid::Uuid::new_v4().to_string();
        if silence.starts_at < now {
            silence.starts_at = now;
        }
        let entry = Entry::new(silence)?;
        let id = entry.silence.id.clone();
        // Updates in place keep their matchers (`can_update`), so only a
        // new id is filed.
        self.index.write().add(&entry);
        entries.insert(id.clone(), entry);
        self.persist(&entries, &[&id])?;
        tracing::info!(silence = %id, "silence set");
        Ok(id)
    }

    /// Expires a silence now; an already expired one is an error.
    pub fn expire(&self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let mut entries = self.entries.write();
        self.expire_indexed(&mut entries, id, now)?;
        self.persist(&entries, &[id])?;
        tracing::info!(silence = %id, "silence expired");
        Ok(())
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<Silence> {
        self.entries.read().get(id).map(|e| e.silence.clone())
    }

    /// Every silence, in no particular order.
    pub fn list(&self) -> Vec<Silence> {
        self.entries
            .read()
            .values()
            .map(|e| e.silence.clone())
            .collect()
    }

    /// Ids of the active silences that mute `labels`, sorted.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> Vec<String> {
        let index = self.index.read();
        let mut ids: Vec<String> = index
            .candidates(labels)
            .filter(|p| p.mutes(labels, now))
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Whether an active silence mutes `labels` (what routing asks for
    /// every alert it flushes: no allocation, and only the index read).
    pub fn is_muted(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.index
            .read()
            .candidates(labels)
            .any(|p| p.mutes(labels, now))
    }

    /// Expires the silence `id` (see [`expire_entry`]) in the set and in
    /// the index.
    fn expire_indexed(
        &self,
        entries: &mut FxHashMap<String, Entry>,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SilenceError> {
        expire_entry(entries, id, now)?;
        if let Some(e) = entries.get(id) {
            self.index.write().set_window(&e.silence);
        }
        Ok(())
    }

    /// Drops silences expired longer than the retention ago; returns how many.
    pub fn gc(&self, now: DateTime<Utc>) -> Result<usize, SilenceError> {
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let mut entries = self.entries.write();
        let before = entries.len();
        entries.retain(|_, e| {
            e.silence
                .ends_at
                .checked_add_signed(retention)
                .is_none_or(|until| until > now)
        });
        let removed = before - entries.len();
        if removed > 0 {
            *self.index.write() = MatchIndex::build(&entries);
            self.compact(&entries)?;
        }
        Ok(removed)
    }

    /// Appends the silences `ids` as they now are; compacts when stale
    /// lines pile up.
    fn persist(
        &self,
        entries: &FxHashMap<String, Entry>,
        ids: &[&str],
    ) -> Result<(), SilenceError> {
        use std::io::Write;
        let Some(log) = &self.log else {
            return Ok(());
        };
        let mut log = log.lock();
        let mut text = String::new();
        for id in ids {
            if let Some(e) = entries.get(*id) {
                let line =
                    serde_json::to_string(&e.silence).map_err(|e| SilenceError::Persist {
                        path: log.path.display().to_string(),
                        source: e.into(),
                    })?;
                text.push_str(&line);
                text.push('\n');
            }
        }
        let path = log.path.display().to_string();
        log.file
            .write_all(text.as_bytes())
            .map_err(|source| SilenceError::Persist { path, source })?;
        log.lines += ids.len();
        if log.lines > entries.len() * 2 + COMPACT_SLACK {
            drop(log);
            self.compact(entries)?;
        }
        Ok(())
    }

    /// Rewrites the log with one line per silence.
    fn compact(&self, entries: &FxHashMap<String, Entry>) -> Result<(), SilenceError> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let mut log = log.lock();
        log.file = rewrite(&log.path, entries).map_err(|source| SilenceError::Persist {
            path: log.path.display().to_string(),
            source,
        })?;
        log.lines = entries.len();
        Ok(())
    }
}

/// Writes one line per silence to a temporary file, renames it over `path`
/// and returns the file opened for appending.
fn rewrite(path: &Path, entries: &FxHashMap<String, Entry>) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    let mut all: Vec<&Silence> = entries.values().map(|e| &e.silence).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for s in all {
            let line = serde_json::to_string(s).map_err(std::io::Error::other)?;
            f.write_all(line.as_bytes())?;
            f.write_all(b"\n")?;
        }
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::OpenOptions::new().append(true).open(path)
}

/// `t` truncated to whole milliseconds.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Alertmanager's `expire`: an active silence ends now; a pending one starts
/// and ends now.
fn expire_entry(
    entries: &mut FxHashMap<String, Entry>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), SilenceError> {
    let entry = entries.get_mut(id).ok_or(SilenceError::NotFound)?;
    let s = &mut entry.silence;
    let state = s.state(now);
    let now = millis(now);
    match state {
        SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_string())),
        SilenceState::Active => s.ends_at = now,
        SilenceState::Pending => {
            s.starts_at = now;
            s.ends_at = now;
        }
    }
    s.updated_at = now;
    Ok(())
}

/// Alertmanager's `validateSilence`, in its words.
fn validate(post: &PostableSilence, now: DateTime<Utc>) -> Result<(), SilenceError> {
    let invalid = |m: &str| Err(SilenceError::Invalid(m.to_string()));
    if post.matchers.is_empty() {
        return invalid("at least one matcher required");
    }
    let mut all_match_empty = true;
    for m in &post.matchers {
        let compiled = m.compile()?;
        all_match_empty &= compiled.matches("");
    }
    if all_match_empty {
        return invalid("at least one matcher must not match the empty string");
    }
    if post.ends_at < post.starts_at {
        return invalid("end time must not be before start time");
    }
    if post.ends_at < now {
        return invalid("end time can't be in the past");
    }
    if post.created_by.is_empty() {
        return invalid("creator information required");
    }
    if post.comment.is_empty() {
        return invalid("comment required");
    }
    Ok(())
}

/// Alertmanager's `canUpdate`.
fn can_update(a: &Silence, b: &Silence, now: DateTime<Utc>) -> bool {
    if a.matchers != b.matchers {
        return false;
    }
    match a.state(now) {
        SilenceState::Active => b.starts_at == a.starts_at && b.ends_at >= now,
        SilenceState::Pending => b.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// Alertmanager's `CheckSilenceMatchesFilterLabels`: every filter matcher
/// names a label the silence has a matcher for, and matches its value.
pub fn matches_filter(silence: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        silence
            .matchers
            .iter()
            .rev()
            .find(|m| m.name == f.name())
            .is_some_and(|m| f.matches(&m.value))
    })
}

/// Alertmanager's `SortSilences`: active first by soonest end, then pending
/// by soonest start, then expired by latest end.
pub fn sort_for_api(silences: &mut [Silence], now: DateTime<Utc>) {
    let rank = |s: &Silence| match s.state(now) {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    silences.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("test time")
    }

    fn post(matchers: &[(&str, &str, bool, bool)], start: &str, end: &str) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers: matchers
                .iter()
                .map(|&(n, v, is_regex, is_equal)| SilenceMatcher {
                    name: n.into(),
                    value: v.into(),
                    is_regex,
                    is_equal,
                })
                .collect(),
            starts_at: t(start),
            ends_at: t(end),
            created_by: "ops".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    #[test]
    fn the_match_index_finds_what_a_scan_of_every_silence_finds() {
        let s = Silences::in_memory(DEFAULT_RETENTION);
        let now = t("2026-01-01T10:00:00Z");
        let (start, end) = ("2026-01-01T09:00:00Z", "2026-01-01T11:00:00Z");
        let shapes: &[&[(&str, &str, bool, bool)]] = &[
            &[
                ("alertname", "A", false, true),
                ("model_name", "fraud", false, true),
            ],
            &[("model_name", "fraud", false, true)],
            &[("alertname", "A.*", true, true)],
            &[
                ("alertname", "B", false, false),
                ("model_name", "fraud", false, true),
            ],
            // An empty value also matches a missing label: never filed.
            &[("team", "", false, true), ("alertname", "A", false, true)],
            &[
                ("severity", "page|critical", true, true),
                ("alertname", "A", false, true),
            ],
        ];
        let mut ids = Vec::new();
        for matchers in shapes {
            ids.push(s.set(post(matchers, start, end), now).expect("created"));
        }
        let alerts = [
            labels(&[("alertname", "A"), ("model_name", "fraud")]),
            labels(&[("alertname", "A"), ("model_name", "churn"), ("team", "ml")]),
            labels(&[("alertname", "AB"), ("severity", "critical")]),
            labels(&[("alertname", "B"), ("model_name", "fraud")]),
            labels(&[("alertname", "A"), ("severity", "page")]),
        ];
        let agree = |now: DateTime<Utc>| {
            for l in &alerts {
                let entries = s.entries.read();
                let mut scanned: Vec<String> = entries
                    .values()
                    .filter(|e| e.silence.state(now) == SilenceState::Active && e.matches(l))
                    .map(|e| e.silence.id.clone())
                    .collect();
                drop(entries);
                scanned.sort();
                assert_eq!(s.mutes(l, now), scanned, "{l:?}");
                assert_eq!(s.is_muted(l, now), !scanned.is_empty(), "{l:?}");
            }
        };
        agree(now);
        // The first alert: 0 and 1 by value, 2 by regex, 3 (filed under
        // its model, and `alertname!="B"`), 4 (it has no team); 5 needs a
        // severity.
        let first = s.mutes(&alerts[0], now);
        let expected: std::collections::BTreeSet<&String> =
            [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]]
                .into_iter()
                .collect();
        assert_eq!(
            first.iter().collect::<std::collections::BTreeSet<_>>(),
            expected
        );
        // An expiry (filed and unfiled silences) and an update in place
        // reach the index too.
        s.expire(&ids[0], now).expect("expire a filed silence");
        s.expire(&ids[2], now).expect("expire an unfiled silence");
        let mut longer = post(shapes[1], start, "2026-01-01T15:00:00Z");
        longer.id = Some(ids[1].clone());
        longer.starts_at = s.get(&ids[1]).expect("silence 1").starts_at;
        assert_eq!(s.set(longer, now).expect("updated"), ids[1], "in place");
        let after = t("2026-01-01T10:00:01Z");
        agree(after);
        agree(t("2026-01-01T12:00:00Z"));
        assert!(!s.mutes(&alerts[0], after).contains(&ids[0]));
        assert!(
            s.mutes(&alerts[0], t("2026-01-01T12:00:00Z"))
                .contains(&ids[1])
        );
        // Expired and gone after retention: the index forgets them too.
        let later = t("2026-01-10T00:00:00Z");
        assert_eq!(s.gc(later).expect("gc"), shapes.len());
        assert!(!s.is_muted(&alerts[0], t("2026-01-01T10:30:00Z")));
    }

    #[test]
    fn pending_silence_mutes_only_inside_its_window() {
        let s = Silences::in_memory(DEFAULT_RETENTION);
        let now = t("2026-01-01T10:00:00Z");
        let id = s
            .set(
                post(
                    &[("model_name", "fraud", false, true)],
                    "2026-01-01T12:00:00Z",
                    "2026-01-01T13:00:00Z",
                ),
                now,
            )
            .expect("created");
        let l = labels(&[("alertname", "A"), ("model_name", "fraud")]);
        assert!(s.mutes(&l, now).is_empty(), "pending silences mute nothing");
        assert_eq!(s.mutes(&l, t("2026-01-01T12:30:00Z")), vec![id.clone()]);
        assert!(s.mutes(&l, t("2026-01-01T13:00:01Z")).is_empty(), "expired");
        assert!(
            s.mutes(
                &labels(&[("model_name", "churn")]),
                t("2026-01-01T12:30:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn regex_and_negative_matchers_are_anchored() {
        let s = Silences::in_memory(DEFAULT_RETENTION);
        let now = t("2026-01-01T10:00:00Z");
        s.set(
            post(
                &[
                    ("model_name", "fraud|churn", true, true),
                    ("severity", "critical", false, false),
                ],
                "2026-01-01T10:00:00Z",
                "2026-01-01T11:00:00Z",
            ),
            now,
        )
        .expect("created");
        let at = t("2026-01-01T10:30:00Z");
        assert_eq!(
            s.mutes(
                &labels(&[("model_name", "fraud"), ("severity", "warning")]),
                at
            )
            .len(),
            1
        );
        assert!(
            s.mutes(&labels(&[("model_name", "fraud-v2")]), at)
                .is_empty(),
            "anchored"
        );
        assert!(
            s.mutes(
                &labels(&[("model_name", "churn"), ("severity", "critical")]),
                at
            )
            .is_empty()
        );
    }

    #[test]
    fn validation_uses_alertmanagers_messages() {
        let s = Silences::in_memory(DEFAULT_RETENTION);
        let now = t("2026-01-01T10:00:00Z");
        let cases = [
            (
                post(&[], "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"),
                "at least one matcher required",
            ),
            (
                post(
                    &[("a", ".*", true, true)],
                    "2026-01-01T10:00:00Z",
                    "2026-01-01T11:00:00Z",
                ),
                "at least one matcher must not match the empty string",
            ),
            (
                post(
                    &[("a", "b", false, true)],
                    "2026-01-01T11:00:00Z",
                    "2026-01-01T10:30:00Z",
                ),
                "end time must not be before start time",
            ),
            (
                post(
                    &[("a", "b", false, true)],
                    "2026-01-01T08:00:00Z",
                    "2026-01-01T09:00:00Z",
                ),
                "end time can't be in the past",
            ),
            (
                post(
                    &[("a", "(", true, true)],
                    "2026-01-01T10:00:00Z",
                    "2026-01-01T11:00:00Z",
                ),
                "invalid label matcher",
            ),
        ];
        for (p, want) in cases {
            let err = s.set(p, now).expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn update_in_place_or_replace_as_alertmanager_does() {
        let s = Silences::in_memory(DEFAULT_RETENTION);
        let now = t("2026-01-01T10:00:00Z");
        let id = s
            .set(
                post(
                    &[("a", "b", false, true)],
                    "2026-01-01T10:00:00Z",
                    "2026-01-01T11:00:00Z",
                ),
                now,
            )
            .expect("created");
        // Extending an active silence keeps its id.
        let mut p = post(
            &[("a", "b", false, true)],
            "2026-01-01T10:00:00Z",
            "2026-01-01T12:00:00Z",
        );
        p.id = Some(id.clone());
        let later = t("2026-01-01T10:10:00Z");
        assert_eq!(s.set(p, later).expect("updated"), id);
        assert_eq!(s.get(&id).expect("kept").ends_at, t("2026-01-01T12:00:00Z"));
        // Changing matchers expires it and creates a new one.
        let mut p = post(
            &[("a", "c", false, true)],
            "2026-01-01T10:00:00Z",
            "2026-01-01T12:00:00Z",
        );
        p.id = Some(id.clone());
        let new_id = s.set(p, later).expect("replaced");
        assert_ne!(new_id, id);
        assert_eq!(
            s.get(&id)
                .expect("old kept")
                .state(t("2026-01-01T10:10:01Z")),
            SilenceState::Expired
        );
        assert_eq!(
            s.get(&new_id).expect("new").starts_at,
            later,
            "a start in the past becomes now"
        );
        // Unknown id.
        let mut p = post(
            &[("a", "b", false, true)],
            "2026-01-01T10:00:00Z",
            "2026-01-01T12:00:00Z",
        );
        p.id = Some("nope".into());
        assert!(matches!(s.set(p, later), Err(SilenceError::NotFound)));
    }

    #[test]
    fn expire_and_gc_after_retention() {
        let s = Silences::in_memory(Duration::from_secs(3600));
        let now = t("2026-01-01T10:00:00Z");
        let id = s
            .set(
                post(
                    &[("a", "b", false, true)],
                    "2026-01-01T12:00:00Z",
                    "2026-01-01T13:00:00Z",
                ),
                now,
            )
            .expect("created");
        s.expire(&id, now).expect("expired");
        let sil = s.get(&id).expect("kept");
        assert_eq!(
            (sil.starts_at, sil.ends_at),
            (now, now),
            "a pending silence starts and ends now"
        );
        assert!(matches!(
            s.expire(&id, t("2026-01-01T10:00:01Z")),
            Err(SilenceError::AlreadyExpired(_))
        ));
        assert_eq!(
            s.gc(t("2026-01-01T10:30:00Z")).expect("gc"),
            0,
            "within retention"
        );
        assert_eq!(s.gc(t("2026-01-01T11:00:01Z")).expect("gc"), 1);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn persisted_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let id = {
            let s = Silences::open(dir.path(), DEFAULT_RETENTION).expect("open");
            let mut p = post(
                &[("a", "b", false, true)],
                "2026-01-01T10:00:00Z",
                "2026-01-01T11:00:00Z",
            );
            p.starts_at = now;
            p.ends_at = now + chrono::Duration::hours(1);
            s.set(p, now).expect("created")
        };
        let s = Silences::open(dir.path(), DEFAULT_RETENTION).expect("reopen");
        assert_eq!(
            s.mutes(&labels(&[("a", "b")]), now + chrono::Duration::minutes(1)),
            vec![id]
        );
    }

    #[test]
    fn every_change_is_in_the_log_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let (a, b) = {
            let s = Silences::open(dir.path(), DEFAULT_RETENTION).expect("open");
            let mut p = post(
                &[("a", "b", false, true)],
                "2026-01-01T10:00:00Z",
                "2026-01-01T11:00:00Z",
            );
            p.starts_at = now;
            p.ends_at = now + chrono::Duration::hours(1);
            let a = s.set(p.clone(), now).expect("a");
            let b = s.set(p, now).expect("b");
            s.expire(&a, now + chrono::Duration::seconds(1))
                .expect("expire a");
            (a, b)
            // Dropped without any shutdown step, as in a crash.
        };
        let path = dir.path().join("silences.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        std::io::Write::write_all(&mut f, b"{\"id\": \"torn").expect("torn write");
        drop(f);
        let s = Silences::open(dir.path(), DEFAULT_RETENTION).expect("reopen");
        let later = now + chrono::Duration::seconds(2);
        assert_eq!(
            s.get(&a).expect("a kept").state(later),
            SilenceState::Expired
        );
        assert_eq!(
            s.get(&b).expect("b kept").state(later),
            SilenceState::Active
        );
        assert_eq!(s.list().len(), 2);
        let lines = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count();
        assert_eq!(lines, 2, "compacted at open");
    }

    #[test]
    fn filter_and_sort_like_the_api() {
        let now = t("2026-01-01T10:00:00Z");
        let mk = |id: &str, start: &str, end: &str| Silence {
            id: id.into(),
            matchers: vec![SilenceMatcher {
                name: "a".into(),
                value: id.into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: t(start),
            ends_at: t(end),
            updated_at: now,
            created_by: "x".into(),
            comment: "y".into(),
        };
        let mut all = vec![
            mk("exp-old", "2026-01-01T07:00:00Z", "2026-01-01T08:00:00Z"),
            mk("pend", "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"),
            mk("act-late", "2026-01-01T09:00:00Z", "2026-01-01T12:00:00Z"),
            mk("exp-new", "2026-01-01T07:00:00Z", "2026-01-01T09:00:00Z"),
            mk("act-soon", "2026-01-01T09:00:00Z", "2026-01-01T10:30:00Z"),
        ];
        sort_for_api(&mut all, now);
        let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["act-soon", "act-late", "pend", "exp-new", "exp-old"]);
        let f = [Matcher::equal("a", "pend")];
        assert!(matches_filter(&all[2], &f));
        assert!(!matches_filter(&all[0], &f));
    }
}
