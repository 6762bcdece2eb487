//! Dimensions: the ways a decision table is cut into groups — each group
//! column alone, and intersections of two (`age_band & region` has groups
//! like `65+ & east`).

use super::table::{Codes, DecisionTable, MISSING};
use crate::{Error, Result};

/// Separates the parts of an intersection's name and of its groups' names.
pub const JOIN: &str = " & ";

/// Which intersections to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intersections {
    /// None: each group column alone.
    None,
    /// Every pair of group columns.
    Pairwise,
    /// These pairs (by column name).
    Pairs(Vec<(String, String)>),
}

impl Intersections {
    /// The pairs of `columns` (by position) to intersect, in audit order; a
    /// named pair with a column not among them is skipped.
    fn pairs(&self, columns: &[&str]) -> Vec<(usize, usize)> {
        let k = columns.len();
        match self {
            Intersections::None => Vec::new(),
            Intersections::Pairwise => (0..k)
                .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
                .collect(),
            Intersections::Pairs(list) => {
                let pos = |n: &str| columns.iter().position(|c| *c == n);
                list.iter()
                    .filter_map(|(a, b)| Some((pos(a)?, pos(b)?)))
                    .filter(|(a, b)| a != b)
                    .collect()
            }
        }
    }

    /// The names of the dimensions audited over `attributes`, in audit
    /// order: each attribute, then each intersection asked for.
    pub fn dimension_names(&self, attributes: &[String]) -> Vec<String> {
        let columns: Vec<&str> = attributes.iter().map(String::as_str).collect();
        let mut names = attributes.to_vec();
        for (a, b) in self.pairs(&columns) {
            names.push(format!("{}{JOIN}{}", columns[a], columns[b]));
        }
        names
    }

    /// Checks that every dimension a reference group is given for is
    /// audited over `attributes`: a misspelt name would otherwise be
    /// skipped without a word. The error names it and what is audited.
    pub fn check_references<'a>(
        &self,
        attributes: &[String],
        references: impl IntoIterator<Item = &'a String>,
    ) -> std::result::Result<(), String> {
        let names = self.dimension_names(attributes);
        match references.into_iter().find(|r| !names.contains(r)) {
            Some(r) => Err(format!(
                "`{r}` is not an audited dimension (audited: {})",
                names.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// [`check_references`](Self::check_references), after checking that
    /// every column a configured pair names is one of `attributes`.
    pub fn check_names<'a>(
        &self,
        attributes: &[String],
        references: impl IntoIterator<Item = &'a String>,
    ) -> std::result::Result<(), String> {
        if let Intersections::Pairs(list) = self
            && let Some(c) = list
                .iter()
                .flat_map(|(a, b)| [a, b])
                .find(|c| !attributes.contains(c))
        {
            return Err(format!(
                "intersections: `{c}` is not an audited attribute (audited: {})",
                attributes.join(", ")
            ));
        }
        self.check_references(attributes, references)
            .map_err(|m| format!("reference_groups: {m}"))
    }
}

/// One way of grouping the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// `age_band`, or `age_band & region`.
    pub name: String,
    /// The group columns it combines, in order.
    pub attributes: Vec<String>,
    /// Per group: its value in each attribute.
    pub values: Vec<Vec<String>>,
    /// Per row: the group, or [`MISSING`] when an attribute is missing.
    pub codes: Vec<u32>,
    /// For an intersection: the indices of its two single dimensions and,
    /// per group, its group in each of them.
    pub parents: Option<Parents>,
}

/// How an intersection's groups sit inside its two single dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Parents {
    pub dims: [usize; 2],
    /// Per group of the intersection: (group in the first, group in the second).
    pub groups: Vec<[u32; 2]>,
}

impl Dimension {
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.values.len()
    }

    /// A group's name: its values joined by [`JOIN`].
    pub fn group_name(&self, g: usize) -> String {
        self.values[g].join(JOIN)
    }

    fn single(name: &str, codes: &Codes) -> Dimension {
        Dimension {
            name: name.to_string(),
            attributes: vec![name.to_string()],
            values: codes.labels.iter().map(|l| vec![l.clone()]).collect(),
            codes: codes.codes.clone(),
            parents: None,
        }
    }
}

