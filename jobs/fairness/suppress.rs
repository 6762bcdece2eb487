//! Small-group suppression with complementary protection.
//!
//! A group is *primary* suppressed when fewer than `min_group_size` people
//! (distinct subjects, not rows) are in it. Hiding it is not enough: the
//! sizes of a dimension's groups add up to a total anyone can count
//! elsewhere (tickets per day are in `marts/service_levels`), and the cells
//! of `age_band & region` add up, row by row, to the groups of `age_band`
//! and `region`. So every such sum is a *relation*, and [`protect`] hides
//! more cells until no relation has exactly one hidden unknown and no
//! relation with a visible total reveals hidden cells that together hold
//! fewer than `min_group_size` people. Additional cells are taken smallest
//! first (ties by position), which keeps the loss of information small and
//! the result deterministic.
//!
//! Rows whose group is missing form a virtual, never-shown cell of each
//! relation: it adds to the hidden total but never counts as the unknown
//! that forces more suppression (it is not a group anyone is told about).

use super::dims::Dimension;
use super::table::MISSING;

/// Why a cell is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Shown.
    No,
    /// No one in this population (nothing to show, nobody to protect).
    Empty,
    /// Fewer than `min_group_size` people.
    Small,
    /// Hidden so that a small cell cannot be recovered from totals, or
    /// inherited from the table's whole population.
    Complementary,
}

impl Hidden {
    /// Whether the cell's numbers are withheld.
    pub fn hidden(self) -> bool {
        self != Hidden::No
    }
}

/// Sizes of every group of every dimension in one population.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// `[dim][group]`: distinct subjects.
    pub groups: Vec<Vec<u64>>,
    /// `[dim][group]`: rows.
    pub rows: Vec<Vec<u64>>,
    /// `[dim]`: distinct subjects whose group is missing.
    pub missing: Vec<u64>,
}

/// Who each row is about, prepared for counting distinct people per group.
///
/// When a dimension's group is the same on every row of a subject (the
/// usual case: attributes belong to the customer, not the ticket), people
/// are counted from a per-subject group code in one pass over the
/// subjects; otherwise rows are walked in subject order.
#[derive(Debug, Clone)]
pub struct SubjectIndex {
    pub subjects: Vec<u32>,
    subject_count: usize,
    /// Row indices sorted by subject (for dimensions without `per_subject`).
    order: Vec<u32>,
    /// `[dim]`: the group of each subject, when constant per subject.
    per_subject: Vec<Option<Vec<u32>>>,
}

impl SubjectIndex {
    /// Indexes subject codes (dense: 0..number of subjects) against the
    /// dimensions.
    pub fn new(subjects: &[u32], dims: &[Dimension]) -> SubjectIndex {
        let subject_count = subjects.iter().map(|&s| s as usize + 1).max().unwrap_or(0);
        const UNSET: u32 = u32::MAX - 1;
        let per_subject: Vec<Option<Vec<u32>>> = dims
            .iter()
            .map(|d| {
                let mut codes = vec![UNSET; subject_count];
                for (&s, &c) in subjects.iter().zip(&d.codes) {
                    let slot = &mut codes[s as usize];
                    if *slot == UNSET {
                        *slot = c;
                    } else if *slot != c {
                        return None;
                    }
                }
                Some(codes)
            })
            .collect();
        let order = if per_subject.iter().all(Option::is_some) {
            Vec::new()
        } else {
            let mut o: Vec<u32> = (0..subjects.len() as u32).collect();
            o.sort_by_key(|&r| subjects[r as usize]);
            o
        };
        SubjectIndex {
            subjects: subjects.to_vec(),
            subject_count,
            order,
            per_subject,
        }
    }

    /// The group of each subject (by subject code) in dimension `d`, when
    /// it is the same on every row of the subject. Subjects whose group is
    /// missing, and codes no row has, hold a code from the dimension's
    /// group count on ([`MISSING`] or another).
    pub fn group_of_subjects(&self, d: usize) -> Option<&[u32]> {
        self.per_subject.get(d)?.as_deref()
    }
}

