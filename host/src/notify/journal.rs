//! The delivery queue's journal: every notification accepted for delivery
//! is appended to `notify-queue.jsonl` in the data dir before it is queued,
//! and marked done once delivered (or failed for good). At start, the
//! entries not marked done are queued again, so neither a clean shutdown nor
//! a crash of the process loses an accepted notification.
//!
//! One JSON object per line: `{"enqueue": {...}}` or `{"done": id}`. The
//! file is compacted (rewritten with only the pending entries) at start and
//! whenever done lines outnumber pending ones by a margin; that compaction
//! is written on a thread of its own, off the journal's lock, which it takes
//! again only to add the lines appended meanwhile and swap the files.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::alert::Notification;

/// One queued notification as journaled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub receiver: String,
    pub integration: usize,
    pub notification: Notification,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Enqueue(Box<Entry>),
    Done(u64),
}

/// An `enqueue` line written from borrowed parts (the same text as
/// `Line::Enqueue`), so journaling copies no notification.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum EnqueueLine<'a> {
    Enqueue(EntryRef<'a>),
}

#[derive(Serialize)]
struct EntryRef<'a> {
    id: u64,
    receiver: &'a str,
    integration: usize,
    notification: &'a Notification,
}

/// Where a pending entry's `enqueue` line is in the file (newline
/// included).
#[derive(Clone, Copy, Debug)]
struct Span {
    at: u64,
    len: usize,
}

struct Inner {
    file: File,
    /// The pending entries by id. Their lines are only in the file: the
    /// compaction copies them from there, by place, parsing nothing.
    pending: FxHashMap<u64, Span>,
    next_id: u64,
    /// Lines in the file.
    lines: usize,
    /// The file's length: where the next line goes.
    end: u64,
    /// Encoding buffer, reused.
    buf: Vec<u8>,
    /// A compaction is under way (at most one at a time).
    compacting: bool,
    /// After a failed compaction, the line count the file must pass before
    /// the next try (a full disk is not retried at every finished delivery).
    retry_at: usize,
    /// Its thread, for [`Journal::settle`].
    compaction: Option<std::thread::JoinHandle<()>>,
}

impl Inner {
    /// What a compaction starts from: the pending entries by place, oldest
    /// first, and the file's length.
    fn snapshot(&self) -> (Vec<(u64, Span)>, u64) {
        let mut order: Vec<(u64, Span)> =
            self.pending.iter().map(|(&id, &span)| (id, span)).collect();
        order.sort_unstable_by_key(|(_, span)| span.at);
        (order, self.end)
    }

    /// Appends `bytes`; after a failed write, takes the file's length from
    /// the file (a torn line is skipped at the next start).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.end += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Ok(meta) = self.file.metadata() {
                    self.end = meta.len();
                }
                Err(e)
            }
        }
    }
}

/// The journal; cheap to share behind an `Arc`.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Compact when the file holds this many more lines than pending entries.
const COMPACT_SLACK: usize = 10_000;

