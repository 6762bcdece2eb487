//! Peak memory of one job, not only of the process.
//!
//! The kernel keeps one high-water mark per process (`VmHWM`), which only
//! rises: read when a job ends it includes every job before it. Resetting
//! it (`/proc/self/clear_refs`) would make it per job, but would also lose
//! the process's true peak that `time -v`, cgroups and the benchmark report.
//! So a background thread samples the resident set (`VmRSS`) every 20 ms
//! and keeps the highest value since the current job started. A spike
//! shorter than the interval can be missed; gigabytes of allocation take
//! longer than that to fault in. Jobs of a nightly run one at a time, so
//! one window at a time is all this keeps. Linux only: elsewhere the peak is
//! unknown (`None`).
//!
//! Opening a window first hands the allocator's freed memory back to the
//! system ([`release_freed`]), so a job's peak is its own and the process's
//! peak is the largest job's, not the sum of what each left behind.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Highest resident set size seen since the window opened, in bytes.
static PEAK: AtomicU64 = AtomicU64::new(0);
static SAMPLER: Once = Once::new();
const INTERVAL: Duration = Duration::from_millis(20);

/// A job's memory window, opened when the job starts.
#[derive(Debug)]
pub struct Window {
    available: bool,
}

/// Opens a window: the peak restarts from the current resident set, once
/// the allocator has handed back what earlier jobs freed.
pub fn open_window() -> Window {
    release_freed();
    let Some(now) = resident_bytes() else {
        return Window { available: false };
    };
    PEAK.store(now, Ordering::Relaxed);
    SAMPLER.call_once(|| {
        // A detached thread for the life of the process; if it cannot be
        // started, peaks are read at the window's end only.
        let _ = std::thread::Builder::new()
            .name("attune-rss-sampler".into())
            .spawn(|| {
                loop {
                    if let Some(rss) = resident_bytes() {
                        PEAK.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(INTERVAL);
                }
            });
    });
    Window { available: true }
}

impl Window {
    /// The highest resident set size since the window opened.
    pub fn peak(&self) -> Option<u64> {
        if !self.available {
            return None;
        }
        if let Some(rss) = resident_bytes() {
            PEAK.fetch_max(rss, Ordering::Relaxed);
        }
        Some(PEAK.load(Ordering::Relaxed))
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

/// Current resident set size (Linux `VmRSS`).
pub fn resident_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_sees_an_allocation_made_and_freed_inside_it() {
        if resident_bytes().is_none() {
            eprintln!("note: no /proc/self/status here; nothing to measure");
            return;
        }
        let window = open_window();
        let before = resident_bytes().expect("rss");
        // 64 MiB touched page by page, held for several sampling intervals,
        // then freed: the window's peak keeps it, the current RSS does not.
        let mut block = vec![0u8; 64 << 20];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        std::thread::sleep(INTERVAL * 5);
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        drop(block);
        let peak = window.peak().expect("peak");
        assert!(
            peak >= before + (48 << 20),
            "peak {peak} should be ≥ {before} + 48 MiB"
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_between_live_blocks_goes_back_to_the_system() {
        // 256 MiB of 1 KiB blocks, one in 64 kept: glibc cannot shrink its
        // heap past a live block by itself, so the freed pages between
        // them stay resident until trimmed.
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
        assert!(
            after + (128 << 20) < before,
            "trimming should return most of the 252 MiB freed: {before} -> {after}"
        );
    }
}
