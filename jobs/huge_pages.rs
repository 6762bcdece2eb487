//! Tables looked up at random, backed by 2 MiB pages where the kernel
//! gives them.
//!
//! A million customers' pseudonym cache is 96 MiB of 4 KiB pages: 24,576
//! pages, ten times what the CPU's TLB maps, so nearly every lookup walks
//! the page tables as well as missing the cache. Linux backs anonymous
//! memory with huge pages only where asked (`transparent_hugepage` set to
//! `madvise`, the common default), so such a table asks, before its pages
//! are first touched.

/// Pages of this size and alignment are what the kernel can back with
/// one huge page.
const HUGE_PAGE: usize = 2 << 20;

/// A vector of `n` copies of `fill` whose whole 2 MiB stretches are asked
/// to be backed by huge pages (smaller vectors are made as `vec!` makes
/// them). The request is advice: refused or unsupported, the vector is
/// the same, on small pages. Only memory not yet touched can be given huge
/// pages: glibc maps each allocation past its threshold (32 MiB, as
/// `memory::tune_allocator` sets it) afresh, so the large tables this is
/// for qualify, while a smaller one may reuse heap pages touched before.
pub fn filled_vec<T: Clone>(n: usize, fill: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise(v.spare_capacity_mut());
    v.resize(n, fill);
    v
}

/// Asks for huge pages under the whole 2 MiB stretches of `memory`, which
/// nothing has written yet (a page already touched stays small).
fn advise<T>(memory: &mut [std::mem::MaybeUninit<T>]) {
    let start = memory.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the range lies within `memory`, an allocation this process
    // owns; MADV_HUGEPAGE changes how its pages are backed, never their
    // contents, and fails harmlessly where huge pages are off.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own account: `AnonHugePages` of `/proc/self/smaps`
    /// for the mapping that holds the vector, where the machine backs
    /// advised memory with huge pages (`[madvise]` or `[always]` in
    /// `/sys/kernel/mm/transparent_hugepage/enabled`).
    #[test]
    fn a_large_table_is_on_huge_pages_where_the_kernel_gives_them() {
        // past glibc's largest threshold for mapping an allocation of its
        // own (32 MiB): smaller ones may reuse heap pages touched before
        let v = filled_vec(64 << 20, 7u8);
        assert_eq!(v.len(), 64 << 20);
        assert!(v.iter().all(|&b| b == 7));
        let small = filled_vec(10, (1u128, 2u32));
        assert_eq!(small, vec![(1, 2); 10]);
        let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        let Ok(enabled) = enabled else {
            return; // not Linux, or no huge pages in this kernel
        };
        if enabled.contains("[never]") {
            return;
        }
        // advice splits the mapping: the vector's unaligned head and tail
        // are mappings of their own, so every one it overlaps is counted
        let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len());
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("Linux has smaps");
        let mut huge_kb = 0;
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or_default();
            if let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo < end && start < hi;
                continue;
            }
            if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
                huge_kb += kb
                    .trim()
                    .trim_end_matches(" kB")
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
        // 64 MiB holds at least 31 whole aligned 2 MiB stretches; the
        // kernel may fall back to small pages when memory is fragmented,
        // so at least one of them
        assert!(huge_kb >= 2048, "AnonHugePages {huge_kb} kB");
    }
}
