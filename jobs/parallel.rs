//! One map over scoped threads, for the jobs' CPU-bound loops over
//! independent items (the value job's likelihood chunks, the empathy job's
//! tickets and cells, the fairness audit's units).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Maps `f` over `items` on `threads` scoped threads; results in item order.
///
/// Each thread takes the next item not yet taken, so one large item (the
/// whole-business cell of two million contacts) does not leave the other
/// threads idle behind a fixed share.
pub fn map<I: Sync, T: Send, F: Fn(&I) -> T + Sync>(items: &[I], threads: usize, f: &F) -> Vec<T> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let value = f(item);
                    slots.lock().expect("no worker panicked holding the slots")[i] = Some(value);
                }
            });
        }
    });
    slots
        .into_inner()
        .expect("the workers are done")
        .into_iter()
        .map(|v| v.expect("every item was mapped"))
        .collect()
}

/// The number of threads to use: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_item_order_whatever_the_threads() {
        // uneven work: item i spins i² steps, so threads finish out of order
        let items: Vec<u64> = (0..200).collect();
        let f = |&i: &u64| (0..i * i).fold(i, |a, k| a.wrapping_mul(31).wrapping_add(k));
        let serial: Vec<u64> = items.iter().map(f).collect();
        for threads in [1, 2, 3, 8, 500] {
            assert_eq!(map(&items, threads, &f), serial, "{threads} threads");
        }
        assert!(map(&[] as &[u64], 4, &f).is_empty());
    }
}
