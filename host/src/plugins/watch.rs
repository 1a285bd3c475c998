//! File watching (the `notify` crate): the plugins directory, where
//! `NAME.wasm` (with optional `NAME.toml` and `NAME.wasm.sig`) is loaded
//! through the load pipeline when it appears or changes, and the config
//! file, re-read when it changes.
//!
//! Events are debounced: a name is acted on once no event touched it for
//! [`DEBOUNCE`] and its file's size and modification time stayed the same
//! over [`SETTLE`]. A writer should still write to a temporary name (a
//! leading `.` or a `.tmp` / `.part` suffix: ignored) and rename it to
//! `NAME.wasm`: the rename is atomic, so no half-written component is ever
//! offered. A half-written file that stays still long enough fails to
//! compile and is refused; the live version stays.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::PluginSource;
use super::lifecycle::{Candidate, valid_name};
use super::manifest::Manifest;

/// Quiet time after the last event before a name is acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How long a file's size and mtime must stay the same before it is read.
pub const SETTLE: Duration = Duration::from_millis(50);

/// Why a directory entry could not be offered for loading.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {reason}")]
    Watch { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: super::manifest::ManifestError,
    },
}

/// Keeps a watch alive; dropping it stops the events.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Watches `dir` (not recursively) and sends, debounced, the keys `key_of`
/// maps changed paths to.
pub fn watch_dir(
    dir: &Path,
    key_of: impl Fn(&Path) -> Option<String> + Send + 'static,
) -> Result<(FileWatch, mpsc::Receiver<BTreeSet<String>>), WatchError> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<String>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some(key) = key_of(path) {
                let _ = raw_tx.send(key);
            }
        }
    })
    .map_err(|e| WatchError::Watch {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| WatchError::Watch {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut pending = BTreeSet::from([first]);
            loop {
                match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                    Ok(Some(key)) => {
                        pending.insert(key);
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if tx.send(pending).await.is_err() {
                return;
            }
        }
    });
    Ok((FileWatch { _watcher: watcher }, rx))
}

/// The plugin name a path in the plugins directory belongs to:
/// `NAME.wasm`, `NAME.toml` and `NAME.wasm.sig`; `None` for anything else
/// (temporary names included).
pub fn plugin_name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file
        .strip_suffix(".wasm.sig")
        .or_else(|| file.strip_suffix(".wasm"))
        .or_else(|| file.strip_suffix(".toml"))?;
    valid_name(stem).then(|| stem.to_string())
}

/// The plugin names with a `NAME.wasm` in `dir`, sorted.
pub fn scan(dir: &Path) -> Result<Vec<String>, WatchError> {
    let entries = std::fs::read_dir(dir).map_err(|source| WatchError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .filter_map(|p| plugin_name_of(&p))
        .collect();
    names.sort();
    Ok(names)
}

/// Size and modification time, to tell whether a file is still being written.
fn fingerprint(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Waits until `NAME.wasm` stops changing, then reads it with its manifest
/// and signature. `Ok(None)` when there is no `NAME.wasm` (removed: the
/// loaded plugin stays; remove it with `DELETE /api/v1/plugins/NAME`).
pub async fn read_settled(dir: &Path, name: &str) -> Result<Option<Candidate>, WatchError> {
    let wasm = dir.join(format!("{name}.wasm"));
    let mut before = fingerprint(&wasm);
    loop {
        if before.is_none() {
            return Ok(None);
        }
        tokio::time::sleep(SETTLE).await;
        let after = fingerprint(&wasm);
        if after == before {
            break;
        }
        before = after;
    }
    let (dir_owned, name_owned) = (dir.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || read_candidate(&dir_owned, &name_owned))
        .await
        .map_err(|e| WatchError::Read {
            path: wasm,
            source: std::io::Error::other(e.to_string()),
        })?
        .map(Some)
}

/// Reads `NAME.wasm`, `NAME.toml` and `NAME.wasm.sig` from `dir`.
pub fn read_candidate(dir: &Path, name: &str) -> Result<Candidate, WatchError> {
    let wasm = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&wasm).map_err(|source| WatchError::Read {
        path: wasm.clone(),
        source,
    })?;
    let toml_path = dir.join(format!("{name}.toml"));
    let manifest = match std::fs::read_to_string(&toml_path) {
        Ok(text) => Some(
            Manifest::parse(&text).map_err(|source| WatchError::Manifest {
                path: toml_path.clone(),
                source,
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(WatchError::Read {
                path: toml_path,
                source,
            });
        }
    };
    let signature = read_signature(&wasm)?;
    Ok(Candidate {
        name: name.to_string(),
        bytes: bytes.into(),
        source: PluginSource::File(wasm),
        manifest,
        signature,
    })
}

/// The detached signature beside a component (`FILE.sig`), if any.
pub fn read_signature(wasm: &Path) -> Result<Option<String>, WatchError> {
    let mut sig = wasm.as_os_str().to_owned();
    sig.push(".sig");
    let sig = PathBuf::from(sig);
    match std::fs::read_to_string(&sig) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WatchError::Read { path: sig, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_plugin_files_only() {
        let n = |p: &str| plugin_name_of(Path::new(p));
        assert_eq!(n("/d/zscore.wasm").as_deref(), Some("zscore"));
        assert_eq!(n("/d/zscore.toml").as_deref(), Some("zscore"));
        assert_eq!(n("/d/zscore.wasm.sig").as_deref(), Some("zscore"));
        assert_eq!(n("/d/.zscore.wasm"), None);
        assert_eq!(n("/d/zscore.wasm.tmp"), None);
        assert_eq!(n("/d/zscore.wasm.part"), None);
        assert_eq!(n("/d/readme.md"), None);
        assert_eq!(n("/d/bad name.wasm"), None);
    }
}
