//! Peak memory of one job, not only of the process.
//!
//! The kernel keeps one high-water mark per process (`VmHWM`), which only
//! rises: read when a job ends it includes every job before it. Resetting
//! it (`/proc/self/clear_refs`) would make it per job, but would also lose
//! the process's true peak that `time -v`, cgroups and the benchmark report.
//! So a background thread samples, every 20 ms, the resident set (`VmRSS`)
//! and the heap bytes in use ([`crate::heap`]), and keeps, for every open
//! window, the highest of each since it opened. The resident set can miss
//! a spike shorter than the interval; the heap's peak cannot (the
//! allocator keeps it between samples). Windows may overlap (a nightly runs
//! independent jobs at once): each then sees the whole process, the other
//! job's memory included. The resident set is known on Linux only
//! (`None` elsewhere).
//!
//! The heap in use is the job's own figure. The resident set also holds
//! what earlier jobs freed and glibc keeps for reuse: until session 61 a
//! window's opening handed that back (`malloc_trim`) so that the resident
//! set was the job's own, and every job then faulted its memory in again
//! (tests/bench/HISTORY.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// The peaks of one window, in bytes.
#[derive(Debug, Default)]
struct Peaks {
    resident: AtomicU64,
    in_use: AtomicU64,
}

/// The peaks of every open window.
static WINDOWS: Mutex<Vec<Arc<Peaks>>> = Mutex::new(Vec::new());
static SAMPLER: Once = Once::new();
const INTERVAL: Duration = Duration::from_millis(20);

/// A job's memory window, opened when the job starts and closed when dropped.
#[derive(Debug)]
pub struct Window {
    peaks: Arc<Peaks>,
}

fn open_windows() -> std::sync::MutexGuard<'static, Vec<Arc<Peaks>>> {
    WINDOWS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Folds the process's memory now, and the heap's peak since the last
/// sample, into every open window.
fn sample(windows: &[Arc<Peaks>]) {
    let resident = resident_bytes();
    let in_use = crate::heap::take_peak();
    for w in windows {
        if let Some(rss) = resident {
            w.resident.fetch_max(rss, Ordering::Relaxed);
        }
        w.in_use.fetch_max(in_use, Ordering::Relaxed);
    }
}

/// Opens a window: its peaks start from the process's memory now.
pub fn open_window() -> Window {
    // The heap's peak since the last sample goes to the windows already
    // open: it may be the job that just ended.
    sample(&open_windows());
    let peaks = Arc::new(Peaks {
        resident: AtomicU64::new(resident_bytes().unwrap_or(0)),
        in_use: AtomicU64::new(crate::heap::in_use_bytes()),
    });
    open_windows().push(peaks.clone());
    SAMPLER.call_once(|| {
        // A detached thread for the life of the process; if it cannot be
        // started, peaks are read at the window's end only.
        let _ = std::thread::Builder::new()
            .name("attune-memory-sampler".into())
            .spawn(|| {
                loop {
                    sample(&open_windows());
                    std::thread::sleep(INTERVAL);
                }
            });
    });
    Window { peaks }
}

impl Window {
    /// The highest resident set size since the window opened; `None` where
    /// the resident set is not known.
    pub fn peak(&self) -> Option<u64> {
        resident_bytes()?;
        sample(&open_windows());
        Some(self.peaks.resident.load(Ordering::Relaxed))
    }

    /// The most heap bytes in use since the window opened.
    pub fn peak_in_use(&self) -> u64 {
        sample(&open_windows());
        self.peaks.in_use.load(Ordering::Relaxed)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        open_windows().retain(|w| !Arc::ptr_eq(w, &self.peaks));
    }
}

/// How the attune binary sets glibc's allocator up, before any thread
/// starts: one arena per core instead of eight per core, blocks up to 32 MiB
/// from the arenas instead of fresh `mmap`s, and no trimming: what one
/// job frees, the next reuses. DataFusion's worker and blocking
/// threads each got an arena of their own: memory one of them freed stayed
/// resident for it alone, and batches of a few MiB were mapped, faulted in
/// page by page, zeroed and unmapped again (page faults were 11% of an
/// incremental night's CPU at a million customers). Measured over that
/// night: the peak fell from 2.65–2.89 GB to 1.94–2.11 GB in the same
/// time (tests/bench/HISTORY.md, session 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorSetup {
    pub arena_max: i32,
    pub mmap_threshold: i32,
    pub trim_threshold: i32,
}

/// glibc's ceiling for the mmap threshold on 64-bit targets (a larger
/// value is refused).
const MMAP_THRESHOLD_MAX: i32 = 32 << 20;

/// The setup for `cores` cores, or `None` when the environment already
/// tunes glibc's allocator (`GLIBC_TUNABLES`, `MALLOC_ARENA_MAX`, …): an
/// operator's own settings win.
pub fn allocator_setup(
    cores: usize,
    env: impl IntoIterator<Item = (String, String)>,
) -> Option<AllocatorSetup> {
    let tuned = env.into_iter().any(|(k, v)| {
        (k == "GLIBC_TUNABLES" && v.contains("glibc.malloc.")) || k.starts_with("MALLOC_")
    });
    (!tuned).then(|| AllocatorSetup {
        arena_max: i32::try_from(cores.max(1)).unwrap_or(i32::MAX),
        mmap_threshold: MMAP_THRESHOLD_MAX,
        trim_threshold: i32::MAX,
    })
}

