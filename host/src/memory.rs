//! The allocator, its settings, and handing freed heap back to the OS.
//! Every Klaxon binary allocates with mimalloc (declared here): per-thread
//! heaps with no lock on the common path, where glibc's two arenas made
//! the delivery path's threads wait on each other (measured in
//! BENCHMARKS.md, "Alertmanager replacement"). Freed pages go back to the
//! OS at once (see [`configure_allocator`]); after the plugins compile at
//! start and after a burst of deliveries the host also asks mimalloc to
//! collect what its heaps hold. Imports nothing from the rest of the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit`, `mi_option_purge_delay` and
/// `mi_option_allow_thp`: their places in mimalloc v3's `mi_option_e` (the
/// bindings do not name them; a test checks the enum's length the bindings
/// know).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Sets mimalloc up for a long-running server that gives memory back:
/// arenas committed as they are used rather than up front (10 MiB less at
/// rest), freed pages purged at once rather than 10 ms later by whichever
/// thread next allocates (an idle thread never does: 63-132 MiB instead of
/// 48-49 MiB right after the ingestion comparison's text import, and it
/// stays; a later 100 ms delay with a purge thread made no measurable
/// difference to the delivery path's CPU in ten alternating rounds, see
/// BENCHMARKS.md), and no transparent huge pages (with them it purges in
/// 2 MiB units).
/// Runs from the executable's constructors, before `main` and before the
/// first allocation reserves an arena; `MIMALLOC_*` environment variables
/// still override it.
extern "C" fn configure_allocator() {
    // SAFETY: sets options before any allocation depends on them; options
    // are plain integers mimalloc reads on its slow paths.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ALLOW_THP, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

/// Purges the allocator's freed memory now, returning its pages to the OS.
/// Takes a few milliseconds at most: call from a blocking thread when
/// serving.
pub fn release_freed_memory() {
    // SAFETY: mi_collect only frees and purges memory no allocation uses;
    // it has no preconditions.
    unsafe {
        libmimalloc_sys::mi_collect(true);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_set_before_main() {
        // The indices were counted in the v3 header whose enum has 47
        // options; a mimalloc that adds or moves options fails here.
        assert_eq!(libmimalloc_sys::_mi_option_last, 47);
        for option in [
            MI_OPTION_ARENA_EAGER_COMMIT,
            MI_OPTION_PURGE_DELAY,
            MI_OPTION_ALLOW_THP,
        ] {
            // SAFETY: reads an option.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(option) }, 0);
        }
        release_freed_memory();
    }
}
