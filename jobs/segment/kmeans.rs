//! k-means (linfa) with the number of clusters chosen by silhouette score.
//!
//! For each k in the configured range: k-means++ starts drawn from our
//! seeded RNG, Lloyd iterations by `linfa-clustering`, the start with the
//! lowest inertia kept; then the silhouette score of that fit on one seeded
//! sample shared by every k. The best silhouette wins (the smaller k on a
//! tie). Large populations are fitted on a seeded sample and then assigned
//! in full with `predict`, so a million customers cost one pass.
//!
//! Why our own k-means++ draw instead of `KMeansInit::KMeansPlusPlus`:
//! linfa 0.8 takes an RNG implementing rand 0.8's traits, attune is on rand
//! 0.9, and `KMeans::params` hard-wires seed 42. Drawing the starts here
//! (the textbook D² sampling of Arthur & Vassilvitskii, 2007) and handing
//! them over as `KMeansInit::Precomputed` keeps the seed in our config.

use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

use super::silhouette::PairwiseDistances;
use crate::{Error, Result};

/// Lloyd iterations per start at most.
pub const MAX_ITERATIONS: u64 = 300;
/// Convergence as scikit-learn's `KMeans(tol=1e-4)`: the squared
/// Euclidean distance the centroids moved (over all their coordinates) at
/// most this times the mean variance of the features. linfa compares the
/// distance itself with its tolerance, so [`fit`] passes the square root.
pub const TOLERANCE: f64 = 1e-4;

/// linfa's tolerance for `x`: the distance whose square is [`TOLERANCE`]
/// times the mean of the columns' variances (population variances, as
/// scikit-learn's `_tolerance`).
///
/// Never zero: linfa stops on `distance < tolerance`, scikit-learn on `<=`,
/// so constant features would otherwise run every start to
/// [`MAX_ITERATIONS`] after it had stopped moving.
fn tolerance(x: ArrayView2<f64>) -> f64 {
    let mean_variance = x.var_axis(Axis(0), 0.0).mean().unwrap_or(0.0);
    (TOLERANCE * mean_variance).sqrt().max(f64::MIN_POSITIVE)
}

/// What the k search needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParams {
    pub k_min: usize,
    pub k_max: usize,
    /// Most rows k-means is fitted on.
    pub fit_sample: usize,
    /// Most rows the silhouette is computed on.
    pub silhouette_sample: usize,
    /// k-means++ starts per k.
    pub restarts: usize,
    pub seed: u64,
}

/// The fit for one k.
#[derive(Debug, Clone)]
pub struct KFit {
    pub k: usize,
    /// k × features, standardized units.
    pub centroids: Array2<f64>,
    /// Mean squared distance to the nearest centroid over the fitting sample.
    pub inertia: f64,
    /// On the silhouette sample; `None` when undefined (e.g. every sampled
    /// point fell into one cluster).
    pub silhouette: Option<f64>,
}

/// Every k tried and the winner.
#[derive(Debug, Clone)]
pub struct Search {
    /// In increasing k.
    pub fits: Vec<KFit>,
    /// Index into `fits` of the chosen k.
    pub chosen: usize,
    pub fit_rows: usize,
    pub silhouette_rows: usize,
}

impl Search {
    /// The chosen fit.
    pub fn best(&self) -> &KFit {
        &self.fits[self.chosen]
    }
}

