//! The process's allocator: mimalloc for small blocks, the system allocator
//! (glibc) for large ones.
//!
//! A review makes many small, short-lived allocations (the parsed request,
//! the patch, the answer), which mimalloc serves faster than glibc. But a
//! large body (a 3 MB `kubectl debug` review) is one large block, and
//! mimalloc keeps the pages of freed large blocks: sixteen 3 MB reviews at
//! once peaked at about 99 MiB with mimalloc alone and 57 MiB with glibc
//! alone (BENCHMARKS.md), whose large blocks are their own mappings and go
//! back to the kernel when freed.
//!
//! Which allocator owns a block is decided by its size alone, and Rust
//! passes the size back on `dealloc` and `realloc`, so no bookkeeping is
//! needed. A block that crosses [`LARGE`] in a `realloc` moves to the other
//! allocator.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of this size and more come from the system allocator.
pub const LARGE: usize = 128 * 1024;

/// `#[global_allocator] static GLOBAL: Allocator = Allocator;` in the binary
/// (and in the benchmarks and the no-op endpoint, to measure the same).
pub struct Allocator;

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is allocated, reallocated and freed by the allocator
// that `is_large` picks for its size, which is a pure function of the size
// Rust passes to each call (the layout given back on `dealloc` and `realloc`
// is the one the block was allocated or last reallocated with).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            unsafe { System.dealloc(ptr, layout) }
        } else {
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (true, true) => unsafe { System.realloc(ptr, layout, new_size) },
            (false, false) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to
                // `layout.align()`, does not overflow `isize`.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks moved across the boundary by `realloc` keep their bytes and
    /// are freed by the allocator that now owns them.
    #[test]
    fn blocks_keep_their_bytes_across_the_boundary() {
        let a = Allocator;
        for align in [1, 8, 64, 4096] {
            unsafe {
                let small = Layout::from_size_align(1000, align).unwrap();
                let p = a.alloc(small);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                for i in 0..1000 {
                    *p.add(i) = (i % 251) as u8;
                }
                let p = a.realloc(p, small, LARGE * 3);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!((0..1000).all(|i| *p.add(i) == (i % 251) as u8));
                let large = Layout::from_size_align(LARGE * 3, align).unwrap();
                let p = a.realloc(p, large, 500);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!((0..500).all(|i| *p.add(i) == (i % 251) as u8));
                a.dealloc(p, Layout::from_size_align(500, align).unwrap());

                let z = a.alloc_zeroed(Layout::from_size_align(LARGE, align).unwrap());
                assert!((0..LARGE).all(|i| *z.add(i) == 0));
                a.dealloc(z, Layout::from_size_align(LARGE, align).unwrap());
            }
        }
    }

    /// A block grown by doubling past the boundary and shrunk back, as a
    /// vector's buffer is, keeps its last byte at each step.
    #[test]
    fn a_block_doubles_past_the_boundary_and_shrinks_back() {
        let a = Allocator;
        unsafe {
            let mut size = 16;
            let mut layout = Layout::from_size_align(size, 8).unwrap();
            let mut p = a.alloc(layout);
            while size < LARGE * 8 {
                *p.add(size - 1) = 7;
                let next = size * 2;
                p = a.realloc(p, layout, next);
                assert_eq!(*p.add(size - 1), 7);
                size = next;
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            while size > 16 {
                let next = size / 2;
                p = a.realloc(p, layout, next);
                *p.add(next - 1) = 9;
                size = next;
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            a.dealloc(p, layout);
        }
    }
}
