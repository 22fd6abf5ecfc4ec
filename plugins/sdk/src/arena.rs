//! The component's allocator: a bump arena that never gives memory back.
//!
//! The host runs every call in a fresh instance and discards its linear memory afterwards, so
//! bookkeeping that makes freed blocks reusable is wasted work: in the benchmark, the guest's
//! `malloc`/`free` were a tenth of a whole `plan` call. Here an allocation is an aligned pointer
//! bump; freeing or growing the most recent block (a `Vec` being pushed to, a temporary string)
//! works in place; anything else stays allocated until the call ends. A policy that churns
//! through more than the host's per-call memory cap fails with `POLICY_FAULT`; such a plugin can
//! turn the `arena` feature off and get the standard allocator back.
//!
//! The arena starts in the free part of the initial memory (`__heap_base..__heap_end`), the
//! region wasi-libc's `malloc` would otherwise use: a plugin that links C code calling `malloc`
//! must turn the feature off too.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ptr::null_mut;

/// WebAssembly's page size: the unit `memory.grow` works in.
const PAGE: usize = 64 << 10;

/// Free space between `next` and `end`, in the linear memory's address space.
struct Arena {
    next: Cell<usize>,
    end: Cell<usize>,
    /// Whether `next..end` has been pointed at the initial memory's free part yet.
    started: Cell<bool>,
}

// SAFETY: the module is only built without the `atomics` target feature (see lib.rs), i.e. for a
// single-threaded component; nothing is ever shared across threads.
unsafe impl Sync for Arena {}

#[global_allocator]
static ARENA: Arena = Arena {
    next: Cell::new(0),
    end: Cell::new(0),
    started: Cell::new(false),
};

unsafe extern "C" {
    /// Where the linker put the end of static data and stack: the start of free memory.
    static __heap_base: u8;
    /// The end of the memory the module starts with.
    static __heap_end: u8;
}

impl Arena {
    /// Carves `layout` out of the free space, if it fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = self.next.get().checked_next_multiple_of(layout.align())?;
        let end = start.checked_add(layout.size())?;
        if start == 0 || end > self.end.get() {
            return None;
        }
        self.next.set(end);
        Some(start as *mut u8)
    }

    /// Whether `ptr` is the most recent allocation, i.e. ends where the free space begins.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.next.get()
    }

    /// Grows linear memory by enough pages for `bytes`; false if the host refuses (the memory
    /// cap) or the address space is exhausted.
    fn grow(&self, bytes: usize) -> bool {
        let pages = bytes.div_ceil(PAGE);
        let old = core::arch::wasm32::memory_grow(0, pages);
        if old == usize::MAX {
            return false;
        }
        let (Some(base), Some(len)) = (old.checked_mul(PAGE), pages.checked_mul(PAGE)) else {
            return false;
        };
        let Some(end) = base.checked_add(len) else {
            return false;
        };
        // New pages continue the free space unless something else grew memory meanwhile.
        if base != self.end.get() {
            self.next.set(base);
        }
        self.end.set(end);
        true
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.started.get() {
            // First allocation: use the free part of the initial memory before growing it.
            self.started.set(true);
            self.next.set(&raw const __heap_base as usize);
            self.end.set(&raw const __heap_end as usize);
        }
        if let Some(ptr) = self.bump(layout) {
            return ptr;
        }
        match layout.size().checked_add(layout.align()) {
            Some(bytes) if self.grow(bytes) => self.bump(layout).unwrap_or(null_mut()),
            _ => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_last(ptr, layout.size()) {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.is_last(ptr, layout.size())
            && let Some(end) = (ptr as usize).checked_add(new_size)
        {
            // The most recent block (a growing `Vec`) grows in place, memory permitting.
            let end_before = self.end.get();
            if end <= end_before
                || (self.grow(end - end_before)
                    && self.end.get() >= end
                    && self.next.get() == ptr as usize + layout.size())
            {
                self.next.set(end);
                return ptr;
            }
        }
        // SAFETY: the caller's contract for `realloc` (a valid layout, `ptr` from this
        // allocator) is the one `alloc` and `copy_nonoverlapping` need.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