/// Counts rows and distinct subjects per group of each dimension among the
/// rows where `population` is true. Without subjects every row is a person.
pub fn sizes(dims: &[Dimension], population: &[bool], subjects: Option<&SubjectIndex>) -> Sizes {
    let slot = |d: &Dimension, c: u32| -> usize {
        match c {
            MISSING => d.groups(),
            c => c as usize,
        }
    };
    let count_rows = |d: &Dimension| -> Vec<u64> {
        let mut counts = vec![0; d.groups() + 1];
        for (&c, &p) in d.codes.iter().zip(population) {
            if p {
                counts[slot(d, c)] += 1;
            }
        }
        counts
    };
    let (mut rows, mut groups): (Vec<Vec<u64>>, Vec<Vec<u64>>) = match subjects {
        None => {
            let rows: Vec<Vec<u64>> = dims.iter().map(&count_rows).collect();
            (rows.clone(), rows)
        }
        Some(si) => {
            // A dimension of the subjects counts its rows and people from
            // each subject's rows in the population, in a pass over the
            // subjects rather than the rows (whole numbers: any order of
            // adding gives the same counts).
            let mut rows_of = vec![0u64; si.subject_count];
            for (&s, &p) in si.subjects.iter().zip(population) {
                if p {
                    rows_of[s as usize] += 1;
                }
            }
            dims.iter()
                .enumerate()
                .map(|(i, d)| match &si.per_subject[i] {
                    Some(codes) => {
                        let mut rows = vec![0u64; d.groups() + 1];
                        let mut people = vec![0u64; d.groups() + 1];
                        for (&c, &m) in codes.iter().zip(&rows_of) {
                            if m > 0 {
                                rows[slot(d, c)] += m;
                                people[slot(d, c)] += 1;
                            }
                        }
                        (rows, people)
                    }
                    None => {
                        // Rows come in subject order: a subject is
                        // counted once per group it appears in.
                        let mut people = vec![0u64; d.groups() + 1];
                        let mut last = vec![u32::MAX; d.groups() + 1];
                        for &r in &si.order {
                            let r = r as usize;
                            if population[r] {
                                let k = slot(d, d.codes[r]);
                                let s = si.subjects[r];
                                if last[k] != s {
                                    last[k] = s;
                                    people[k] += 1;
                                }
                            }
                        }
                        (count_rows(d), people)
                    }
                })
                .unzip()
        }
    };
    let missing = groups
        .iter_mut()
        .zip(rows.iter_mut())
        .map(|(g, r)| {
            r.pop();
            g.pop().unwrap_or(0)
        })
        .collect();
    Sizes {
        groups,
        rows,
        missing,
    }
}

struct Relation {
    /// The cell the members add up to; `None` for a dimension's grand total,
    /// which is public.
    total: Option<usize>,
    members: Vec<usize>,
    /// People in the relation's total who are in no member cell.
    virtual_hidden: u64,
}

