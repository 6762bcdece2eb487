//! Secondary suppression for published counts that add up to a total.
//!
//! Hiding a group of fewer than `min_group_size` people is not enough when
//! the groups add up to a total shown elsewhere: the one hidden group is
//! the total minus the groups shown, and several small hidden groups are
//! one small group together. [`complements`] picks the shown groups to hide
//! as well. (The fairness audit has relations between dimensions to
//! protect, and its own solver in `fairness::suppress`.)

/// Which shown members of a family to hide as well: the smallest, one at a
/// time, while the hidden members hold some but fewer than `min` people
/// together (one hidden member always counts as too few: its size is the
/// total minus the rest). `hidden` marks the members already hidden,
/// `sizes` their people; returns the members to hide now.
pub fn complements(hidden: &[bool], sizes: &[u64], min: u64) -> Vec<bool> {
    let mut now = vec![false; hidden.len()];
    loop {
        let (count, total) = hidden
            .iter()
            .zip(&now)
            .zip(sizes)
            .filter(|((h, n), _)| **h || **n)
            .fold((0, 0), |(c, t), (_, s)| (c + 1, t + s));
        if count == 0 || (count >= 2 && total >= min) {
            return now;
        }
        let smallest = (0..hidden.len())
            .filter(|&i| !hidden[i] && !now[i] && sizes[i] > 0)
            .min_by_key(|&i| sizes[i]);
        match smallest {
            Some(i) => now[i] = true,
            None => return now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_are_hidden_until_the_hidden_are_not_few() {
        // one hidden: the smallest shown joins it
        assert_eq!(
            complements(&[true, false, false], &[3, 50, 12], 10),
            vec![false, false, true]
        );
        // two hidden holding 13 together: enough
        assert_eq!(
            complements(&[true, true, false], &[6, 7, 40], 10),
            vec![false; 3]
        );
        // two hidden holding 5: the smallest shown joins them
        assert_eq!(
            complements(&[true, true, false, false], &[2, 3, 40, 30], 10),
            vec![false, false, false, true]
        );
        // nothing hidden, nothing to protect
        assert_eq!(complements(&[false, false], &[1, 2], 10), vec![false; 2]);
    }
}
