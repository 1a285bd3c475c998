//! The allocator of plugins built with the SDK (feature `allocator`, on by
//! default): a bump arena in the module's own memory, then talc.
//!
//! The host runs every call in a fresh instance whose memory is reset
//! afterwards, and most calls allocate a few hundred kilobytes at most:
//! the host lowers each string and list of the call's arguments into its
//! own allocation, and the glue and payloads make more. Such a call
//! allocates by moving a pointer, and a free only rolls the pointer back
//! when it was the last allocation (a growing buffer grows in place).
//! Once the arena is used up, allocations go to talc, which grows the
//! memory as needed and reuses what is freed: a call that allocates much
//! and frees as it goes still runs in bounded memory.
//!
//! The arena is a zeroed static, so it lies in the memory the module
//! starts with: a call that stays within it never grows its memory (after
//! such a call the host has no protections to reset; a notifier's batch
//! calls spent 2 % of Klaxon's delivery time there), and untouched arena
//! pages cost nothing.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;

/// Size of the plugins' bump arena.
pub const ARENA_BYTES: usize = 1 << 20;

#[repr(C, align(16))]
struct Arena<const N: usize>(UnsafeCell<[MaybeUninit<u8>; N]>);

/// A bump arena of `N` bytes first, then `fallback`; see the module docs.
pub struct PluginAllocator<F, const N: usize = ARENA_BYTES> {
    arena: Arena<N>,
    /// Offset of the arena's first free byte.
    top: Cell<usize>,
    fallback: F,
}

// SAFETY: single-threaded WebAssembly only, where no two threads can reach
// the allocator.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<F, const N: usize> Sync for PluginAllocator<F, N> {}

impl<F, const N: usize> PluginAllocator<F, N> {
    /// An allocator with an empty arena.
    pub const fn new(fallback: F) -> Self {
        Self {
            arena: Arena(UnsafeCell::new([MaybeUninit::uninit(); N])),
            top: Cell::new(0),
            fallback,
        }
    }

    fn base(&self) -> usize {
        self.arena.0.get() as usize
    }

    /// The arena offset of `ptr`, if it points into the arena.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base())
            .filter(|&off| off < N)
    }

    /// `layout` carved from the arena, if it still fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let start = (base + self.top.get()).checked_next_multiple_of(layout.align())? - base;
        let end = start.checked_add(layout.size())?;
        if end > N {
            return None;
        }
        self.top.set(end);
        Some((base + start) as *mut u8)
    }
}

unsafe impl<F: GlobalAlloc, const N: usize> GlobalAlloc for PluginAllocator<F, N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: the caller's contract for `alloc`, passed on.
            None => unsafe { self.fallback.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            // The last allocation gives its bytes back; others stay until
            // the instance goes.
            Some(off) => {
                if off + layout.size() == self.top.get() {
                    self.top.set(off);
                }
            }
            // SAFETY: `ptr` is not the arena's, so the fallback allocated it.
            None => unsafe { self.fallback.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(off) = self.offset(ptr) else {
            // SAFETY: `ptr` is not the arena's, so the fallback allocated it.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        };
        let last = off + layout.size() == self.top.get();
        if last && off + new_size <= N {
            self.top.set(off + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `new_size` is non-zero and, rounded up to the alignment,
        // does not overflow (the caller's contract for `realloc`).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid non-zero layout, as above.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least
            // `layout.size()` long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 256-byte arena in front of the system allocator.
    fn small() -> Box<PluginAllocator<std::alloc::System, 256>> {
        Box::new(PluginAllocator::new(std::alloc::System))
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("valid layout")
    }

    #[test]
    fn allocations_are_carved_in_order_and_aligned() {
        let a = small();
        unsafe {
            let p = a.alloc(layout(3, 1));
            let q = a.alloc(layout(8, 8));
            assert_eq!(a.offset(p), Some(0));
            assert_eq!(a.offset(q), Some(8), "rounded up to its alignment");
            assert_eq!(q as usize % 8, 0);
            let r = a.alloc(layout(16, 64));
            assert_eq!(r as usize % 64, 0);
            assert!(a.offset(r).is_some());
        }
    }

    #[test]
    fn only_the_last_allocation_gives_its_bytes_back() {
        let a = small();
        unsafe {
            let p = a.alloc(layout(32, 8));
            let q = a.alloc(layout(32, 8));
            a.dealloc(p, layout(32, 8));
            assert_eq!(a.top.get(), 64, "not the last: kept");
            a.dealloc(q, layout(32, 8));
            assert_eq!(a.top.get(), 32);
            assert_eq!(a.alloc(layout(32, 8)), q, "its bytes are reused");
        }
    }

    #[test]
    fn the_last_allocation_grows_and_shrinks_in_place() {
        let a = small();
        unsafe {
            let p = a.alloc(layout(16, 1));
            p.write_bytes(7, 16);
            let grown = a.realloc(p, layout(16, 1), 100);
            assert_eq!(grown, p);
            assert_eq!(a.top.get(), 100);
            let shrunk = a.realloc(grown, layout(100, 1), 10);
            assert_eq!(shrunk, p);
            assert_eq!(a.top.get(), 10);
            assert_eq!(*p.add(9), 7);
        }
    }

    #[test]
    fn an_earlier_allocation_moves_when_it_grows() {
        let a = small();
        unsafe {
            let p = a.alloc(layout(16, 1));
            for i in 0..16 {
                *p.add(i) = i as u8;
            }
            let _later = a.alloc(layout(16, 1));
            let moved = a.realloc(p, layout(16, 1), 32);
            assert_ne!(moved, p);
            assert_eq!(a.offset(moved), Some(32));
            assert!((0..16).all(|i| *moved.add(i) == i as u8), "contents kept");
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_fallback_and_back() {
        let a = small();
        unsafe {
            let p = a.alloc(layout(200, 8));
            assert!(a.offset(p).is_some());
            // 200 + 100 > 256: from the system allocator.
            let q = a.alloc(layout(100, 8));
            assert!(!q.is_null());
            assert!(a.offset(q).is_none());
            q.write_bytes(1, 100);
            // The last arena block outgrows the arena: it moves out, and
            // its bytes are given back.
            p.write_bytes(2, 200);
            let moved = a.realloc(p, layout(200, 8), 300);
            assert!(a.offset(moved).is_none());
            assert_eq!(*moved.add(199), 2);
            assert_eq!(a.top.get(), 0);
            let grown = a.realloc(q, layout(100, 8), 1000);
            assert_eq!(*grown.add(99), 1);
            a.dealloc(grown, layout(1000, 8));
            a.dealloc(moved, layout(300, 8));
        }
    }
}