/// Independent RNG streams of one seed, one per purpose, so that adding a
/// k to the range or changing a sample size changes nothing else.
pub fn stream(seed: u64, purpose: u64) -> Xoshiro256Plus {
    // seed_from_u64 expands with SplitMix64, so nearby inputs give unrelated states.
    Xoshiro256Plus::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

const STREAM_FIT_SAMPLE: u64 = 1;
const STREAM_SILHOUETTE_SAMPLE: u64 = 2;
const STREAM_STARTS: u64 = 100;

/// `m` of `0..n` without replacement, sorted (all of them when `m >= n`).
pub fn sample_indices(n: usize, m: usize, rng: &mut impl Rng) -> Vec<usize> {
    if m >= n {
        return (0..n).collect();
    }
    let mut idx = rand::seq::index::sample(rng, n, m).into_vec();
    idx.sort_unstable();
    idx
}

/// k-means++ starting centroids: the first a uniform pick, each next one
/// drawn with probability proportional to the squared distance to the
/// nearest centroid so far. Duplicates (all distances 0) fall back to the
/// next row in order, so there are always `k` rows.
pub fn kmeans_plus_plus(x: ArrayView2<f64>, k: usize, rng: &mut impl Rng) -> Array2<f64> {
    let n = x.nrows();
    let mut chosen = Vec::with_capacity(k);
    chosen.push(rng.random_range(0..n));
    let mut d2 = vec![f64::INFINITY; n];
    while chosen.len() < k {
        let last = x.row(*chosen.last().expect("one chosen"));
        for (i, row) in x.rows().into_iter().enumerate() {
            let d = row
                .iter()
                .zip(last.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>();
            if d < d2[i] {
                d2[i] = d;
            }
        }
        let total: f64 = d2.iter().sum();
        let next = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut pick = n - 1;
            for (i, d) in d2.iter().enumerate() {
                acc += d;
                if acc > target && *d > 0.0 {
                    pick = i;
                    break;
                }
            }
            // Rounding can leave `pick` on a point already chosen (d = 0):
            // take the farthest point instead.
            if d2[pick] == 0.0 {
                pick = argmax(&d2);
            }
            pick
        } else {
            (0..n).find(|i| !chosen.contains(i)).unwrap_or(0)
        };
        chosen.push(next);
    }
    x.select(Axis(0), &chosen)
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Fits k-means with `restarts` k-means++ starts; the lowest inertia wins
/// (the earlier start on a tie). Returns the centroids (k × features) and
/// the inertia (mean squared distance to the nearest centroid).
pub fn fit(
    x: ArrayView2<f64>,
    k: usize,
    restarts: usize,
    rng: &mut impl Rng,
) -> Result<(Array2<f64>, f64)> {
    let tol = tolerance(x);
    let runs = starts(x, k, restarts, rng)?
        .into_iter()
        .map(|init| lloyd(x, k, init, tol))
        .collect::<Result<Vec<_>>>()?;
    lowest_inertia(runs)
}

/// The k-means++ starts of `fit`, drawn in turn from `rng` (the only
/// random draws of a fit, so the Lloyd runs can go in any order).
fn starts(
    x: ArrayView2<f64>,
    k: usize,
    restarts: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Array2<f64>>> {
    if x.nrows() < k {
        return Err(Error::Internal(format!(
            "k-means with k = {k} on {} rows",
            x.nrows()
        )));
    }
    Ok((0..restarts.max(1))
        .map(|_| kmeans_plus_plus(x, k, rng))
        .collect())
}

/// Lloyd iterations by linfa from one start: the centroids and their
/// inertia.
fn lloyd(x: ArrayView2<f64>, k: usize, init: Array2<f64>, tol: f64) -> Result<(Array2<f64>, f64)> {
    let dataset = DatasetBase::from(x);
    // `params` carries linfa's own RNG, which a precomputed start never uses.
    let model = KMeans::params(k)
        .init_method(KMeansInit::Precomputed(init))
        .n_runs(1)
        .max_n_iterations(MAX_ITERATIONS)
        .tolerance(tol)
        .fit(&dataset)
        .map_err(|e| Error::Model {
            model: "kmeans".into(),
            reason: format!("k = {k}: {e}"),
        })?;
    // linfa reports the inertia of the last assignment step (before the
    // final centroid update); ours is of the centroids we keep.
    let (_, dists) = assign(model.centroids().view(), x);
    let inertia = dists.iter().map(|d| d * d).sum::<f64>() / x.nrows() as f64;
    Ok((model.centroids().clone(), inertia))
}

/// The run with the lowest inertia, the earlier one on a tie.
fn lowest_inertia(runs: Vec<(Array2<f64>, f64)>) -> Result<(Array2<f64>, f64)> {
    let mut best: Option<(Array2<f64>, f64)> = None;
    for run in runs {
        if best.as_ref().is_none_or(|b| run.1 < b.1) {
            best = Some(run);
        }
    }
    best.ok_or_else(|| Error::Internal("no k-means start ran".into()))
}

/// The nearest centroid of every row (the lowest index on a tie, as
/// linfa's `predict`) and the Euclidean distance to it.
///
/// Our own loop rather than linfa's `predict`: linfa's distance type lives
/// in `linfa-nn`, which attune does not depend on, so a fitted `KMeans`
/// cannot be named in a struct; the centroids are all it takes.
pub fn assign(centroids: ArrayView2<f64>, x: ArrayView2<f64>) -> (Vec<usize>, Vec<f64>) {
    // A million customers are assigned in blocks on every core; each row's
    // answer is its own, so the blocks only change who computes it.
    let blocks: Vec<(usize, usize)> = (0..x.nrows())
        .step_by(ASSIGN_BLOCK)
        .map(|start| (start, (start + ASSIGN_BLOCK).min(x.nrows())))
        .collect();
    let assign_block = |&(start, end): &(usize, usize)| {
        x.slice(ndarray::s![start..end, ..])
            .rows()
            .into_iter()
            .map(|row| {
                let (l, d2) = nearest(centroids, row);
                (l, d2.sqrt())
            })
            .collect::<Vec<_>>()
    };
    crate::parallel::map(&blocks, crate::parallel::threads(), &assign_block)
        .into_iter()
        .flatten()
        .unzip()
}

/// Rows per block of [`assign`]: large enough that a block costs far more
/// than handing it to a thread, small enough that the cores share the end.
const ASSIGN_BLOCK: usize = 65_536;

fn nearest(centroids: ArrayView2<f64>, row: ArrayView1<f64>) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centroid) in centroids.rows().into_iter().enumerate() {
        let d2 = row
            .iter()
            .zip(centroid.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
        if d2 < best.1 {
            best = (c, d2);
        }
    }
    best
}

/// Tries every k in `k_min..=min(k_max, n - 1)` and picks the best
/// silhouette. `Ok(None)` when fewer rows than `k_min + 1` leave nothing to
/// try.
pub fn search(x: ArrayView2<f64>, p: &SearchParams) -> Result<Option<Search>> {
    let n = x.nrows();
    let k_max = p.k_max.min(n.saturating_sub(1));
    if n == 0 || k_max < p.k_min {
        return Ok(None);
    }
    let fit_idx = sample_indices(n, p.fit_sample, &mut stream(p.seed, STREAM_FIT_SAMPLE));
    let fit_x = x.select(Axis(0), &fit_idx);
    let sil_idx = sample_indices(
        n,
        p.silhouette_sample,
        &mut stream(p.seed, STREAM_SILHOUETTE_SAMPLE),
    );
    let sil_x = x.select(Axis(0), &sil_idx);
    let distances = PairwiseDistances::new(sil_x.view());
    // Each k has its own RNG stream, used only to draw its starts: drawn
    // first, the starts' Lloyd runs are independent and run on every core.
    // The segment job runs alone in the nightly (every later job reads its
    // segments), and one core ran the 28 runs of the default range in turn.
    let tol = tolerance(fit_x.view());
    let mut runs = Vec::new();
    for k in p.k_min..=k_max {
        let mut rng = stream(p.seed, STREAM_STARTS + k as u64);
        for (i, init) in starts(fit_x.view(), k, p.restarts, &mut rng)?
            .into_iter()
            .enumerate()
        {
            runs.push((k, i, init));
        }
    }
    // The slowest (largest k) first, so the last runs taken are short ones;
    // the results come back in this order whatever the threads did.
    runs.sort_by_key(|&(k, i, _)| (std::cmp::Reverse(k), i));
    let lloyd_run =
        |(k, _, init): &(usize, usize, Array2<f64>)| lloyd(fit_x.view(), *k, init.clone(), tol);
    let mut done = crate::parallel::map(&runs, crate::parallel::threads(), &lloyd_run).into_iter();
    let mut best = Vec::new();
    for k in (p.k_min..=k_max).rev() {
        let of_k = (&mut done)
            .take(p.restarts.max(1))
            .collect::<Result<Vec<_>>>()?;
        best.push((k, lowest_inertia(of_k)?));
    }
    best.reverse();
    let scored = |(k, (centroids, inertia)): &(usize, (Array2<f64>, f64))| {
        let (labels, _) = assign(centroids.view(), sil_x.view());
        KFit {
            k: *k,
            centroids: centroids.clone(),
            inertia: *inertia,
            silhouette: distances.silhouette(&labels),
        }
    };
    let fits = crate::parallel::map(&best, crate::parallel::threads(), &scored);
    let mut chosen = 0;
    for (i, f) in fits.iter().enumerate() {
        let better = match (f.silhouette, fits[chosen].silhouette) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            _ => false,
        };
        if better {
            chosen = i;
        }
    }
    Ok(Some(Search {
        fits,
        chosen,
        fit_rows: fit_idx.len(),
        silhouette_rows: sil_idx.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    /// Reference: scikit-learn 1.5's `sklearn.cluster._kmeans._tolerance`,
    /// `np.mean(np.var(X, axis=0)) * tol`, for X = [[0, 0], [2, 4]] and
    /// tol = 1e-4: the variances are 1 and 4, so 2.5e-4 on the squared
    /// shift, whose square root linfa compares the shift with.
    #[test]
    fn tolerance_is_scikit_learns_on_the_squared_shift() {
        let x = ndarray::array![[0.0, 0.0], [2.0, 4.0]];
        assert!((tolerance(x.view()).powi(2) - 2.5e-4).abs() < 1e-15);
        let constant = ndarray::array![[1.0, 3.0], [1.0, 3.0]];
        assert!(tolerance(constant.view()) > 0.0);
    }

    /// `k` well-separated Gaussian blobs of `per` points in `d` dimensions
    /// (centres on a scaled simplex-like grid, sd 1).
    pub fn blobs(
        k: usize,
        per: usize,
        d: usize,
        spread: f64,
        seed: u64,
    ) -> (Array2<f64>, Vec<usize>) {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut x = Array2::zeros((k * per, d));
        let mut truth = Vec::with_capacity(k * per);
        for c in 0..k {
            for p in 0..per {
                let r = c * per + p;
                for j in 0..d {
                    // One axis per blob, and a second one for blobs past `d`.
                    let centre = spread
                        * (f64::from(u8::from(j == c % d))
                            + (c / d) as f64 * f64::from(u8::from(j == (c + 1) % d)));
                    let z: f64 = StandardNormal.sample(&mut rng);
                    x[[r, j]] = centre + z;
                }
                truth.push(c);
            }
        }
        (x, truth)
    }

    fn params(seed: u64) -> SearchParams {
        SearchParams {
            k_min: 2,
            k_max: 8,
            fit_sample: 50_000,
            silhouette_sample: 600,
            restarts: 3,
            seed,
        }
    }

    /// Rand index-style check: points planted together are clustered
    /// together, and apart are apart.
    fn agreement(a: &[usize], b: &[usize]) -> f64 {
        let n = a.len();
        let (mut same, mut pairs) = (0u64, 0u64);
        for i in 0..n {
            for j in (i + 1)..n {
                pairs += 1;
                same += u64::from((a[i] == a[j]) == (b[i] == b[j]));
            }
        }
        same as f64 / pairs as f64
    }

    #[test]
    fn recovers_planted_k_and_membership() {
        for k in [3, 4, 5] {
            let (x, truth) = blobs(k, 120, 5, 9.0, 7 + k as u64);
            let s = search(x.view(), &params(11))
                .expect("search")
                .expect("some k");
            assert_eq!(s.best().k, k, "planted {k} blobs");
            let (labels, _) = assign(s.best().centroids.view(), x.view());
            let agree = agreement(&labels, &truth);
            assert!(agree > 0.99, "k = {k}: pair agreement {agree}");
            let sil: Vec<String> = s
                .fits
                .iter()
                .map(|f| format!("{}: {:?}", f.k, f.silhouette))
                .collect();
            assert!(s.best().silhouette.expect("defined") > 0.5, "{sil:?}");
        }
    }

    #[test]
    fn same_seed_same_fit_other_seed_may_differ_but_agrees() {
        let (x, _) = blobs(4, 100, 3, 8.0, 3);
        let a = search(x.view(), &params(5)).expect("a").expect("a");
        let b = search(x.view(), &params(5)).expect("b").expect("b");
        assert_eq!(a.best().k, b.best().k);
        assert_eq!(a.best().centroids, b.best().centroids);
        for (fa, fb) in a.fits.iter().zip(&b.fits) {
            assert_eq!(fa.silhouette, fb.silhouette);
            assert_eq!(fa.inertia, fb.inertia);
        }
        let c = search(x.view(), &params(6)).expect("c").expect("c");
        assert_eq!(c.best().k, 4, "another seed finds the same structure");
    }

    #[test]
    fn samples_are_sorted_unique_and_bounded() {
        let mut rng = stream(1, 1);
        let s = sample_indices(1000, 100, &mut rng);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| i < 1000));
        assert_eq!(sample_indices(5, 100, &mut rng), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn plus_plus_spreads_starts_and_handles_duplicates() {
        let (x, truth) = blobs(3, 50, 2, 20.0, 9);
        let mut rng = stream(2, 3);
        let c = kmeans_plus_plus(x.view(), 3, &mut rng);
        // With blobs this far apart, D² sampling puts one start in each blob.
        let mut hit = [false; 3];
        for row in c.rows() {
            let i = x
                .rows()
                .into_iter()
                .position(|r| r == row)
                .expect("starts are data points");
            hit[truth[i]] = true;
        }
        assert_eq!(hit, [true; 3]);
        let same = Array2::<f64>::ones((5, 2));
        let c = kmeans_plus_plus(same.view(), 3, &mut rng);
        assert_eq!(c.nrows(), 3);
    }

    #[test]
    fn too_few_rows_leave_nothing_to_search() {
        let x = Array2::<f64>::zeros((2, 3));
        assert!(search(x.view(), &params(1)).expect("ok").is_none());
        let x = Array2::<f64>::zeros((0, 3));
        assert!(search(x.view(), &params(1)).expect("ok").is_none());
    }

    /// The search runs every (k, start) Lloyd run on every core; each k's
    /// fit must still be the one-thread [`fit`] of that k's own stream
    /// (the reference), bit for bit, and each silhouette that of its fit.
    #[test]
    fn the_search_on_every_core_is_each_ks_serial_fit() {
        let (x, _) = blobs(5, 120, 3, 6.0, 21);
        let p = params(13);
        let s = search(x.view(), &p).expect("search").expect("fits");
        assert_eq!(
            s.fits.iter().map(|f| f.k).collect::<Vec<_>>(),
            (2..=8).collect::<Vec<_>>(),
            "in increasing k"
        );
        let sil_idx = sample_indices(
            x.nrows(),
            p.silhouette_sample,
            &mut stream(p.seed, STREAM_SILHOUETTE_SAMPLE),
        );
        let sil_x = x.select(Axis(0), &sil_idx);
        for f in &s.fits {
            let mut rng = stream(p.seed, STREAM_STARTS + f.k as u64);
            let (centroids, inertia) = fit(x.view(), f.k, p.restarts, &mut rng).expect("fit");
            assert_eq!(f.centroids, centroids, "k = {}", f.k);
            assert_eq!(f.inertia.to_bits(), inertia.to_bits(), "k = {}", f.k);
            let (labels, _) = assign(centroids.view(), sil_x.view());
            let silhouette = crate::segment::silhouette::silhouette_score(sil_x.view(), &labels);
            let (a, b) = (f.silhouette.expect("defined"), silhouette.expect("defined"));
            assert!((a - b).abs() < 1e-12, "k = {}: {a} vs {b}", f.k);
        }
    }

    /// More rows than one block of [`assign`]: the blocks, done on every
    /// core, come back in row order with each row's own nearest centroid.
    #[test]
    fn assignment_in_blocks_keeps_row_order() {
        let (x, _) = blobs(3, ASSIGN_BLOCK / 2 + 7, 2, 5.0, 8);
        assert!(x.nrows() > ASSIGN_BLOCK, "{} rows", x.nrows());
        let centroids = ndarray::array![[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]];
        let (labels, dists) = assign(centroids.view(), x.view());
        assert_eq!((labels.len(), dists.len()), (x.nrows(), x.nrows()));
        for (i, row) in x.rows().into_iter().enumerate() {
            let (l, d2) = nearest(centroids.view(), row);
            assert_eq!(
                (labels[i], dists[i].to_bits()),
                (l, d2.sqrt().to_bits()),
                "row {i}"
            );
        }
    }

    #[test]
    fn assignment_is_to_the_nearest_centroid() {
        let (x, _) = blobs(2, 30, 2, 10.0, 4);
        let mut rng = stream(3, 3);
        let (centroids, inertia) = fit(x.view(), 2, 2, &mut rng).expect("fit");
        let (labels, d) = assign(centroids.view(), x.view());
        let mean_sq = d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64;
        assert!(
            (mean_sq - inertia).abs() < 1e-6 * inertia.max(1.0),
            "{mean_sq} vs {inertia}"
        );
        for (i, row) in x.rows().into_iter().enumerate() {
            assert!(labels[i] < 2);
            for c in centroids.rows() {
                let other = row
                    .iter()
                    .zip(c.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                assert!(d[i] <= other + 1e-12, "nearest centroid");
            }
        }
    }
}