impl Journal {
    /// Opens (or creates) the journal in `dir`; returns it and the entries
    /// still pending, oldest first. Lines that do not parse (a torn last
    /// write) are skipped and logged.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Entry>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("notify-queue.jsonl");
        let mut pending: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut max_id = 0;
        match File::open(&path) {
            Ok(f) => {
                for (n, line) in BufReader::new(f).lines().enumerate() {
                    let line = line?;
                    match serde_json::from_str::<Line>(&line) {
                        Ok(Line::Enqueue(e)) => {
                            max_id = max_id.max(e.id);
                            pending.insert(e.id, *e);
                        }
                        Ok(Line::Done(id)) => {
                            pending.remove(&id);
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping unreadable journal line")
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let entries: Vec<Entry> = pending.into_values().collect();
        let mut lines = Vec::with_capacity(entries.len());
        for e in &entries {
            lines.push(encode(&Line::Enqueue(Box::new(e.clone())))?);
        }
        let (file, spans) = rewrite(&path, lines.iter().map(String::as_bytes))?;
        if !entries.is_empty() {
            tracing::info!(pending = entries.len(), file = %path.display(), "notifications recovered from the journal");
        }
        let end = spans.last().map_or(0, |s| s.at + s.len as u64);
        let journal = Self {
            path,
            inner: Mutex::new(Inner {
                file,
                lines: lines.len(),
                pending: entries.iter().map(|e| e.id).zip(spans).collect(),
                next_id: max_id + 1,
                end,
                buf: Vec::new(),
                compacting: false,
                retry_at: 0,
                compaction: None,
            }),
        };
        Ok((journal, entries))
    }

    /// Journals one notification; returns its id (the tests' shorthand:
    /// the delivery queue journals through [`Journal::enqueue_many`]).
    #[cfg(test)]
    fn enqueue(
        &self,
        receiver: &str,
        integration: usize,
        notification: &Notification,
    ) -> std::io::Result<u64> {
        self.enqueue_many([(receiver, integration, notification)])?
            .pop()
            .ok_or_else(|| std::io::Error::other("no id for the journaled notification"))
    }

    /// Journals notifications (receiver, integration index, notification)
    /// in one write; returns their ids, in order. When the write fails none
    /// is pending (but lines written before the failure may be recovered
    /// at the next start: delivery stays at least once).
    pub fn enqueue_many<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, usize, &'a Notification)>,
    ) -> std::io::Result<Vec<u64>> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut buf = std::mem::take(&mut inner.buf);
        buf.clear();
        let mut placed = Vec::new();
        let mut id = inner.next_id;
        for (receiver, integration, notification) in entries {
            let start = buf.len();
            let line = EnqueueLine::Enqueue(EntryRef {
                id,
                receiver,
                integration,
                notification,
            });
            if let Err(e) = serde_json::to_writer(&mut buf, &line) {
                inner.buf = buf;
                return Err(std::io::Error::other(e));
            }
            buf.push(b'\n');
            let span = Span {
                at: inner.end + start as u64,
                len: buf.len() - start,
            };
            placed.push((id, span));
            id += 1;
        }
        let written = inner.append(&buf);
        inner.buf = buf;
        written?;
        inner.next_id = id;
        inner.lines += placed.len();
        let ids = placed.iter().map(|(id, _)| *id).collect();
        inner.pending.extend(placed);
        Ok(ids)
    }

    /// Marks an entry delivered or given up on.
    pub fn done(self: &Arc<Self>, id: u64) {
        self.done_many(&[id]);
    }

    /// Marks entries delivered or given up on, in one write. When done
    /// lines have piled up, starts a compaction on a thread of its own.
    pub fn done_many(self: &Arc<Self>, ids: &[u64]) {
        let mut inner = self.inner.lock();
        let mut text = String::new();
        let mut lines = 0;
        for &id in ids {
            if inner.pending.remove(&id).is_none() {
                continue;
            }
            match encode(&Line::Done(id)) {
                Ok(line) => text.push_str(&line),
                Err(e) => {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot encode a finished delivery");
                    continue;
                }
            }
            lines += 1;
        }
        if lines == 0 {
            return;
        }
        if let Err(e) = inner.append(text.as_bytes()) {
            tracing::error!(file = %self.path.display(), error = %e, "cannot journal a finished delivery");
            return;
        }
        inner.lines += lines;
        if !inner.compacting
            && inner.lines > inner.retry_at
            && inner.lines > inner.pending.len() * 2 + COMPACT_SLACK
        {
            let (order, upto) = inner.snapshot();
            let journal = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("klaxon-journal".into())
                .spawn(move || journal.compact(order, upto));
            match spawned {
                Ok(handle) => {
                    inner.compacting = true;
                    inner.compaction = Some(handle);
                }
                Err(e) => {
                    inner.retry_at = inner.lines + COMPACT_SLACK;
                    tracing::error!(file = %self.path.display(), error = %e, "cannot start compacting the journal")
                }
            }
        }
    }

    /// Compacts the journal: the `enqueue` lines of `order` (the entries
    /// pending when it started, by place) are copied to a new file off the
    /// lock; then, under it, the lines appended since (`upto` on) follow
    /// them, the pending entries' places are moved, and the new file
    /// replaces the old. On failure the old file stays as it was.
    fn compact(&self, order: Vec<(u64, Span)>, upto: u64) {
        let tmp = self.path.with_extension("jsonl.tmp");
        let written = write_compacted(&self.path, &tmp, &order, upto);
        let mut inner = self.inner.lock();
        let result = written.and_then(|(file, moved, len)| {
            finish_compaction(&self.path, &tmp, &mut inner, file, &moved, len, upto)
        });
        inner.compacting = false;
        if let Err(e) = result {
            inner.retry_at = inner.lines + COMPACT_SLACK;
            let _ = std::fs::remove_file(&tmp);
            tracing::error!(file = %self.path.display(), error = %e, "cannot compact the journal");
        }
    }

    /// Waits for a compaction under way to finish.
    pub fn settle(&self) {
        let handle = self.inner.lock().compaction.take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!(file = %self.path.display(), "the journal's compaction panicked");
        }
    }

    /// Flushes the journal to disk (at shutdown), after any compaction
    /// under way.
    pub fn sync(&self) {
        self.settle();
        if let Err(e) = self.inner.lock().file.sync_data() {
            tracing::error!(file = %self.path.display(), error = %e, "cannot sync the journal");
        }
    }

    /// Entries not yet done.
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }
}

fn encode(line: &impl Serialize) -> std::io::Result<String> {
    let mut s = serde_json::to_string(line).map_err(std::io::Error::other)?;
    s.push('\n');
    Ok(s)
}