/// The dimensions of a table: its group columns in order, then the
/// intersections asked for (only of columns the table has; a named pair
/// the table lacks is skipped).
pub fn dimensions(table: &DecisionTable, intersections: &Intersections) -> Result<Vec<Dimension>> {
    let mut dims: Vec<Dimension> = table
        .groups
        .iter()
        .map(|(name, codes)| Dimension::single(name, codes))
        .collect();
    let columns: Vec<&str> = table.groups.iter().map(|(n, _)| n.as_str()).collect();
    let pairs = intersections.pairs(&columns);
    for (a, b) in pairs {
        dims.push(intersect(&dims[a], a, &dims[b], b)?);
    }
    Ok(dims)
}

fn intersect(da: &Dimension, ia: usize, db: &Dimension, ib: usize) -> Result<Dimension> {
    let nb = db.groups() as u64;
    let combined = |r: usize| -> Option<u64> {
        let (a, b) = (da.codes[r], db.codes[r]);
        (a != MISSING && b != MISSING).then(|| u64::from(a) * nb + u64::from(b))
    };
    // Only the combinations that occur, coded in (a, b) order.
    let (present, codes) = if da.groups() as u64 * nb <= DENSE_COMBINATIONS {
        code_dense(da.codes.len(), da.groups() as u64 * nb, combined)
    } else {
        code_sorted(da.codes.len(), combined)
    };
    if present.len() >= MISSING as usize {
        return Err(Error::Input {
            file: format!("{}{JOIN}{}", da.name, db.name),
            reason: "too many groups".into(),
        });
    }
    let groups: Vec<[u32; 2]> = present
        .iter()
        .map(|&c| [(c / nb) as u32, (c % nb) as u32])
        .collect();
    let values = groups
        .iter()
        .map(|[a, b]| {
            let mut v = da.values[*a as usize].clone();
            v.extend(db.values[*b as usize].iter().cloned());
            v
        })
        .collect();
    Ok(Dimension {
        name: format!("{}{JOIN}{}", da.name, db.name),
        attributes: vec![da.name.clone(), db.name.clone()],
        values,
        codes,
        parents: Some(Parents {
            dims: [ia, ib],
            groups,
        }),
    })
}

/// Combinations of two dimensions' groups coded through a table of every
/// possible one, when there are at most this many: the attributes' few
/// groups make tens of them. A sort of every row's combination and a hash
/// lookup per row (the way larger products still go) were 7% of the audit
/// at a million customers, for its 6.7M decision rows and ten pairs.
const DENSE_COMBINATIONS: u64 = 1 << 16;

/// The combinations present (sorted) and each row's code among them, from
/// a table of all `possible` combinations.
fn code_dense(
    rows: usize,
    possible: u64,
    combined: impl Fn(usize) -> Option<u64>,
) -> (Vec<u64>, Vec<u32>) {
    let mut code_of = vec![MISSING; possible as usize];
    for r in 0..rows {
        if let Some(c) = combined(r) {
            code_of[c as usize] = 0;
        }
    }
    let mut present = Vec::new();
    for (c, code) in code_of.iter_mut().enumerate() {
        if *code != MISSING {
            *code = present.len() as u32;
            present.push(c as u64);
        }
    }
    let codes = (0..rows)
        .map(|r| combined(r).map_or(MISSING, |c| code_of[c as usize]))
        .collect();
    (present, codes)
}

