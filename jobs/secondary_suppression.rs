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

/// Which shown members of a family to hide as well, and whether its total
/// must go too. As [`complements`],
/// the smallest first (those whose rows are hidden already, `free`, before
/// any), but the hidden members must hold `min` *distinct* customers
/// together: `customers(positions)` gives those of some members (positions
/// in `hidden`). Members share customers (one customer calls and writes,
/// comes back next month), and two hidden groups of 6 may be the same 6
/// people, whom the total minus the groups shown would then describe. One
/// hidden member is always too few (it is the total minus the rest); when
/// it is the only member it equals the total, and the total must go
/// instead. When the total is hidden (`total_hidden`) it may still be
/// given back by another family it belongs to, and with it the hidden
/// members together: they must then hold `min` customers too (one large
/// hidden member is enough), and with none hidden the smallest goes, or the
/// total would be the sum of the members shown.
pub fn complements_by_union(
    hidden: &[bool],
    sizes: &[u64],
    free: &[bool],
    min: u64,
    total_hidden: bool,
    customers: &dyn Fn(&[usize]) -> u64,
) -> (Vec<bool>, bool) {
    let mut now = vec![false; hidden.len()];
    loop {
        let members: Vec<usize> = (0..hidden.len()).filter(|&i| hidden[i] || now[i]).collect();
        // the union is at most the sum: below `min` it need not be counted
        let sum: u64 = members.iter().map(|&i| sizes[i]).sum();
        let enough =
            (total_hidden || members.len() >= 2) && sum >= min && customers(&members) >= min;
        if (members.is_empty() && !total_hidden) || (!members.is_empty() && enough) {
            return (now, false);
        }
        let next = (0..hidden.len())
            .filter(|&i| !hidden[i] && !now[i] && sizes[i] > 0)
            .min_by_key(|&i| (!free[i], sizes[i]));
        match next {
            Some(i) => now[i] = true,
            // Every member hidden: the total minus nothing is the total,
            // which is shown anyway, unless one member is all of it.
            None => return (now, !total_hidden && members.len() == 1),
        }
    }
}

/// A total and the cells that add up to it (a week and its days; a period's
/// groups of one dimension and the period's overall cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumFamily {
    pub total: usize,
    pub members: Vec<usize>,
}

