//! The delivery queue's journal: every notification accepted for delivery
//! is appended to `notify-queue.jsonl` in the data dir before it is queued,
//! and marked done once delivered (or failed for good). At start, the
//! entries not marked done are queued again, so neither a clean shutdown nor
//! a crash of the process loses an accepted notification.
//!
//! One JSON object per line: `{"enqueue": {...}}` or `{"done": id}`. The
//! file is compacted (rewritten with only the pending entries) at start and
//! whenever done lines outnumber pending ones by a margin.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

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
}

impl Inner {
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
    pub fn done(&self, id: u64) {
        self.done_many(&[id]);
    }

    /// Marks entries delivered or given up on, in one write.
    pub fn done_many(&self, ids: &[u64]) {
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
        if inner.lines > inner.pending.len() * 2 + COMPACT_SLACK {
            match compact(&self.path, &mut inner.pending) {
                Ok((file, end)) => {
                    inner.file = file;
                    inner.lines = inner.pending.len();
                    inner.end = end;
                }
                Err(e) => {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot compact the journal")
                }
            }
        }
    }

    /// Flushes the journal to disk (at shutdown).
    pub fn sync(&self) {
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

/// Rewrites the journal at `path` with only the `enqueue` lines of the
/// `pending` entries, oldest first, copied by their places in the file
/// (parsing the whole journal made a compaction of 15 000 lines stall
/// deliveries for ~20 ms); updates their places and returns the new file
/// and its length. A place outside the file or not ending a line (the
/// file changed under the journal) fails the compaction and changes
/// nothing.
fn compact(path: &Path, pending: &mut FxHashMap<u64, Span>) -> std::io::Result<(File, u64)> {
    let old = std::fs::read(path)?;
    let mut order: Vec<(u64, Span)> = pending.iter().map(|(&id, &span)| (id, span)).collect();
    order.sort_unstable_by_key(|(_, span)| span.at);
    let mut lines = Vec::with_capacity(order.len());
    for (id, span) in &order {
        let line = usize::try_from(span.at)
            .ok()
            .and_then(|at| old.get(at..at.checked_add(span.len)?))
            .filter(|line| line.ends_with(b"\n"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("entry {id} is not where the journal wrote it"),
                )
            })?;
        lines.push(line);
    }
    let (file, spans) = rewrite(path, lines.into_iter())?;
    let end = spans.last().map_or(0, |s| s.at + s.len as u64);
    for ((id, _), span) in order.into_iter().zip(spans) {
        pending.insert(id, span);
    }
    Ok((file, end))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let ids: Vec<u64> = (0..6000)
                .map(|k| {
                    j.enqueue("r", 0, &notification(&format!("g{k}")))
                        .expect("enqueue")
                })
                .collect();
            let done: Vec<u64> = ids
                .iter()
                .enumerate()
                .filter(|(k, _)| !keep.contains(k))
                .map(|(_, id)| *id)
                .collect();
            // 6 000 enqueue lines and 5 998 done lines: past the slack.
            j.done_many(&done);
            assert_eq!(j.pending(), 2);
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(text.lines().count(), 2, "compacted to the pending lines");
            // Appending after the compaction still lands in the journal.
            j.enqueue("r", 1, &notification("after")).expect("after");
            // A second compaction finds the survivors of the first where
            // that one put them.
            let more: Vec<u64> = (0..6000)
                .map(|k| {
                    j.enqueue("r", 0, &notification(&format!("m{k}")))
                        .expect("enqueue")
                })
                .collect();
            j.done_many(&more);
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