/// Writes `lines` to a temporary file, renames it over `path`, and returns
/// the file opened for appending and where each line now is.
fn rewrite<'a>(
    path: &Path,
    lines: impl Iterator<Item = &'a [u8]>,
) -> std::io::Result<(File, Vec<Span>)> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut spans = Vec::new();
    {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        let mut at = 0;
        for l in lines {
            f.write_all(l)?;
            spans.push(Span { at, len: l.len() });
            at += l.len() as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok((OpenOptions::new().append(true).open(path)?, spans))
}

/// The first half of a compaction, off the lock: copies the `enqueue`
/// lines of `order` (oldest first, by their places, parsing nothing; the
/// journal only appends, so what lies before `upto` does not move) from
/// the journal at `path` to a new file at `tmp`, synced. Returns that
/// file, each entry's new place and the file's length. A place outside
/// the file or not ending a line fails it.
fn write_compacted(
    path: &Path,
    tmp: &Path,
    order: &[(u64, Span)],
    upto: u64,
) -> std::io::Result<(File, FxHashMap<u64, Span>, u64)> {
    let first = order.first().map_or(upto, |(_, span)| span.at);
    let mut old = Vec::new();
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(first))?;
    f.take(upto.saturating_sub(first)).read_to_end(&mut old)?;
    let mut out = std::io::BufWriter::new(File::create(tmp)?);
    let mut moved = FxHashMap::default();
    let mut at = 0u64;
    for (id, span) in order {
        let line = span
            .at
            .checked_sub(first)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| old.get(off..off.checked_add(span.len)?))
            .filter(|line| line.ends_with(b"\n"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("entry {id} is not where the journal wrote it"),
                )
            })?;
        out.write_all(line)?;
        moved.insert(*id, Span { at, len: span.len });
        at += span.len as u64;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_data()?;
    Ok((file, moved, at))
}