/// Hides cells (`hidden`, indexed like `sizes`) until every family is safe
/// on its own: members hidden with their total shown hold some but fewer
/// than `min` together never ([`complements`]), and a hidden total never
/// has all its members shown (it would be their sum, and with it the next
/// family's hidden member its difference) nor hidden members that hold
/// fewer than `min` together (another family may give the total back). Families overlap, so this runs
/// until nothing changes; it only ever hides more. A protection of each
/// family, not of every linear combination of them: the usual rule of
/// statistical offices for tables published with their margins.
pub fn protect_sums(sizes: &[u64], hidden: &mut [bool], families: &[SumFamily], min: u64) {
    loop {
        let mut changed = false;
        for f in families {
            let members_hidden: Vec<bool> = f.members.iter().map(|&m| hidden[m]).collect();
            let member_sizes: Vec<u64> = f.members.iter().map(|&m| sizes[m]).collect();
            let hide = if hidden[f.total] {
                // Another family may give the hidden total back, and with
                // it the hidden members together: they must not be few.
                let mut now = vec![false; f.members.len()];
                loop {
                    let held = (0..now.len()).filter(|&i| members_hidden[i] || now[i]);
                    let (count, total) =
                        held.fold((0, 0), |(c, t), i| (c + 1, t + member_sizes[i]));
                    if count > 0 && total >= min {
                        break;
                    }
                    let smallest = (0..now.len())
                        .filter(|&i| !members_hidden[i] && !now[i] && member_sizes[i] > 0)
                        .min_by_key(|&i| member_sizes[i]);
                    match smallest {
                        Some(i) => now[i] = true,
                        None => break,
                    }
                }
                now
            } else {
                complements(&members_hidden, &member_sizes, min)
            };
            for (i, h) in hide.into_iter().enumerate() {
                if h && !hidden[f.members[i]] {
                    hidden[f.members[i]] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two days of a week (cells 1, 2) and the week (0); the week is also a
    /// member of the month (3) with another week (4). Day 1 is small: day 2
    /// goes too, or the week minus it would give day 1. Then the week is
    /// shown with both its days hidden (13 together): safe.
    #[test]
    fn overlapping_sums_are_protected_together() {
        let sizes = [40, 3, 37, 100, 60];
        let families = [
            SumFamily {
                total: 0,
                members: vec![1, 2],
            },
            SumFamily {
                total: 3,
                members: vec![0, 4],
            },
        ];
        let mut hidden = [false, true, false, false, false];
        protect_sums(&sizes, &mut hidden, &families, 10);
        assert_eq!(hidden, [false, true, true, false, false]);
        // A small week (hidden) whose month is shown: the other week goes
        // too; and a hidden total whose members are all shown loses its
        // smallest member, or it would be their sum.
        // (the week's days are hidden first: the family of the week is
        // looked at before the month's, when the other week is still shown)
        let sizes = [8, 3, 5, 100, 92];
        let mut hidden = [true, true, false, false, false];
        protect_sums(&sizes, &mut hidden, &families, 10);
        assert_eq!(hidden, [true, true, true, false, true]);
        let sizes = [40, 25, 15, 100, 60];
        let mut hidden = [true, false, false, false, false];
        protect_sums(&sizes, &mut hidden, &families[..1], 10);
        assert_eq!(hidden, [true, false, true, false, false]);
    }

    /// All time (0) = January (1) + February (2) + March (3); March = its
    /// days 3, 4, 5 and 12 (4–7). February (4 answers) and March 12 (2) are
    /// small; March is hidden beside February. Were March's shown days left
    /// as they are, all time − January − the days shown would be February
    /// and March 12 together: 6 answers. So a day of March goes too.
    #[test]
    fn a_hidden_total_does_not_leave_few_hidden_members() {
        let sizes = [144, 100, 4, 40, 12, 12, 14, 2];
        let families = [
            SumFamily {
                total: 0,
                members: vec![1, 2, 3],
            },
            SumFamily {
                total: 3,
                members: vec![4, 5, 6, 7],
            },
        ];
        let mut hidden = [false, false, true, false, false, false, false, true];
        protect_sums(&sizes, &mut hidden, &families, 10);
        assert_eq!(hidden, [false, false, true, true, true, false, false, true]);
    }

    /// Members as sets of customer numbers; the union counts each once.
    fn union_of(members: &[std::ops::Range<u64>]) -> impl Fn(&[usize]) -> u64 + '_ {
        move |positions: &[usize]| {
            let all: std::collections::BTreeSet<u64> =
                positions.iter().flat_map(|&p| members[p].clone()).collect();
            all.len() as u64
        }
    }

    /// [`complements_by_union`] at min 10 over members given as customer ranges.
    fn by_union(
        hidden: &[bool],
        sizes: &[u64],
        free: &[bool],
        total_hidden: bool,
        members: &[std::ops::Range<u64>],
    ) -> (Vec<bool>, bool) {
        complements_by_union(hidden, sizes, free, 10, total_hidden, &union_of(members))
    }

    #[test]
    fn hidden_members_must_hold_min_distinct_customers() {
        // Two hidden groups of 6 that are the same 6 people: the total minus
        // the shown group would describe those 6, so the shown one goes too.
        let same = [0..6, 0..6, 6..46];
        let sizes = [6, 6, 40];
        assert_eq!(
            by_union(&[true, true, false], &sizes, &[false; 3], false, &same),
            (vec![false, false, true], false)
        );
        // The same sizes, different people (12 together): nothing more.
        let apart = [0..6, 6..12, 12..52];
        assert_eq!(
            by_union(&[true, true, false], &sizes, &[false; 3], false, &apart),
            (vec![false; 3], false)
        );
        // One hidden member is always too few: the smallest shown joins it,
        // one whose rows are hidden already (free) before any other.
        let three = [0..6, 6..30, 30..50];
        assert_eq!(
            by_union(
                &[true, false, false],
                &[6, 24, 20],
                &[false; 3],
                false,
                &three
            ),
            (vec![false, false, true], false)
        );
        assert_eq!(
            by_union(
                &[true, false, false],
                &[6, 24, 20],
                &[false, true, false],
                false,
                &three
            ),
            (vec![false, true, false], false)
        );
    }

    #[test]
    fn a_hidden_total_keeps_a_hidden_member_that_is_not_few() {
        let groups = [0..30, 30..34, 34..60];
        let sizes = [30, 4, 26];
        // Nothing hidden under a hidden total: it would be the sum of the
        // members shown, so the smallest goes, and with 4 customers it is
        // too few alone: the next smallest joins it.
        assert_eq!(
            by_union(&[false; 3], &sizes, &[false; 3], true, &groups),
            (vec![false, true, true], false)
        );
        // One large hidden member under a hidden total is enough.
        assert_eq!(
            by_union(&[true, false, false], &sizes, &[false; 3], true, &groups),
            (vec![false; 3], false)
        );
        // The only member, hidden, is the total: the total goes instead.
        assert_eq!(
            by_union(&[true], &[4], &[false], false, &groups[1..2]),
            (vec![false], true)
        );
    }

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
