//! Duplicate detection: exact duplicates (same normalised listing text) and near duplicates
//! (MinHash over word 5-gram shingles, banded LSH, verified by the estimated Jaccard similarity).
//!
//! Threshold: two samples are near duplicates when the estimated Jaccard similarity of their
//! word 5-gram shingle sets is at least 0.8 (configurable). The signature has 120 one-permutation
//! MinHash bins in 20 bands of 6 rows: a pair at similarity 0.8 becomes a candidate with
//! probability 0.998, a pair at 0.5 with probability 0.27 (and is then rejected by verification).
//! In each cluster the sample with the highest score is kept (the earliest on a tie).

use rayon::prelude::*;
use serde::Serialize;

use crate::rng::mix64;
use crate::sample::Sample;
use crate::text::normalise;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DedupConfig {
    /// Words per shingle.
    pub shingle_words: usize,
    /// Minimum estimated Jaccard similarity of two near duplicates, 0–1.
    pub threshold: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            shingle_words: 5,
            threshold: 0.8,
        }
    }
}

const BINS: usize = 120;
const BANDS: usize = 20;
const ROWS: usize = BINS / BANDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DupKind {
    Exact,
    Near,
}

/// A group of duplicates: the one kept and the ones dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub kind: DupKind,
    pub kept: String,
    pub dropped: Vec<String>,
    /// Lowest estimated similarity between the kept sample and a dropped one (1 for exact).
    pub min_similarity: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DedupOutcome {
    /// Indices (into the input) of the samples kept, in input order.
    pub keep: Vec<usize>,
    pub clusters: Vec<Cluster>,
    pub exact_dropped: usize,
    pub near_dropped: usize,
}

/// The text a sample is compared by: its listing (or its conversation when it has none).
pub fn dedup_text(s: &Sample) -> String {
    match &s.listing {
        Some(l) => {
            let mut t = String::with_capacity(l.description.len() + 256);
            t.push_str(&l.title);
            for f in &l.features {
                t.push_str(" \n ");
                t.push_str(f);
            }
            t.push_str(" \n ");
            t.push_str(&l.description);
            t
        }
        None => s
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A MinHash signature (one-permutation hashing with rotation densification).
pub fn signature(normalised: &str, shingle_words: usize) -> [u32; BINS] {
    signature_of_words(&word_hashes(normalised.as_bytes()), shingle_words)
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01B3;

/// `hash_bytes(0, w)` of every non-empty space-separated word.
fn word_hashes(b: &[u8]) -> Vec<u64> {
    let mut out = Vec::with_capacity(b.len() / 5 + 1);
    let (mut h, mut len) = (FNV_OFFSET, 0);
    for &c in b {
        if c == b' ' {
            if len > 0 {
                out.push(mix64(h));
            }
            (h, len) = (FNV_OFFSET, 0);
        } else {
            h = (h ^ c as u64).wrapping_mul(FNV_PRIME);
            len += 1;
        }
    }
    if len > 0 {
        out.push(mix64(h));
    }
    out
}

/// [`signature`] from the word hashes.
fn signature_of_words(word_hashes: &[u64], shingle_words: usize) -> [u32; BINS] {
    let k = shingle_words.max(1);
    let mut sig = [u32::MAX; BINS];
    let mut add = |h: u64| {
        let bin = ((h >> 32) as usize * BINS) >> 32;
        let v = h as u32;
        if v < sig[bin] {
            sig[bin] = v;
        }
    };
    if word_hashes.len() <= k {
        let mut h = 0u64;
        for w in word_hashes {
            h = mix64(h.rotate_left(5) ^ w);
        }
        add(h);
    } else {
        for win in word_hashes.windows(k) {
            let mut h = 0u64;
            for w in win {
                h = mix64(h.rotate_left(5) ^ w);
            }
            add(h);
        }
    }
    // Densify: an empty bin borrows from the next filled bin to its right.
    if sig.contains(&u32::MAX) && sig.iter().any(|&v| v != u32::MAX) {
        let orig = sig;
        for i in 0..BINS {
            if orig[i] == u32::MAX {
                let mut j = (i + 1) % BINS;
                let mut d = 1u64;
                while orig[j] == u32::MAX {
                    j = (j + 1) % BINS;
                    d += 1;
                }
                sig[i] = mix64(orig[j] as u64 ^ d.wrapping_mul(0x9E37_79B9)) as u32;
            }
        }
    }
    sig
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u32; BINS], b: &[u32; BINS]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / BINS as f64
}

struct UnionFind(Vec<u32>);

impl UnionFind {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.0[x as usize] != x {
            let p = self.0[x as usize];
            self.0[x as usize] = self.0[p as usize];
            x = p;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.0[hi as usize] = lo;
        }
    }
}

/// Fingerprints of one text: a 128-bit hash of the whole (exact duplicates) and a MinHash
/// signature (near duplicates). The text itself is not kept, so a million samples fit in memory.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    pub exact: (u64, u64),
    pub signature: [u32; BINS],
}

