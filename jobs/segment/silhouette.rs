//! The silhouette score (Rousseeuw 1987), exact, as scikit-learn's
//! `silhouette_score` with the Euclidean metric defines it.
//!
//! For point *i* in cluster *A*: *a(i)* is its mean distance to the other
//! members of *A*, *b(i)* the smallest mean distance to the members of another
//! cluster, *s(i) = (b − a) / max(a, b)*, and *s(i) = 0* when *A* has one
//! member. The score is the mean of *s(i)*. It needs at least two clusters
//! and fewer clusters than points.
//!
//! The cost is quadratic, so the job scores a seeded sample: the distances
//! of the sample are computed once ([`PairwiseDistances`]) and reused for
//! every k tried.

use ndarray::ArrayView2;

/// The full matrix of Euclidean distances between the rows of a sample.
#[derive(Debug, Clone)]
pub struct PairwiseDistances {
    n: usize,
    /// Row-major n × n (both halves, so a point's row is contiguous).
    d: Vec<f64>,
}

impl PairwiseDistances {
    /// Computes the distances between the rows of `points` (n² / 2 distance
    /// evaluations; memory 8 n² bytes).
    pub fn new(points: ArrayView2<f64>) -> PairwiseDistances {
        let n = points.nrows();
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            let pi = points.row(i);
            for j in (i + 1)..n {
                let dist = pi
                    .iter()
                    .zip(points.row(j).iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                d[i * n + j] = dist;
                d[j * n + i] = dist;
            }
        }
        PairwiseDistances { n, d }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The silhouette score of a labelling of the points (`labels[i]` is the
    /// cluster of point `i`); `None` when it is undefined (fewer than two
    /// clusters, or as many clusters as points).
    pub fn silhouette(&self, labels: &[usize]) -> Option<f64> {
        assert_eq!(labels.len(), self.n, "one label per point");
        score(self.n, labels, |i, sums| {
            let row = &self.d[i * self.n..(i + 1) * self.n];
            for (j, &dist) in row.iter().enumerate() {
                sums[labels[j]] += dist;
            }
        })
    }
}

/// The silhouette score of `points` under `labels`, computing distances on
/// the fly (no n² memory). `None` when undefined.
pub fn silhouette_score(points: ArrayView2<f64>, labels: &[usize]) -> Option<f64> {
    assert_eq!(labels.len(), points.nrows(), "one label per point");
    score(points.nrows(), labels, |i, sums| {
        let pi = points.row(i);
        for (j, pj) in points.rows().into_iter().enumerate() {
            let dist = pi
                .iter()
                .zip(pj.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            sums[labels[j]] += dist;
        }
    })
}

/// The score, given a way to add up point `i`'s distances per cluster
/// (its distance to itself is 0, so it may be included).
fn score(
    n: usize,
    labels: &[usize],
    mut distance_sums: impl FnMut(usize, &mut [f64]),
) -> Option<f64> {
    let k = labels.iter().copied().max()? + 1;
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    let clusters = sizes.iter().filter(|&&s| s > 0).count();
    if clusters < 2 || clusters >= n {
        return None;
    }
    let mut sums = vec![0.0; k];
    let mut total = 0.0;
    for (i, &own) in labels.iter().enumerate() {
        if sizes[own] == 1 {
            continue; // s(i) = 0 for a singleton
        }
        sums.iter_mut().for_each(|s| *s = 0.0);
        distance_sums(i, &mut sums);
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        // Identical points (a = b = 0): scikit-learn turns 0/0 into 0.
        if m > 0.0 {
            total += (b - a) / m;
        }
    }
    Some(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    /// Fixed points: three loose clusters in 2-D, with one point placed
    /// between clusters, and labellings including a wrong one.
    fn points() -> Array2<f64> {
        array![
            [0.0, 0.0],
            [0.5, 0.2],
            [0.1, 0.9],
            [1.0, 0.4],
            [5.0, 5.0],
            [5.5, 4.2],
            [6.1, 5.3],
            [4.8, 5.9],
            [9.0, 0.5],
            [9.4, 1.1],
            [8.7, 0.0],
            [3.0, 2.5],
        ]
    }

    /// Expected values from scikit-learn 1.9.1:
    /// `sklearn.metrics.silhouette_score(X, labels)` with X = `points()` and
    /// the labels below (computed in a Python venv, pasted here).
    const SKLEARN: &[(&[usize], f64)] = &[
        (&[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0], 0.7404152170226203),
        (&[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 1], 0.7276573641024887),
        (&[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0], 0.5557424701315415),
        (&[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], -0.09655014767936693),
        (&[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3], 0.6793102097256728),
    ];

    #[test]
    fn matches_scikit_learn() {
        let x = points();
        let pd = PairwiseDistances::new(x.view());
        for (labels, want) in SKLEARN {
            let direct = silhouette_score(x.view(), labels).expect("defined");
            let cached = pd.silhouette(labels).expect("defined");
            assert!(
                (direct - want).abs() < 1e-10,
                "{labels:?}: {direct} vs sklearn {want}"
            );
            assert!((cached - direct).abs() < 1e-12);
        }
    }

    #[test]
    fn label_numbers_do_not_matter() {
        let x = points();
        let a = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0];
        let b = [7, 7, 7, 7, 3, 3, 3, 3, 0, 0, 0, 7];
        let sa = silhouette_score(x.view(), &a).expect("a");
        let sb = silhouette_score(x.view(), &b).expect("b");
        assert!((sa - sb).abs() < 1e-12);
    }

    #[test]
    fn undefined_cases() {
        let x = points();
        assert_eq!(silhouette_score(x.view(), &[0; 12]), None, "one cluster");
        let all: Vec<usize> = (0..12).collect();
        assert_eq!(silhouette_score(x.view(), &all), None, "n clusters");
        let same = Array2::<f64>::zeros((4, 2));
        assert_eq!(
            silhouette_score(same.view(), &[0, 0, 1, 1]),
            Some(0.0),
            "identical points score 0, as scikit-learn"
        );
    }
}
