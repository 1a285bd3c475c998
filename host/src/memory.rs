//! The allocator's settings, and handing freed heap back to the OS.
//! glibc keeps freed pages resident until trimmed: after the plugins
//! compile at start (tens of MiB of compiler working memory) and after a
//! burst of deliveries (every notification allocates its payload, its
//! journal line and its HTTP request on whichever thread ran it), the heap
//! is mostly free but still counted as resident. Imports nothing from the
//! rest of the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sets glibc's allocator up so that the memory of ingestion bursts goes
/// back to the OS: a fixed 128 KiB mmap threshold (glibc otherwise raises
/// it to the largest block freed, after which multi-MB request bodies and
/// batches land on a heap that keeps their pages), a trim threshold to
/// match, and one arena per core (at least two) where glibc allows eight
/// per core, each keeping its own freed pages. Measured in BENCHMARKS.md
/// (ingestion RSS). Call it first thing, before any thread starts; a no-op
/// outside Linux glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD_BYTES: libc::c_int = 128 << 10;
        let arenas = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 64) as libc::c_int;
        // SAFETY: mallopt only changes allocator parameters; called before
        // other threads exist, it races with no allocation.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES);
            libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD_BYTES);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Releases the free memory of every malloc arena now. Blocks for a few
/// milliseconds at most: call from a blocking thread when serving.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory of the allocator's
        // arenas; it has no preconditions and touches no live allocation.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// How long after a burst drains its heap is trimmed (bursts that follow
/// within it share the trim).
const TRIM_DELAY: Duration = Duration::from_secs(1);

/// Trims the heap [`TRIM_DELAY`] after a burst of work drained, on a
/// blocking thread; a trim already scheduled covers this call too, since
/// it runs after it. Call from a tokio runtime.
pub fn release_after_burst() {
    static SCHEDULED: AtomicBool = AtomicBool::new(false);
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DELAY).await;
        SCHEDULED.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    });
}