impl Fingerprint {
    /// Fingerprints a normalised text (see [`crate::text::normalise`]).
    pub fn of(normalised: &str, shingle_words: usize) -> Self {
        let b = normalised.as_bytes();
        // `hash_bytes(1, b)` and `hash_bytes(2, b)` in one loop: two independent chains of
        // multiplications overlap, where two loops would run them one after the other.
        let (mut h1, mut h2) = (FNV_OFFSET ^ 1, FNV_OFFSET ^ 2);
        for &c in b {
            h1 = (h1 ^ c as u64).wrapping_mul(FNV_PRIME);
            h2 = (h2 ^ c as u64).wrapping_mul(FNV_PRIME);
        }
        Self {
            exact: (mix64(h1), mix64(h2) ^ b.len() as u64),
            signature: signature_of_words(&word_hashes(b), shingle_words),
        }
    }
}

/// Finds duplicates among `texts` (already normalised). `rank[i]` orders the samples for keeping
/// (higher is kept; ties keep the earliest); `ids` names them in the report.
pub fn dedup_texts(
    texts: &[String],
    rank: &[f64],
    ids: &[String],
    cfg: DedupConfig,
) -> DedupOutcome {
    let fps: Vec<Fingerprint> = texts
        .par_iter()
        .map(|t| Fingerprint::of(t, cfg.shingle_words))
        .collect();
    dedup_fingerprints(&fps, rank, ids, cfg)
}

/// Finds duplicates among fingerprinted samples.
pub fn dedup_fingerprints(
    fps: &[Fingerprint],
    rank: &[f64],
    ids: &[String],
    cfg: DedupConfig,
) -> DedupOutcome {
    let n = fps.len();
    let better = |a: usize, b: usize| rank[a] > rank[b] || (rank[a] == rank[b] && a < b);

    // Exact duplicates: equal 128-bit hashes of the normalised text.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.par_sort_unstable_by_key(|&i| (fps[i as usize].exact, i));
    let mut exact_of = vec![u32::MAX; n];
    let mut clusters = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && fps[order[j] as usize].exact == fps[order[i] as usize].exact {
            j += 1;
        }
        let group: Vec<usize> = order[i..j].iter().map(|&x| x as usize).collect();
        let best = group
            .iter()
            .copied()
            .reduce(|x, y| if better(x, y) { x } else { y })
            .unwrap_or(group[0]);
        for &g in &group {
            exact_of[g] = best as u32;
        }
        if group.len() > 1 {
            let mut dropped: Vec<usize> = group.into_iter().filter(|&g| g != best).collect();
            dropped.sort_unstable();
            clusters.push(Cluster {
                kind: DupKind::Exact,
                kept: ids[best].clone(),
                dropped: dropped.iter().map(|&d| ids[d].clone()).collect(),
                min_similarity: 1.0,
            });
        }
        i = j;
    }
    let reps: Vec<usize> = (0..n).filter(|&i| exact_of[i] as usize == i).collect();
    let exact_dropped = n - reps.len();

    // Near duplicates among the exact representatives.
    let sig = |r: u32| &fps[reps[r as usize]].signature;
    let m = reps.len();
    let mut uf = UnionFind((0..m as u32).collect());
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(m);
    for band in 0..BANDS {
        keys.clear();
        keys.par_extend((0..m as u32).into_par_iter().map(|r| {
            let rows = &sig(r)[band * ROWS..(band + 1) * ROWS];
            let mut h = band as u64;
            for &v in rows {
                h = mix64(h ^ v as u64);
            }
            (h, r)
        }));
        keys.par_sort_unstable();
        let mut s = 0;
        while s < keys.len() {
            let mut e = s + 1;
            while e < keys.len() && keys[e].0 == keys[s].0 {
                e += 1;
            }
            let head = keys[s].1;
            for &(_, r) in &keys[s + 1..e] {
                if uf.find(r) != uf.find(head) && similarity(sig(head), sig(r)) >= cfg.threshold {
                    uf.union(head, r);
                }
            }
            s = e;
        }
    }
    let mut groups: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for r in 0..m as u32 {
        let root = uf.find(r);
        groups.entry(root).or_default().push(r);
    }
    let mut dropped_near = vec![false; n];
    let mut near_dropped = 0;
    for members in groups.values().filter(|g| g.len() > 1) {
        let best = members
            .iter()
            .copied()
            .reduce(|x, y| {
                if better(reps[x as usize], reps[y as usize]) {
                    x
                } else {
                    y
                }
            })
            .unwrap_or(members[0]);
        let mut dropped = Vec::new();
        let mut min_sim: f64 = 1.0;
        for &r in members {
            if r != best {
                dropped.push(reps[r as usize]);
                dropped_near[reps[r as usize]] = true;
                min_sim = min_sim.min(similarity(sig(best), sig(r)));
            }
        }
        near_dropped += dropped.len();
        dropped.sort_unstable();
        clusters.push(Cluster {
            kind: DupKind::Near,
            kept: ids[reps[best as usize]].clone(),
            dropped: dropped.iter().map(|&d| ids[d].clone()).collect(),
            min_similarity: min_sim,
        });
    }
    let keep = reps.into_iter().filter(|&i| !dropped_near[i]).collect();
    DedupOutcome {
        keep,
        clusters,
        exact_dropped,
        near_dropped,
    }
}

