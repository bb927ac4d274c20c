//! Train/validation split, stratified by category and deterministic for a seed. Augmented
//! samples always go to the training side.

use std::collections::BTreeMap;

use crate::rng::hash_bytes;
use crate::sample::Sample;

/// Indices of the training and validation samples, each in input order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Splits `samples`: in each category, `round(n * val_fraction)` of the non-augmented samples
/// (ordered by a seeded hash of their id) go to validation.
pub fn split(samples: &[Sample], val_fraction: f64, seed: u64) -> Split {
    let frac = val_fraction.clamp(0.0, 1.0);
    let mut by_cat: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        if !s.is_augmented() {
            by_cat.entry(s.category()).or_default().push(i);
        }
    }
    let mut is_val = vec![false; samples.len()];
    for members in by_cat.values_mut() {
        members.sort_by_key(|&i| (hash_bytes(seed, samples[i].id.as_bytes()), i));
        let n_val = (members.len() as f64 * frac).round() as usize;
        for &i in members.iter().take(n_val) {
            is_val[i] = true;
        }
    }
    let mut out = Split::default();
    for (i, v) in is_val.into_iter().enumerate() {
        if v {
            out.val.push(i);
        } else {
            out.train.push(i);
        }
    }
    out
}