/// [`code_dense`] for products of groups too many for a table: the rows'
/// combinations sorted, then looked up.
fn code_sorted(rows: usize, combined: impl Fn(usize) -> Option<u64>) -> (Vec<u64>, Vec<u32>) {
    let mut present: Vec<u64> = (0..rows).filter_map(&combined).collect();
    present.sort_unstable();
    present.dedup();
    let code_of: std::collections::HashMap<u64, u32> = present
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i as u32))
        .collect();
    let codes = (0..rows)
        .map(|r| combined(r).map_or(MISSING, |c| code_of[&c]))
        .collect();
    (present, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DecisionTable {
        DecisionTable {
            name: "t".into(),
            rows: 5,
            subjects: None,
            groups: vec![
                (
                    "age".into(),
                    Codes::encode(&[Some("old"), Some("young"), Some("old"), None, Some("young")]),
                ),
                (
                    "region".into(),
                    Codes::encode(&[Some("e"), Some("w"), Some("w"), Some("e"), None]),
                ),
                (
                    "lang".into(),
                    Codes::encode(&[Some("en"), Some("en"), Some("de"), Some("en"), Some("en")]),
                ),
            ],
            outcomes: Vec::new(),
            classifier: None,
        }
    }

    #[test]
    fn the_dimension_names_are_those_the_audit_builds() {
        let attributes: Vec<String> = ["age", "region", "lang"].map(String::from).to_vec();
        let pairs = Intersections::Pairs(vec![
            ("lang".into(), "age".into()),
            ("region".into(), "nope".into()),
        ]);
        for mode in [Intersections::None, Intersections::Pairwise, pairs] {
            let built: Vec<String> = dimensions(&table(), &mode)
                .expect("dims")
                .into_iter()
                .map(|d| d.name)
                .collect();
            assert_eq!(mode.dimension_names(&attributes), built, "{mode:?}");
        }
    }

    #[test]
    fn misspelt_names_are_refused_with_what_is_known() {
        let attributes: Vec<String> = ["age_band", "region"].map(String::from).to_vec();
        let ok = ["age_band".to_string(), "age_band & region".to_string()];
        assert_eq!(
            Intersections::Pairwise.check_names(&attributes, &ok),
            Ok(())
        );
        let e = Intersections::None
            .check_names(&attributes, &ok)
            .expect_err("no intersections are audited");
        assert!(
            e.contains("`age_band & region`") && e.contains("audited: age_band, region"),
            "{e}"
        );
        let e = Intersections::Pairwise
            .check_names(&attributes, &["agebnd".to_string()])
            .expect_err("typo");
        assert!(e.contains("`agebnd`"), "{e}");
        let e = Intersections::Pairs(vec![("age_band".into(), "regoin".into())])
            .check_names(&attributes, &[])
            .expect_err("typo in a pair");
        assert!(e.contains("`regoin`") && e.contains("intersections"), "{e}");
    }

    #[test]
    fn pairwise_intersections_keep_only_present_combinations() {
        let dims = dimensions(&table(), &Intersections::Pairwise).expect("dims");
        let names: Vec<&str> = dims.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "age",
                "region",
                "lang",
                "age & region",
                "age & lang",
                "region & lang"
            ]
        );
        let ar = &dims[3];
        let groups: Vec<String> = (0..ar.groups()).map(|g| ar.group_name(g)).collect();
        assert_eq!(groups, vec!["old & e", "old & w", "young & w"]);
        assert_eq!(ar.codes, vec![0, 2, 1, MISSING, MISSING]);
        let p = ar.parents.as_ref().expect("parents");
        assert_eq!(p.dims, [0, 1]);
        assert_eq!(p.groups[2], [1, 1]);
    }

    /// Differential: the table of every combination codes the rows as the
    /// sort and lookup did (the way every pair was coded before), with
    /// missing codes and combinations that never occur.
    #[test]
    fn dense_coding_is_the_sorted_coding() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        for (na, nb) in [(2u32, 3u32), (7, 5), (40, 30), (1, 1)] {
            let code = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, n: u32| {
                if rng.random_bool(0.1) {
                    MISSING
                } else {
                    // the upper half of the groups only now and then
                    rng.random_range(0..n.div_ceil(2).max(1))
                        + u32::from(rng.random_bool(0.05)) * (n / 2)
                }
            };
            let a: Vec<u32> = (0..5_000).map(|_| code(&mut rng, na)).collect();
            let b: Vec<u32> = (0..5_000).map(|_| code(&mut rng, nb)).collect();
            let combined = |r: usize| {
                (a[r] != MISSING && b[r] != MISSING)
                    .then(|| u64::from(a[r]) * u64::from(nb) + u64::from(b[r]))
            };
            let dense = code_dense(a.len(), u64::from(na * nb), combined);
            let sorted = code_sorted(a.len(), combined);
            assert_eq!(dense, sorted, "{na} x {nb} groups");
        }
    }

    #[test]
    fn named_pairs_and_none() {
        let t = table();
        assert_eq!(dimensions(&t, &Intersections::None).expect("dims").len(), 3);
        let pairs = Intersections::Pairs(vec![
            ("lang".into(), "age".into()),
            ("age".into(), "segment".into()),
        ]);
        let dims = dimensions(&t, &pairs).expect("dims");
        assert_eq!(dims.len(), 4, "the pair with an absent column is skipped");
        assert_eq!(dims[3].name, "lang & age");
    }
}