/// Finds duplicates among samples; `scores` (same order) decides which one of a cluster is kept.
pub fn dedup(samples: &[Sample], scores: &[u8], cfg: DedupConfig) -> DedupOutcome {
    let texts: Vec<String> = samples
        .par_iter()
        .map(|s| normalise(&dedup_text(s)))
        .collect();
    let rank: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
    let ids: Vec<String> = samples.iter().map(|s| s.id.clone()).collect();
    dedup_texts(&texts, &rank, &ids, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::hash_bytes;

    fn words(n: usize, seed: u64) -> String {
        let mut r = crate::rng::Rng::new(seed);
        (0..n)
            .map(|_| format!("w{}", r.below(5000)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn finds_exact_and_near_duplicates_and_keeps_the_best() {
        let a = words(200, 1);
        let mut near: Vec<&str> = a.split(' ').collect();
        near[100] = "changed"; // one word of 200: Jaccard of 5-shingles ~0.95
        let near = near.join(" ");
        let texts = vec![a.clone(), words(200, 2), a.clone(), near, words(200, 3)];
        let ids: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
        let rank = vec![50.0, 60.0, 90.0, 70.0, 10.0];
        let out = dedup_texts(&texts, &rank, &ids, DedupConfig::default());
        assert_eq!(out.keep, vec![1, 2, 4]);
        assert_eq!(out.exact_dropped, 1);
        assert_eq!(out.near_dropped, 1);
        assert!(out
            .clusters
            .iter()
            .any(|c| c.kind == DupKind::Exact && c.kept == "s2" && c.dropped == ["s0"]));
        assert!(out
            .clusters
            .iter()
            .any(|c| c.kind == DupKind::Near && c.kept == "s2" && c.dropped == ["s3"]));
    }

    /// The one-pass fingerprint equals the straightforward one (hashes of the whole text and of
    /// each word with `hash_bytes`).
    #[test]
    fn fingerprints_match_the_straightforward_hashes() {
        let mut r = crate::rng::Rng::new(3);
        for i in 0..3000 {
            let mut t = words(r.below(40), i);
            if i % 7 == 0 {
                t = format!(" {t}  x ");
            }
            let b = t.as_bytes();
            let f = Fingerprint::of(&t, 5);
            assert_eq!(
                f.exact,
                (hash_bytes(1, b), hash_bytes(2, b) ^ b.len() as u64)
            );
            let hashes: Vec<u64> = t
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| hash_bytes(0, w.as_bytes()))
                .collect();
            assert_eq!(word_hashes(b), hashes);
            assert_eq!(f.signature, signature(&t, 5));
        }
    }

    #[test]
    fn different_texts_are_not_duplicates() {
        let texts: Vec<String> = (0..50).map(|i| words(150, 100 + i)).collect();
        let ids: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        let out = dedup_texts(&texts, &[0.0; 50], &ids, DedupConfig::default());
        assert_eq!(out.keep.len(), 50);
        assert!(out.clusters.is_empty());
    }
}