/// The second half of a compaction, under the lock: appends to `file` the
/// lines written to the journal since `upto`, moves every pending entry's
/// place (those pending at the start to where `moved` put them, those
/// added since after them), and puts the new file in place of the old.
fn finish_compaction(
    path: &Path,
    tmp: &Path,
    inner: &mut Inner,
    mut file: File,
    moved: &FxHashMap<u64, Span>,
    len: u64,
    upto: u64,
) -> std::io::Result<()> {
    let mut tail = Vec::new();
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(upto))?;
    f.take(inner.end.saturating_sub(upto))
        .read_to_end(&mut tail)?;
    // Not synced: these lines were appended without a sync, as every line
    // is, and the part that was synced before (`write_compacted`) is what
    // the rename must not lose. No disk flush happens under the lock.
    file.write_all(&tail)?;
    let mut pending = FxHashMap::default();
    pending.reserve(inner.pending.len());
    for (&id, span) in &inner.pending {
        let place = if span.at >= upto {
            Span {
                at: len + (span.at - upto),
                len: span.len,
            }
        } else {
            *moved.get(&id).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("entry {id} was not in the compaction"),
                )
            })?
        };
        pending.insert(id, place);
    }
    // Opened before the rename, so that once the new file is in place
    // nothing can fail before the journal appends to it.
    let append = OpenOptions::new().append(true).open(tmp)?;
    std::fs::rename(tmp, path)?;
    inner.file = append;
    inner.end = len + tail.len() as u64;
    inner.lines = moved.len() + tail.iter().filter(|&&b| b == b'\n').count();
    inner.pending = pending;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Journals `n` notifications keyed `{prefix}0`, `{prefix}1`, …; their ids.
    fn enqueue_n(j: &Journal, prefix: &str, n: usize) -> Vec<u64> {
        (0..n)
            .map(|k| {
                j.enqueue("r", 0, &notification(&format!("{prefix}{k}")))
                    .expect("enqueue")
            })
            .collect()
    }

    fn notification(key: &str) -> Notification {
        Notification {
            receiver: "r".into(),
            status: "firing".into(),
            alerts: Vec::new(),
            group_labels: Default::default(),
            common_labels: Default::default(),
            common_annotations: Default::default(),
            external_url: String::new(),
            group_key: key.into(),
            truncated_alerts: 0,
        }
    }

    #[test]
    fn pending_entries_survive_reopen_and_done_ones_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (j, recovered) = Journal::open(dir.path()).expect("open");
            let j = Arc::new(j);
            assert!(recovered.is_empty());
            let a = j.enqueue("r", 0, &notification("a")).expect("a");
            j.enqueue("r", 1, &notification("b")).expect("b");
            j.done(a);
            // No sync, no shutdown: as after a crash.
        }
        let (j, recovered) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].notification.group_key, "b");
        assert_eq!(recovered[0].integration, 1);
        let c = j.enqueue("r", 0, &notification("c")).expect("c");
        assert!(c > recovered[0].id, "ids keep growing");
        assert_eq!(j.pending(), 2);
    }

    #[test]
    fn compaction_keeps_exactly_the_pending_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify-queue.jsonl");
        let keep = [17, 4242];
        {
            let (j, _) = Journal::open(dir.path()).expect("open");
            let j = Arc::new(j);
            let ids = enqueue_n(&j, "g", 6000);
            let done: Vec<u64> = ids
                .iter()
                .enumerate()
                .filter(|(k, _)| !keep.contains(k))
                .map(|(_, id)| *id)
                .collect();
            // 6 000 enqueue lines and 5 998 done lines: past the slack.
            j.done_many(&done);
            j.settle();
            assert_eq!(j.pending(), 2);
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(text.lines().count(), 2, "compacted to the pending lines");
            // Appending after the compaction still lands in the journal.
            j.enqueue("r", 1, &notification("after")).expect("after");
            // A second compaction finds the survivors of the first where
            // that one put them.
            let more = enqueue_n(&j, "m", 6000);
            j.done_many(&more);
            j.settle();
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(text.lines().count(), 3, "compacted again");
        }
        let (_, recovered) = Journal::open(dir.path()).expect("reopen");
        let keys: Vec<&str> = recovered
            .iter()
            .map(|e| e.notification.group_key.as_str())
            .collect();
        assert_eq!(keys, ["g17", "g4242", "after"]);
    }

    #[test]
    fn lines_appended_while_a_compaction_is_written_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify-queue.jsonl");
        let tmp = path.with_extension("jsonl.tmp");
        {
            let (j, _) = Journal::open(dir.path()).expect("open");
            let j = Arc::new(j);
            let a = j.enqueue("r", 0, &notification("a")).expect("a");
            let b = j.enqueue("r", 0, &notification("b")).expect("b");
            let c = j.enqueue("r", 0, &notification("c")).expect("c");
            j.done(b);
            // The first half, as the compaction thread runs it: the
            // entries pending now (a, c), by place.
            let (order, upto) = j.inner.lock().snapshot();
            let (file, moved, len) = write_compacted(&path, &tmp, &order, upto).expect("write");
            // Meanwhile: one of them is delivered, another is queued.
            j.done(a);
            let d = j.enqueue("r", 1, &notification("d")).expect("d");
            {
                let mut inner = j.inner.lock();
                finish_compaction(&path, &tmp, &mut inner, file, &moved, len, upto)
                    .expect("finish");
            }
            assert_eq!(j.pending(), 2);
            // A second compaction finds c and d where the first put them.
            let (order, upto) = j.inner.lock().snapshot();
            let (file, moved, len) = write_compacted(&path, &tmp, &order, upto).expect("write");
            let mut inner = j.inner.lock();
            finish_compaction(&path, &tmp, &mut inner, file, &moved, len, upto).expect("finish");
            assert!(inner.pending.contains_key(&c) && inner.pending.contains_key(&d));
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2, "only c and d are left");
        let (_, recovered) = Journal::open(dir.path()).expect("reopen");
        let keys: Vec<&str> = recovered
            .iter()
            .map(|e| e.notification.group_key.as_str())
            .collect();
        assert_eq!(keys, ["c", "d"]);
        assert_eq!(recovered[1].integration, 1);
    }

    #[test]
    fn a_failed_compaction_is_tried_again_only_after_more_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify-queue.jsonl");
        let (j, _) = Journal::open(dir.path()).expect("open");
        let j = Arc::new(j);
        // A directory where the compaction writes its new file: it fails.
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::create_dir(&tmp).expect("block the new file");
        let lines = |path: &Path| std::fs::read_to_string(path).expect("read").lines().count();
        let round = |n: usize| {
            let ids = enqueue_n(&j, "g", n);
            j.done_many(&ids);
            j.settle();
        };
        round(6000);
        assert_eq!(
            lines(&path),
            12_000,
            "the compaction failed: nothing changed"
        );
        std::fs::remove_dir(&tmp).expect("unblock");
        // Not tried again at the next finished delivery...
        round(10);
        assert_eq!(lines(&path), 12_020);
        // ...but once COMPACT_SLACK more lines were written.
        round(COMPACT_SLACK / 2);
        assert_eq!(lines(&path), 0, "compacted: nothing is pending");
        assert_eq!(j.pending(), 0);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (j, _) = Journal::open(dir.path()).expect("open");
            j.enqueue("r", 0, &notification("a")).expect("a");
        }
        let path = dir.path().join("notify-queue.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("append");
        f.write_all(b"{\"enqueue\": {\"id\": 9, \"rec")
            .expect("torn write");
        drop(f);
        let (_, recovered) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(recovered.len(), 1);
    }
}