/// Decides which cells to hide. `inherited[d][g]` forces a cell hidden
/// (the table's whole-population suppression, carried into each metric's
/// population). Returns `[dim][group]`.
pub fn protect(
    dims: &[Dimension],
    sizes: &Sizes,
    min_group_size: u64,
    inherited: Option<&[Vec<Hidden>]>,
) -> Vec<Vec<Hidden>> {
    let offsets: Vec<usize> = dims
        .iter()
        .scan(0usize, |acc, d| {
            let o = *acc;
            *acc += d.groups();
            Some(o)
        })
        .collect();
    let size_of: Vec<u64> = sizes.groups.iter().flatten().copied().collect();
    let mut state: Vec<Hidden> = size_of
        .iter()
        .map(|&s| match s {
            0 => Hidden::Empty,
            s if s < min_group_size => Hidden::Small,
            _ => Hidden::No,
        })
        .collect();
    if let Some(inh) = inherited {
        for (d, row) in inh.iter().enumerate() {
            for (g, h) in row.iter().enumerate() {
                let id = offsets[d] + g;
                if h.hidden() && state[id] == Hidden::No {
                    state[id] = Hidden::Complementary;
                }
            }
        }
    }

    let mut relations = Vec::new();
    for (d, dim) in dims.iter().enumerate() {
        relations.push(Relation {
            total: None,
            members: (0..dim.groups()).map(|g| offsets[d] + g).collect(),
            virtual_hidden: sizes.missing[d],
        });
        if let Some(p) = &dim.parents {
            for side in 0..2 {
                let parent = p.dims[side];
                for pg in 0..dims[parent].groups() {
                    let members: Vec<usize> = (0..dim.groups())
                        .filter(|&g| p.groups[g][side] as usize == pg)
                        .map(|g| offsets[d] + g)
                        .collect();
                    let total = offsets[parent] + pg;
                    let inside: u64 = members.iter().map(|&m| size_of[m]).sum();
                    relations.push(Relation {
                        total: Some(total),
                        members,
                        virtual_hidden: size_of[total].saturating_sub(inside),
                    });
                }
            }
        }
    }

    loop {
        let mut changed = false;
        for rel in &relations {
            let hidden_members: Vec<usize> = rel
                .members
                .iter()
                .copied()
                .filter(|&m| matches!(state[m], Hidden::Small | Hidden::Complementary))
                .collect();
            let total_hidden = rel.total.is_some_and(|t| state[t].hidden());
            let unknowns = hidden_members.len() + usize::from(total_hidden);
            let hidden_people: u64 =
                hidden_members.iter().map(|&m| size_of[m]).sum::<u64>() + rel.virtual_hidden;
            let exposed = unknowns == 1
                || (!total_hidden && !hidden_members.is_empty() && hidden_people < min_group_size);
            if !exposed {
                continue;
            }
            let next = rel
                .members
                .iter()
                .copied()
                .filter(|&m| state[m] == Hidden::No)
                .min_by_key(|&m| (size_of[m], m));
            match next {
                Some(m) => {
                    state[m] = Hidden::Complementary;
                    changed = true;
                }
                None => {
                    if let Some(t) = rel.total
                        && state[t] == Hidden::No
                    {
                        state[t] = Hidden::Complementary;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    dims.iter()
        .enumerate()
        .map(|(d, dim)| (0..dim.groups()).map(|g| state[offsets[d] + g]).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::dims::{Intersections, dimensions};
    use crate::fairness::table::{Codes, DecisionTable};

    /// A table whose rows are given as (a, b, copies).
    fn table(cells: &[(&str, &str, usize)]) -> DecisionTable {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, k) in cells {
            for _ in 0..*k {
                a.push(Some(x.to_string()));
                b.push(Some(y.to_string()));
            }
        }
        DecisionTable {
            name: "t".into(),
            rows: a.len(),
            subjects: None,
            groups: vec![
                ("a".into(), Codes::encode(&a)),
                ("b".into(), Codes::encode(&b)),
            ],
            outcomes: Vec::new(),
            classifier: None,
        }
    }

    fn run(t: &DecisionTable, inter: Intersections) -> (Vec<Dimension>, Sizes, Vec<Vec<Hidden>>) {
        let dims = dimensions(t, &inter).expect("dims");
        let pop = vec![true; t.rows];
        let s = sizes(&dims, &pop, None);
        let h = protect(&dims, &s, 10, None);
        (dims, s, h)
    }

    /// Every relation's hidden cells: never exactly one unknown, and when the
    /// total is visible, the hidden cells hold at least 10 people.
    fn assert_safe(dims: &[Dimension], s: &Sizes, h: &[Vec<Hidden>]) {
        for (d, dim) in dims.iter().enumerate() {
            let hidden: Vec<u64> = (0..dim.groups())
                .filter(|&g| matches!(h[d][g], Hidden::Small | Hidden::Complementary))
                .map(|g| s.groups[d][g])
                .collect();
            assert!(
                hidden.len() != 1,
                "{}: one hidden cell is recoverable",
                dim.name
            );
            if !hidden.is_empty() {
                assert!(
                    hidden.iter().sum::<u64>() >= 10,
                    "{}: hidden sum < 10",
                    dim.name
                );
            }
        }
    }

    #[test]
    fn one_small_group_takes_the_next_smallest_with_it() {
        let t = table(&[
            ("x", "p", 50),
            ("y", "p", 30),
            ("z", "p", 4),
            ("w", "p", 12),
        ]);
        let (dims, s, h) = run(&t, Intersections::None);
        assert_eq!(s.groups[0], vec![12, 50, 30, 4], "w x y z");
        assert_eq!(
            h[0],
            vec![Hidden::Complementary, Hidden::No, Hidden::No, Hidden::Small]
        );
        assert_safe(&dims, &s, &h);
    }

    #[test]
    fn two_tiny_groups_are_not_enough_together() {
        // 3 + 4 people hidden would reveal that 7 people are in {y, z}.
        let t = table(&[
            ("x", "p", 50),
            ("y", "p", 3),
            ("z", "p", 4),
            ("w", "p", 40),
            ("v", "p", 20),
        ]);
        let (dims, s, h) = run(&t, Intersections::None);
        let hidden: Vec<&String> = dims[0]
            .values
            .iter()
            .zip(&h[0])
            .filter(|(_, h)| h.hidden())
            .map(|(v, _)| &v[0])
            .collect();
        assert_eq!(hidden, vec!["v", "y", "z"]);
        assert_safe(&dims, &s, &h);
    }

    #[test]
    fn nothing_small_nothing_hidden() {
        let t = table(&[("x", "p", 50), ("y", "q", 30)]);
        let (_, _, h) = run(&t, Intersections::None);
        assert!(h.iter().flatten().all(|c| *c == Hidden::No));
    }

    /// A small intersection cell cannot be recovered from its row's margin:
    /// a of "x" is 60 = 52 (x & p) + 8 (x & q); hiding only "x & q" would
    /// let anyone compute it from a = x and x & p.
    #[test]
    fn intersections_are_protected_against_their_margins() {
        let t = table(&[
            ("x", "p", 52),
            ("x", "q", 8),
            ("y", "p", 40),
            ("y", "q", 35),
            ("z", "p", 30),
            ("z", "q", 33),
        ]);
        let (dims, _, h) = run(&t, Intersections::Pairwise);
        let inter = &dims[2];
        let state = |name: &str| {
            let g = (0..inter.groups())
                .find(|&g| inter.group_name(g) == name)
                .expect("group");
            h[2][g]
        };
        assert_eq!(state("x & q"), Hidden::Small);
        // Row x = {x & p, x & q} must lose a second cell, and so must column
        // q = {x & q, y & q, z & q}; then those rows and columns need theirs.
        assert!(state("x & p").hidden(), "row x");
        let col_q_hidden = ["y & q", "z & q"]
            .iter()
            .filter(|n| state(n).hidden())
            .count();
        assert!(col_q_hidden >= 1, "column q");
        // No row or column of the intersection has exactly one hidden cell.
        for side in 0..2 {
            let p = inter.parents.as_ref().expect("parents");
            let parent = p.dims[side];
            for pg in 0..dims[parent].groups() {
                let hidden = (0..inter.groups())
                    .filter(|&g| p.groups[g][side] as usize == pg && h[2][g].hidden())
                    .count();
                assert_ne!(
                    hidden + usize::from(h[parent][pg].hidden()),
                    1,
                    "line {side}/{pg}"
                );
            }
        }
        assert!(
            h[0].iter().chain(&h[1]).all(|c| *c == Hidden::No),
            "margins stay visible"
        );
    }

    #[test]
    fn distinct_subjects_are_counted_not_rows() {
        // 30 tickets of the same 3 customers in group "x".
        let mut t = table(&[("x", "p", 30), ("y", "p", 40)]);
        let subjects: Vec<u32> = (0..t.rows as u32)
            .map(|r| if r < 30 { r % 3 } else { 100 + r })
            .collect();
        t.subjects = Some(subjects.clone());
        let dims = dimensions(&t, &Intersections::None).expect("dims");
        let index = SubjectIndex::new(&subjects, &dims);
        let s = sizes(&dims, &vec![true; t.rows], Some(&index));
        assert_eq!(s.groups[0], vec![3, 40]);
        assert_eq!(s.rows[0], vec![30, 40]);
        let h = protect(&dims, &s, 10, None);
        assert_eq!(h[0][0], Hidden::Small);
    }

    /// A subject whose group changes between rows (a customer who moved)
    /// counts once in each group: the slow path agrees with a plain count.
    #[test]
    fn subjects_in_several_groups_are_counted_in_each() {
        let mut t = table(&[("x", "p", 4), ("y", "p", 4)]);
        // Subject 0 has rows in x and y; subjects 1..=3 only in one.
        t.subjects = Some(vec![0, 1, 1, 2, 0, 3, 3, 3]);
        let dims = dimensions(&t, &Intersections::None).expect("dims");
        let index = SubjectIndex::new(t.subjects.as_deref().expect("set"), &dims);
        let mut population = vec![true; t.rows];
        population[3] = false;
        let s = sizes(&dims, &population, Some(&index));
        assert_eq!(s.groups[0], vec![2, 2], "x: {{0, 1}}; y: {{0, 3}}");
        assert_eq!(
            s.groups[1],
            vec![3],
            "b is constant per subject (fast path); subject 2 is not in the population"
        );
    }

    /// Plain counting: each dimension's rows one by one, and its people as
    /// the distinct (group, subject) pairs among them.
    fn sizes_by_rows(
        dims: &[Dimension],
        population: &[bool],
        subjects: &[u32],
    ) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
        let slot = |d: &Dimension, c: u32| if c == MISSING { d.groups() } else { c as usize };
        let mut rows = Vec::new();
        let mut groups = Vec::new();
        for d in dims {
            let mut r_counts = vec![0u64; d.groups() + 1];
            let mut g_counts = vec![0u64; d.groups() + 1];
            let mut seen = std::collections::HashSet::new();
            for (r, &c) in d.codes.iter().enumerate() {
                if population[r] {
                    r_counts[slot(d, c)] += 1;
                    if seen.insert((slot(d, c), subjects[r])) {
                        g_counts[slot(d, c)] += 1;
                    }
                }
            }
            rows.push(r_counts);
            groups.push(g_counts);
        }
        (rows, groups)
    }

    /// Differential test on random tables: subjects with several rows, two
    /// attributes constant per subject (some missing), one that changes
    /// between a subject's rows, and their intersections.
    #[test]
    fn sizes_from_subjects_equal_counting_rows() {
        use rand::Rng;
        for seed in 0..10u64 {
            let mut r = crate::fairness::bootstrap::rng(seed);
            let people = 200u32;
            let per_person: Vec<(Option<&str>, Option<&str>)> = (0..people)
                .map(|_| {
                    (
                        [None, Some("x"), Some("y"), Some("z")][r.random_range(0..4)],
                        [Some("u"), Some("v")][r.random_range(0..2)],
                    )
                })
                .collect();
            let (mut subjects, mut a, mut b, mut c) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..1500 {
                let s = r.random_range(0..people);
                subjects.push(s);
                a.push(per_person[s as usize].0);
                b.push([None, Some("p"), Some("q")][r.random_range(0..3)]);
                c.push(per_person[s as usize].1);
            }
            let mut t = table(&[]);
            t.rows = subjects.len();
            t.groups = vec![
                ("a".into(), Codes::encode(&a)),
                ("b".into(), Codes::encode(&b)),
                ("c".into(), Codes::encode(&c)),
            ];
            t.subjects = Some(subjects.clone());
            let dims = dimensions(&t, &Intersections::Pairwise).expect("dims");
            assert_eq!(dims[4].name, "a & c");
            let index = SubjectIndex::new(&subjects, &dims);
            assert!(index.group_of_subjects(0).is_some(), "a is the subject's");
            assert!(index.group_of_subjects(1).is_none(), "b changes");
            assert!(index.group_of_subjects(4).is_some(), "so is a & c");
            let population: Vec<bool> = (0..t.rows).map(|_| r.random_bool(0.7)).collect();
            let s = sizes(&dims, &population, Some(&index));
            let (mut rows, mut groups) = sizes_by_rows(&dims, &population, &subjects);
            let missing: Vec<u64> = groups.iter_mut().map(|g| g.pop().unwrap_or(0)).collect();
            for counts in &mut rows {
                counts.pop();
            }
            assert_eq!(
                s,
                Sizes {
                    groups,
                    rows,
                    missing
                },
                "seed {seed}"
            );
        }
    }

    #[test]
    fn inherited_cells_stay_hidden() {
        let t = table(&[("x", "p", 50), ("y", "p", 30), ("z", "p", 20)]);
        let dims = dimensions(&t, &Intersections::None).expect("dims");
        let s = sizes(&dims, &vec![true; t.rows], None);
        let inherited = vec![vec![Hidden::No, Hidden::No, Hidden::Small]];
        let h = protect(&dims, &s, 10, Some(&inherited));
        assert_eq!(h[0][2], Hidden::Complementary);
        assert_eq!(h[0].iter().filter(|c| c.hidden()).count(), 2);
    }
}
