//! Peak memory of one job, not only of the process.
//!
//! The kernel keeps one high-water mark per process (`VmHWM`), which only
//! rises: read when a job ends it includes every job before it. Resetting
//! it (`/proc/self/clear_refs`) would make it per job, but would also lose
//! the process's true peak that `time -v`, cgroups and the benchmark report.
//! So a background thread samples the resident set (`VmRSS`) every 20 ms
//! and keeps, for every open window, the highest value since it opened. A
//! spike shorter than the interval can be missed; gigabytes of allocation
//! take longer than that to fault in. Windows may overlap (a nightly runs
//! independent jobs at once): each then sees the process's resident set,
//! the other job's memory included. Linux only: elsewhere the peak is
//! unknown (`None`).
//!
//! Opening a window first hands the allocator's freed memory back to the
//! system ([`release_freed`]), so a job's peak is its own and the process's
//! peak is the largest job's, not the sum of what each left behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// The highest resident set size of every open window, in bytes.
static WINDOWS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());
static SAMPLER: Once = Once::new();
const INTERVAL: Duration = Duration::from_millis(20);

/// A job's memory window, opened when the job starts and closed when dropped.
#[derive(Debug)]
pub struct Window {
    peak: Option<Arc<AtomicU64>>,
}

fn open_windows() -> std::sync::MutexGuard<'static, Vec<Arc<AtomicU64>>> {
    WINDOWS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a window: its peak starts from the current resident set, once
/// the allocator has handed back what earlier jobs freed.
pub fn open_window() -> Window {
    release_freed();
    let Some(now) = resident_bytes() else {
        return Window { peak: None };
    };
    let peak = Arc::new(AtomicU64::new(now));
    open_windows().push(peak.clone());
    SAMPLER.call_once(|| {
        // A detached thread for the life of the process; if it cannot be
        // started, peaks are read at the window's end only.
        let _ = std::thread::Builder::new()
            .name("attune-rss-sampler".into())
            .spawn(|| {
                loop {
                    if let Some(rss) = resident_bytes() {
                        for w in open_windows().iter() {
                            w.fetch_max(rss, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(INTERVAL);
                }
            });
    });
    Window { peak: Some(peak) }
}

impl Window {
    /// The highest resident set size since the window opened.
    pub fn peak(&self) -> Option<u64> {
        let peak = self.peak.as_ref()?;
        if let Some(rss) = resident_bytes() {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
        Some(peak.load(Ordering::Relaxed))
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Some(peak) = &self.peak {
            open_windows().retain(|w| !Arc::ptr_eq(w, peak));
        }
    }
}

/// Returns memory the allocator keeps but no longer uses to the system.
/// glibc holds on to freed pages of its arenas for reuse: the jobs of a
/// nightly run one after the other in one process, and each one started on
/// top of the gigabyte or so its predecessor had freed, so the process
/// peaked at a job's own peak plus that.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How the attune binary sets glibc's allocator up, before any thread
/// starts: one arena per core instead of eight per core, blocks up to 32 MiB
/// from the arenas instead of fresh `mmap`s, and no automatic trimming
/// (between jobs [`release_freed`] trims). DataFusion's worker and blocking
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
        if resident_bytes().is_none() {
            eprintln!("note: no /proc/self/status here; nothing to measure");
            return;
        }
        let window = open_window();
        let before = resident_bytes().expect("rss");
        // 64 MiB held for several sampling intervals, then freed: the
        // window's peak keeps it, the current RSS does not.
        let block = resident_block();
        std::thread::sleep(INTERVAL * 5);
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        drop(block);
        let peak = window.peak().expect("peak");
        assert!(
            peak >= before + (48 << 20),
            "peak {peak} should be ≥ {before} + 48 MiB"
        );
    }

    #[test]
    fn overlapping_windows_each_keep_their_own_peak_and_close_when_dropped() {
        if resident_bytes().is_none() {
            eprintln!("note: no /proc/self/status here; nothing to measure");
            return;
        }
        let first = open_window();
        let block = resident_block();
        // read through the window while the block is resident
        let with_block = first.peak().expect("peak");
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        drop(block);
        // Opening a second window (which trims and starts from the RSS
        // without the block) must not lower the first one's peak.
        let second = open_window();
        let sampled = second.peak.clone().expect("a window");
        std::thread::sleep(INTERVAL * 3);
        assert!(second.peak().expect("peak") > 0);
        let a = first.peak().expect("peak");
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

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_between_live_blocks_goes_back_to_the_system() {
        // 256 MiB of 1 KiB blocks, one in 64 kept: glibc cannot shrink its
        // heap past a live block by itself, so the freed pages between
        // them stay resident until trimmed. The resident set is the whole
        // process's: a test on another thread that allocates meanwhile (or
        // takes the freed chunks of a shared arena) can hide the drop, so
        // the experiment runs up to three times and one clear drop passes.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let blocks: Vec<Box<[u8]>> = (0..256 * 1024)
                .map(|i| vec![(i % 251) as u8 + 1; 1024].into_boxed_slice())
                .collect();
            let kept: Vec<Box<[u8]>> = blocks
                .into_iter()
                .enumerate()
                .filter_map(|(i, b)| (i % 64 == 0).then_some(b))
                .collect();
            let before = resident_bytes().expect("rss");
            release_freed();
            let after = resident_bytes().expect("rss");
            assert!(kept.iter().all(|b| b[0] != 0));
            if after + (128 << 20) < before {
                return;
            }
            seen.push((before, after));
        }
        panic!("trimming should return most of the 252 MiB freed: (before, after) {seen:?}");
    }
}
