//! Heap bytes in use, counted by the process's global allocator.
//!
//! A job's resident set is not its own memory: glibc keeps what earlier
//! jobs freed for reuse, and handing it back between jobs (`malloc_trim`)
//! made every job fault its memory in again, zeroed page by page (1.0M of
//! an incremental night's 2.2M page faults, about 2.5 system CPU-seconds;
//! tests/bench/HISTORY.md, session 61). So the allocator counts instead:
//! the bytes Rust code has allocated and not yet freed, whichever allocator
//! holds them and however much of them is resident. [`crate::memory`]
//! keeps each job's peak of it.
//!
//! Counted per thread (with glibc) and added to the process's total once a
//! thread's change passes [`FLUSH`]: about 85M allocations and as many frees a
//! night, and an atomic add on one shared counter for each would bounce
//! that counter's cache line between the cores. The total is therefore off
//! by at most [`FLUSH`] per live thread; a thread's remainder is added when
//! it exits. Memory that C code allocates itself (zstd's contexts) and
//! mapped files are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// The allocator of every attune binary and test: the system's, counted.
#[global_allocator]
static COUNTED: Counted = Counted;

/// A thread's change of its bytes in use that goes to the total at once.
pub const FLUSH: i64 = 256 << 10;

/// Bytes in use, as of the last change each thread passed on.
static IN_USE: AtomicI64 = AtomicI64::new(0);
/// The highest [`IN_USE`] since [`take_peak`] last read it.
static PEAK: AtomicI64 = AtomicI64::new(0);

/// A thread's change not yet added to [`IN_USE`]; added when the thread
/// exits, so that memory a finished thread left allocated (or freed) is
/// not lost from the total.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
struct Pending(Cell<i64>);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
impl Drop for Pending {
    fn drop(&mut self) {
        add(self.0.replace(0));
    }
}

// With glibc, std registers a thread-local's destructor through glibc's
// `__cxa_thread_atexit_impl`, which allocates with glibc's own calloc.
// Elsewhere std keeps the destructors in a list of its own, which the
// global allocator may not use (std aborts): there every change goes to
// the total at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
thread_local! {
    static PENDING: Pending = const { Pending(Cell::new(0)) };
}

fn add(delta: i64) {
    if delta == 0 {
        return;
    }
    let now = IN_USE.fetch_add(delta, Ordering::Relaxed) + delta;
    if delta > 0 {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn record(delta: i64) {
    add(delta);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn record(delta: i64) {
    // After the thread's storage is gone (its last frees, while it
    // exits) the change goes to the total directly.
    let kept = PENDING.try_with(|p| {
        let v = p.0.get() + delta;
        if v.abs() >= FLUSH {
            p.0.set(0);
            add(v);
        } else {
            p.0.set(v);
        }
    });
    if kept.is_err() {
        add(delta);
    }
}

/// [`System`], with every change of the bytes in use recorded.
pub struct Counted;

// SAFETY: every call is passed to `System` unchanged; recording a size
// neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Bytes in use now (within [`FLUSH`] per thread).
pub fn in_use_bytes() -> u64 {
    IN_USE.load(Ordering::Relaxed).max(0) as u64
}

/// The most bytes in use since the last call (or since the process
/// started), at least those in use now; the next call counts from now.
pub fn take_peak() -> u64 {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.swap(now, Ordering::Relaxed).max(now).max(0) as u64
}

/// Tests that measure the total run one at a time under this lock: one
/// of them takes the total down to 0 for a moment.
#[cfg(test)]
pub(crate) fn serial_for_tests() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference is what the test itself allocates: other tests of the
    /// binary allocate and free at the same time, so each check allows
    /// their traffic as slack and looks for a block far larger than it.
    const BLOCK: usize = 256 << 20;
    const SLACK: u64 = 64 << 20;

    #[test]
    fn a_block_is_counted_while_held_and_not_after() {
        let _serial = serial_for_tests();
        let before = in_use_bytes();
        let block = vec![1u8; BLOCK];
        let held = in_use_bytes();
        assert!(
            held + SLACK >= before + BLOCK as u64,
            "{held} in use with the block, {before} before it"
        );
        drop(block);
        let after = in_use_bytes();
        assert!(
            after < held.saturating_sub(BLOCK as u64) + SLACK,
            "{after} in use after freeing, {held} with the block"
        );
    }

    #[test]
    fn the_peak_keeps_a_block_freed_before_it_is_read() {
        let _serial = serial_for_tests();
        take_peak();
        let before = in_use_bytes();
        let mut grown = Vec::<u8>::with_capacity(1 << 20);
        // grown by realloc, freed before the read
        grown.resize(BLOCK, 1);
        drop(grown);
        let peak = take_peak();
        assert!(
            peak + SLACK >= before + BLOCK as u64,
            "peak {peak}, {before} in use before the block"
        );
        // the next period starts at what is in use now
        assert!(take_peak() < peak);
    }

    #[test]
    fn counts_made_on_other_threads_reach_the_total() {
        let _serial = serial_for_tests();
        // 16 KiB at a time, below FLUSH: the thread passes its counts on
        // every 16 blocks; 64 MiB in all, handed over and freed here.
        let before = in_use_bytes();
        let blocks: Vec<Box<[u8]>> = std::thread::spawn(|| {
            (0..4096)
                .map(|_| vec![1u8; 16 << 10].into_boxed_slice())
                .collect()
        })
        .join()
        .expect("thread");
        let made: usize = blocks.iter().map(|b| b.len()).sum();
        assert_eq!(made, 64 << 20);
        let after = in_use_bytes();
        assert!(
            after + SLACK / 2 >= before + made as u64,
            "{after} in use after the thread, {before} before"
        );
        drop(blocks);
        assert!(in_use_bytes() < after - made as u64 / 2);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_threads_remainder_is_added_when_its_storage_goes() {
        // What a thread's storage does as the thread exits, with remainders
        // far beyond the other tests' traffic: taken off first (the total
        // reads 0), then added back, so no peak sees them.
        let _serial = serial_for_tests();
        const REMAINDER: i64 = 1 << 40;
        let before = in_use_bytes();
        drop(Pending(Cell::new(-REMAINDER)));
        assert_eq!(in_use_bytes(), 0);
        drop(Pending(Cell::new(REMAINDER)));
        let after = in_use_bytes();
        assert!(
            after + SLACK >= before && after < before + SLACK,
            "{after} in use after, {before} before"
        );
    }
}
