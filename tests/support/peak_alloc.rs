//! A counting global allocator for the tests that bound what one piece of code holds at its
//! peak (`tests/wire_alloc.rs`, `tests/restore_memory.rs`). Each such test is its own
//! integration-test binary, since the allocator sees every allocation of the binary, and
//! declares it with `#[global_allocator] static ALLOCATOR: PeakCounting = PeakCounting;`.
//! Counting is per thread, so the harness's other threads do not disturb a measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct PeakCounting;

thread_local! {
    /// Live bytes allocated by this thread, and the most since the last [`peak`] began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(bytes: isize) {
    // `try_with`: allocations during thread teardown must not touch a destroyed slot.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the moment both blocks may be held: the new one before the old is freed.
        record(new_size as isize);
        record(-(layout.size() as isize));
        System.realloc(ptr, layout, new_size)
    }
}

/// What `run` returns, the peak heap above the start it reached on this thread, and the heap
/// it still held at its end.
pub fn peak<T>(run: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let value = run();
    let peak = PEAK.with(Cell::get) - start;
    let held = LIVE.with(Cell::get) - start;
    (value, peak.max(0) as usize, held.max(0) as usize)
}
