//! Handing freed heap back to the OS. glibc keeps freed pages resident
//! until trimmed: after the plugins compile at start (tens of MiB of
//! compiler working memory) and after a burst of deliveries (every
//! notification allocates its payload, its journal line and its HTTP
//! request on whichever thread ran it), the heap is mostly free but still
//! counted as resident. Imports nothing from the rest of the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
