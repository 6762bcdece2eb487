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

/// [`map`], with the costliest items (by `cost`) taken first, so that no
/// large one starts last and runs alone; results still in item order.
pub fn map_costliest_first<I: Sync, T: Send, F: Fn(&I) -> T + Sync>(
    items: &[I],
    cost: impl Fn(&I) -> usize,
    threads: usize,
    f: &F,
) -> Vec<T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&items[i])));
    let done = map(&order, threads, &|&i: &usize| f(&items[i]));
    let mut out: Vec<Option<T>> = (0..items.len()).map(|_| None).collect();
    for (i, value) in order.into_iter().zip(done) {
        out[i] = Some(value);
    }
    out.into_iter()
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

    #[test]
    fn costliest_first_still_returns_results_in_item_order() {
        let items: Vec<u64> = vec![3, 9, 1, 9, 0, 7, 2, 8, 5];
        let taken = Mutex::new(Vec::new());
        let f = |&i: &u64| {
            taken.lock().expect("taken").push(i);
            i * 10
        };
        for threads in [1, 2, 4] {
            taken.lock().expect("taken").clear();
            let got = map_costliest_first(&items, |&i| i as usize, threads, &f);
            assert_eq!(got, items.iter().map(|i| i * 10).collect::<Vec<_>>());
            if threads == 1 {
                assert_eq!(
                    *taken.lock().expect("taken"),
                    vec![9, 9, 8, 7, 5, 3, 2, 1, 0]
                );
            }
        }
        assert!(map_costliest_first(&[] as &[u64], |_| 0, 2, &f).is_empty());
    }
}
