//! Delivery lanes: the threads notifications are delivered on. A lane is
//! one OS thread running a single-threaded tokio runtime; a delivery (its
//! plugin call, the plugin's HTTP requests over the lane's own connection
//! pool, its retries) runs on one lane from start to end, and the
//! integration workers hand deliveries out to the lanes in turn.
//!
//! Why not the server's multi-threaded runtime: there a delivery's wake-ups
//! (each response, each connection task) move it between worker threads,
//! and on a small machine each move costs more than the work it resumes.
//! With two lanes on two cores the Alertmanager comparison spends about a
//! ninth less CPU per notification and delivers about a fifth more per
//! second than with deliveries on the server's runtime (BENCHMARKS.md). Lanes share nothing per delivery but the integration's
//! queue, which hands out whole batches.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The most lanes the default picks (one per core up to this).
const MAX_DEFAULT_LANES: usize = 8;

/// How many lanes `notify.delivery_threads` unset means: one per core, at
/// most [`MAX_DEFAULT_LANES`].
pub fn default_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_DEFAULT_LANES)
}

/// The lanes of one notifier generation; dropping them stops their threads
/// (deliveries still on them are dropped: the integration workers, which
/// own them, are stopped first).
pub struct Lanes {
    lanes: Vec<Lane>,
    next: AtomicUsize,
}

struct Lane {
    handle: Handle,
    /// Dropped to stop the thread.
    _stop: oneshot::Sender<()>,
}

impl Lanes {
    /// Starts `count` lanes; none (deliveries then run on the caller's
    /// runtime) for 0.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let lanes = (0..count).map(start_lane).collect::<std::io::Result<_>>()?;
        Ok(Self {
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// How many lanes there are.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// The runtime of lane `i`.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.lanes[i].handle
    }

    /// The next lane in turn (`None` without lanes).
    pub fn next(&self) -> Option<usize> {
        match self.lanes.len() {
            0 => None,
            n => Some(self.next.fetch_add(1, Ordering::Relaxed) % n),
        }
    }
}

/// Starts lane `i`'s thread and returns once it runs (named, its runtime
/// built).
fn start_lane(i: usize) -> std::io::Result<Lane> {
    let (started, handle) = std::sync::mpsc::channel::<std::io::Result<Handle>>();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        // Short enough for the kernel's 15-byte thread name (`top`, `ps`).
        .name(format!("klaxon-lane-{i}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            };
            let _ = started.send(Ok(runtime.handle().clone()));
            // Runs the lane's tasks until the lanes are dropped; the
            // runtime, dropped here, drops whatever is left on it.
            let _ = runtime.block_on(stopped);
        })?;
    let handle = handle
        .recv()
        .map_err(|_| std::io::Error::other("a delivery lane's thread ended at start"))??;
    Ok(Lane {
        handle,
        _stop: stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_lane_and_lanes_take_turns() {
        let lanes = Lanes::start(2).expect("lanes");
        assert_eq!(lanes.len(), 2);
        let picked: Vec<usize> = (0..4).filter_map(|_| lanes.next()).collect();
        assert_eq!(picked, vec![0, 1, 0, 1]);
        for i in 0..2 {
            let (tx, rx) = std::sync::mpsc::channel();
            lanes.handle(i).spawn(async move {
                let name = std::thread::current().name().map(str::to_string);
                let _ = tx.send(name);
            });
            let name = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the lane runs its task");
            assert_eq!(name.as_deref(), Some(format!("klaxon-lane-{i}").as_str()));
        }
    }

    #[test]
    fn no_lanes_pick_none() {
        let lanes = Lanes::start(0).expect("lanes");
        assert_eq!(lanes.len(), 0);
        assert_eq!(lanes.next(), None);
    }

    #[test]
    fn dropping_the_lanes_stops_their_threads() {
        let lanes = Lanes::start(1).expect("lanes");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A task that never finishes holds `tx` until its runtime drops it.
        lanes.handle(0).spawn(async move {
            let _held = tx;
            std::future::pending::<()>().await;
        });
        drop(lanes);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