/// Applies [`allocator_setup`] for this machine; returns what it applied.
/// Call first thing in `main`, before any thread: arenas are made as
/// threads first allocate. Elsewhere than glibc it does nothing.
pub fn tune_allocator() -> Option<AllocatorSetup> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // vars_os: `vars` panics on a variable that is not UTF-8
        let env = std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        });
        let setup = allocator_setup(cores, env)?;
        // SAFETY: mallopt only sets glibc's allocator parameters; called
        // before other threads exist, each value within glibc's range.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, setup.arena_max);
            libc::mallopt(libc::M_MMAP_THRESHOLD, setup.mmap_threshold);
            libc::mallopt(libc::M_TRIM_THRESHOLD, setup.trim_threshold);
        }
        Some(setup)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Current resident set size (Linux `VmRSS`), from `/proc/self/statm`:
/// the same counters as `status`'s `VmRSS`, without the dozens of other
/// fields the kernel formats into `status` on every read (sampled every
/// [`INTERVAL`], `status` was 1.6% of a job's CPU in `perf`).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn page_size() -> u64 {
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own `VmRSS` line of `/proc/self/status` is the
    /// reference; read just before and after, the two agree within what
    /// the process allocated in between.
    #[test]
    fn resident_bytes_are_the_vm_rss_of_proc_status() {
        let vm_rss = || -> Option<u64> {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
        };
        let Some(before) = vm_rss() else {
            eprintln!("note: no /proc/self/status here; nothing to compare");
            return;
        };
        let ours = resident_bytes().expect("statm where status exists");
        let after = vm_rss().expect("status");
        let slack = 8 << 20;
        assert!(
            ours + slack >= before.min(after) && ours <= before.max(after) + slack,
            "statm {ours} against VmRSS {before}..{after}"
        );
    }

    /// 64 MiB touched page by page, so all of it is resident.
    fn resident_block() -> Vec<u8> {
        let mut block = vec![0u8; 64 << 20];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        block
    }

    #[test]
    fn a_window_sees_an_allocation_made_and_freed_inside_it() {
        let _serial = crate::heap::serial_for_tests();
        let window = open_window();
        let resident = resident_bytes();
        let in_use = crate::heap::in_use_bytes();
        // 64 MiB held for several sampling intervals, then freed: the
        // window's peaks keep it, the current figures do not.
        let block = resident_block();
        std::thread::sleep(INTERVAL * 5);
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        drop(block);
        let peak = window.peak_in_use();
        assert!(
            peak >= in_use + (48 << 20),
            "heap peak {peak} should be ≥ {in_use} + 48 MiB"
        );
        let Some(before) = resident else {
            eprintln!("note: no /proc/self/statm here; no resident set to measure");
            return;
        };
        let peak = window.peak().expect("peak");
        assert!(
            peak >= before + (48 << 20),
            "peak {peak} should be ≥ {before} + 48 MiB"
        );
    }

    /// `bytes` allocated and freed at once, far faster than the sampling
    /// interval.
    fn heap_spike(bytes: usize) {
        let mut block = vec![0u8; bytes];
        block[0] = 1;
        assert_eq!(std::hint::black_box(&block)[0], 1);
    }

    #[test]
    fn a_window_sees_a_heap_spike_between_two_samples() {
        let _serial = crate::heap::serial_for_tests();
        // Made and freed far faster than the sampling interval: the heap's
        // peak still has it (the resident set may not).
        let window = open_window();
        let in_use = crate::heap::in_use_bytes();
        heap_spike(128 << 20);
        let peak = window.peak_in_use();
        assert!(
            peak >= in_use + (96 << 20),
            "heap peak {peak} should be ≥ {in_use} + 96 MiB"
        );
    }

    #[test]
    fn a_window_does_not_inherit_a_heap_spike_from_before_it_opened() {
        let _serial = crate::heap::serial_for_tests();
        let in_use = crate::heap::in_use_bytes();
        heap_spike(256 << 20);
        // opened within the sampling interval after the spike
        let window = open_window();
        let peak = window.peak_in_use();
        assert!(
            peak < in_use + (128 << 20),
            "heap peak {peak} should not hold the 256 MiB freed before the window ({in_use} in use)"
        );
    }

    #[test]
    fn overlapping_windows_each_keep_their_own_peak_and_close_when_dropped() {
        let _serial = crate::heap::serial_for_tests();
        let first = open_window();
        let block = resident_block();
        // read through the window while the block is held
        let with_block = first.peak_in_use();
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        drop(block);
        // A second window starts from the process without the block and
        // must not lower the first one's peak.
        let second = open_window();
        let sampled = second.peaks.clone();
        std::thread::sleep(INTERVAL * 3);
        assert!(second.peak_in_use() > 0);
        let a = first.peak_in_use();
        assert!(
            a >= with_block,
            "first window's peak {a} lost the block ({with_block})"
        );
        drop(second);
        assert!(
            !open_windows().iter().any(|w| Arc::ptr_eq(w, &sampled)),
            "a dropped window is no longer sampled"
        );
    }

    #[test]
    fn the_allocator_gets_one_arena_per_core_unless_the_environment_tunes_it() {
        let none = Vec::<(String, String)>::new();
        let setup = allocator_setup(2, none.clone()).expect("a setup");
        assert_eq!(setup.arena_max, 2);
        assert_eq!(setup.mmap_threshold, 32 << 20);
        assert_eq!(setup.trim_threshold, i32::MAX);
        assert_eq!(allocator_setup(0, none).expect("a setup").arena_max, 1);
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(allocator_setup(2, env("MALLOC_ARENA_MAX", "4")), None);
        assert_eq!(
            allocator_setup(2, env("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")),
            None
        );
        // tunables of other parts of glibc leave the allocator to attune
        assert!(allocator_setup(2, env("GLIBC_TUNABLES", "glibc.rtld.nns=2")).is_some());
    }
}
