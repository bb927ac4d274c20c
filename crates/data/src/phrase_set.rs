//! Lexicon phrases and the one search for them that the rubric and [`crate::lexicon`] run.
//!
//! What is found: at each position where a phrase may start, the longest phrase (ASCII case
//! aside); it counts when it also ends on a word boundary, and either way the search goes on
//! after it. A phrase may start at a word start (a character after one that is not
//! alphanumeric, or the first) or at a character that is not alphanumeric itself ("% off" in
//! "50% off"), never inside a word; one that ends in a letter or digit must not be followed by
//! one ("sale" is no phrase in "wholesale" or "salesman").
//!
//! An Aho-Corasick search over all positions finds the same phrases but also those inside
//! words, which had to be dropped afterwards; such a match also used up the text it covered, so
//! that "xbest buy now" hid "buy now" behind "best buy". Looking at word starts only is that rule
//! made exact, and fast: the word starts of ASCII text come from bit masks of 64 bytes, each is
//! tested against bitmaps of the phrases' first three and four bytes (case folded), which rule
//! out almost all of them, and only at the rest does an anchored search walk the automaton.
//! A test compares the search with a direct implementation of the definition above.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};

use crate::byte_class::block64;

/// Bits of the prefix bitmaps' hash: 2^12 bits, 512 bytes each, so that they stay in the first
/// cache level; a few hundred phrases set a few percent of the bits.
const HASH_BITS: u32 = 12;

/// Folds ASCII letters to one case, and some other bytes with them: `x | 0x20` in every byte.
/// Equal bytes up to ASCII case stay equal, which is all a filter needs.
const FOLD: u32 = 0x2020_2020;

/// A bitmap of hashed prefixes.
#[derive(Debug, Clone)]
struct Bitmap(Box<[u64]>);

impl Bitmap {
    fn new() -> Self {
        Self(vec![0u64; 1 << (HASH_BITS - 6)].into_boxed_slice())
    }

    /// The hash of the first bytes of `x` (little endian) kept by `mask`, folded.
    #[inline]
    fn slot(x: u32, mask: u32) -> usize {
        (((x | FOLD) & mask).wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
    }

    fn insert(&mut self, x: u32, mask: u32) {
        let s = Self::slot(x, mask);
        self.0[s >> 6] |= 1 << (s & 63);
    }

    #[inline]
    fn contains(&self, x: u32, mask: u32) -> bool {
        let s = Self::slot(x, mask);
        self.0[s >> 6] >> (s & 63) & 1 == 1
    }
}

const MASK3: u32 = 0x00FF_FFFF;
const MASK4: u32 = 0xFFFF_FFFF;

/// Phrases compiled for [`PhraseSet::find`].
#[derive(Debug, Clone)]
pub struct PhraseSet {
    /// Anchored searches only: the longest phrase that starts at a position.
    anchored: AhoCorasick,
    /// First three bytes of every phrase of three bytes or more.
    first3: Bitmap,
    /// First three bytes of the phrases of exactly three bytes.
    exact3: Bitmap,
    /// First four bytes of the phrases of four bytes or more.
    first4: Bitmap,
    /// First bytes (folded) of the phrases shorter than three bytes.
    short_first: [bool; 256],
    /// The ASCII bytes other than letters and digits that start a phrase ("%" of "% off"), or
    /// `None` when there are more than [`MAX_PUNCT_FIRST`] (then every such byte is looked at).
    punct_first: Option<Vec<u8>>,
    /// No phrase holds a `\n` (see [`PhraseSet::joinable`]).
    joinable: bool,
}

/// Most distinct punctuation bytes that start phrases and are found by comparing 64 bytes at a
/// time.
const MAX_PUNCT_FIRST: usize = 8;

/// A phrase found: the index of the phrase and its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhraseMatch {
    pub phrase: usize,
    pub start: usize,
    pub end: usize,
}

/// The first four bytes of `b` as a little-endian word, zero-padded.
#[inline]
fn word_at(b: &[u8]) -> u32 {
    match b.first_chunk::<4>() {
        Some(w) => u32::from_le_bytes(*w),
        None => {
            let mut w = [0u8; 4];
            w[..b.len()].copy_from_slice(b);
            u32::from_le_bytes(w)
        }
    }
}

impl PhraseSet {
    /// Compiles `phrases` (none empty), matched ASCII-case-insensitively.
    pub fn new<I, P>(phrases: I) -> Result<Self, aho_corasick::BuildError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let phrases: Vec<P> = phrases.into_iter().collect();
        let anchored = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .build(&phrases)?;
        let mut set = Self {
            anchored,
            first3: Bitmap::new(),
            exact3: Bitmap::new(),
            first4: Bitmap::new(),
            short_first: [false; 256],
            punct_first: Some(Vec::new()),
            joinable: true,
        };
        for p in &phrases {
            let p = p.as_ref();
            set.joinable &= !p.contains(&b'\n');
            if let Some(&c) = p
                .first()
                .filter(|c| c.is_ascii() && !c.is_ascii_alphanumeric())
            {
                if let Some(v) = set.punct_first.as_mut().filter(|v| !v.contains(&c)) {
                    v.push(c);
                    if v.len() > MAX_PUNCT_FIRST {
                        set.punct_first = None;
                    }
                }
            }
            let w = word_at(p);
            match p.len() {
                0 => {}
                1 | 2 => set.short_first[(p[0] | 0x20) as usize] = true,
                3 => {
                    set.first3.insert(w, MASK3);
                    set.exact3.insert(w, MASK3);
                }
                _ => {
                    set.first3.insert(w, MASK3);
                    set.first4.insert(w, MASK4);
                }
            }
        }
        Ok(set)
    }

    /// Whether texts joined by `\n` can be searched at once: when no phrase holds a `\n`, the
    /// phrases of `a\nb` are those of `a` and those of `b` (moved by `a.len() + 1`), since `\n`
    /// is no letter or digit (each text starts and ends on a word boundary as it does alone) and
    /// no match can span it.
    pub fn joinable(&self) -> bool {
        self.joinable
    }

    /// Whether a phrase may start at the first byte of `at` (`w`: its first four bytes).
    #[inline]
    fn may_start(&self, w: u32, first: u8) -> bool {
        self.short_first[(first | 0x20) as usize]
            || (self.first3.contains(w, MASK3)
                && (self.first4.contains(w, MASK4) || self.exact3.contains(w, MASK3)))
    }

    /// The phrases in `hay` on word boundaries, left to right, not overlapping (see the module
    /// documentation).
    pub fn find(&self, hay: &str) -> Vec<PhraseMatch> {
        let mut out = Vec::new();
        // The end of the last match: no phrase starts before it.
        let mut resume = 0;
        for_starts(hay, self.punct_first.as_deref(), |p| {
            self.longest_at(hay, p, &mut resume, &mut out)
        });
        out
    }

    /// The longest phrase at `p` unless `p` is before `resume`, into `out` if it ends on a word
    /// boundary; `resume` moves to its end.
    #[inline(always)]
    fn longest_at(&self, hay: &str, p: usize, resume: &mut usize, out: &mut Vec<PhraseMatch>) {
        if p < *resume {
            return;
        }
        let b = hay.as_bytes();
        let rest = &b[p..];
        if !self.may_start(word_at(rest), rest[0]) {
            return;
        }
        let input = Input::new(b).span(p..b.len()).anchored(Anchored::Yes);
        if let Some(m) = self.anchored.find(input) {
            *resume = m.end();
            if ends_on_boundary(hay, m.end()) {
                out.push(PhraseMatch {
                    phrase: m.pattern().as_usize(),
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
}

/// Whether a phrase that ends at `end` of `hay` ends on a word boundary: not between two letters
/// or digits.
fn ends_on_boundary(hay: &str, end: usize) -> bool {
    let alnum = |c: char| c.is_alphanumeric();
    !(hay[..end].chars().next_back().is_some_and(alnum)
        && hay[end..].chars().next().is_some_and(alnum))
}

/// Calls `f` with every position of `hay` where a phrase may start, in order: word starts (a
/// letter or digit, in Unicode's sense, after a character that is neither, or first), the ASCII
/// bytes in `punct` (every ASCII byte that is neither when `punct` is `None`), and the non-ASCII
/// characters that are neither. The bytes are classified 64 at a time as bit masks; only the
/// non-ASCII characters (a curly quote or a dash in English text) are decoded.
fn for_starts(hay: &str, punct: Option<&[u8]>, mut f: impl FnMut(usize)) {
    let b = hay.as_bytes();
    let mut prev_alnum = 0u64; // the last block's alphanumeric mask
    let mut spill = 0u64; // bytes of this block that end a non-ASCII letter or digit
    for k in 0..b.len().div_ceil(64) {
        let mut pad = [0u8; 64];
        let block = block64(b, k, &mut pad); // zero padding is in no class
        let len = (b.len() - 64 * k).min(64);
        let (ascii_alnum, high) = alnum_high_masks(block);
        let mut alnum = ascii_alnum | std::mem::take(&mut spill);
        let mut others = match punct {
            None => !ascii_alnum & !high,
            Some(set) => set.iter().fold(0, |m, &c| m | eq_mask(block, c)),
        };
        if high != 0 {
            // The first bytes of non-ASCII characters: letters and digits join the alphanumeric
            // mask with all their bytes (the next block's too), the others may start a phrase.
            let mut leads = high & !continuation_mask(block);
            while leads != 0 {
                let j = leads.trailing_zeros();
                leads &= leads - 1;
                let Some(c) = hay[64 * k + j as usize..].chars().next() else {
                    break;
                };
                if c.is_alphanumeric() {
                    let bytes = ((1u128 << c.len_utf8()) - 1) << j;
                    alnum |= bytes as u64;
                    spill |= (bytes >> 64) as u64;
                } else {
                    others |= 1 << j;
                }
            }
        }
        let word_starts = alnum & !(alnum << 1 | prev_alnum >> 63);
        let valid = if len == 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        let mut m = (word_starts | others) & valid;
        while m != 0 {
            f(64 * k + m.trailing_zeros() as usize);
            m &= m - 1;
        }
        prev_alnum = alnum;
    }
}

/// Bit `j`: byte `j` of the 64 is `c`.
#[cfg(target_arch = "x86_64")]
fn eq_mask(block: &[u8], c: u8) -> u64 {
    let [m] = crate::byte_class::masks64(block, |v| [crate::byte_class::eq(v, c)]);
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn eq_mask(block: &[u8], c: u8) -> u64 {
    block[..64]
        .iter()
        .enumerate()
        .fold(0, |m, (j, &b)| m | u64::from(b == c) << j)
}

/// Bit `j`: byte `j` of the 64 is an ASCII letter or digit; and: it is not ASCII.
#[cfg(target_arch = "x86_64")]
fn alnum_high_masks(block: &[u8]) -> (u64, u64) {
    use crate::byte_class::{ascii_alnum, high, masks64};
    let [alnum, high] = masks64(block, |v| [ascii_alnum(v), high(v)]);
    (alnum, high)
}

#[cfg(not(target_arch = "x86_64"))]
fn alnum_high_masks(block: &[u8]) -> (u64, u64) {
    block[..64]
        .iter()
        .enumerate()
        .fold((0, 0), |(a, h), (j, b)| {
            (
                a | u64::from(b.is_ascii_alphanumeric()) << j,
                h | u64::from(!b.is_ascii()) << j,
            )
        })
}

/// Bit `j`: byte `j` of the 64 continues a UTF-8 character (0x80 to 0xBF).
#[cfg(target_arch = "x86_64")]
fn continuation_mask(block: &[u8]) -> u64 {
    use crate::byte_class::{in_range, masks64};
    let [m] = masks64(block, |v| [in_range(v, 0x80, 0x3F)]);
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn continuation_mask(block: &[u8]) -> u64 {
    block[..64].iter().enumerate().fold(0, |m, (j, &b)| {
        m | u64::from((0x80..=0xBF).contains(&b)) << j
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::Lexicons;
    use crate::rng::Rng;

    /// The definition: at each position where a phrase may start, in order, the longest phrase
    /// that starts there (ASCII case aside), kept if it ends on a word boundary, then on after
    /// it.
    fn reference(phrases: &[String], hay: &str) -> Vec<PhraseMatch> {
        let mut out = Vec::new();
        let mut resume = 0;
        let mut prev_alnum = false;
        for (p, c) in hay.char_indices() {
            let alnum = c.is_alphanumeric();
            let may_start = !alnum || !prev_alnum;
            prev_alnum = alnum;
            if p < resume || !may_start {
                continue;
            }
            let rest = &hay.as_bytes()[p..];
            let longest = phrases
                .iter()
                .enumerate()
                .filter(|(_, ph)| {
                    rest.len() >= ph.len() && rest[..ph.len()].eq_ignore_ascii_case(ph.as_bytes())
                })
                .max_by_key(|(i, ph)| (ph.len(), std::cmp::Reverse(*i)));
            if let Some((i, ph)) = longest {
                let end = p + ph.len();
                let next = hay[end..].chars().next();
                let last = hay[p..end].chars().next_back();
                if !(next.is_some_and(char::is_alphanumeric)
                    && last.is_some_and(char::is_alphanumeric))
                {
                    out.push(PhraseMatch {
                        phrase: i,
                        start: p,
                        end,
                    });
                }
                resume = end;
            }
        }
        out
    }

    fn builtin_phrases() -> Vec<String> {
        let lex = Lexicons::builtin();
        let mut seen = std::collections::HashSet::new();
        lex.phrase_lexicons()
            .iter()
            .flat_map(|l| l.entries.iter().map(|e| e.phrase.clone()))
            .filter(|p| seen.insert(p.clone()))
            .collect()
    }

    /// Random texts of phrase pieces, changed case, letters, punctuation and non-ASCII
    /// characters: the matches of the definition.
    fn check_against_reference(phrases: &[String], seed: u64, texts: usize) -> usize {
        let set = PhraseSet::new(phrases).expect("phrases build");
        let mut rng = Rng::new(seed);
        let others = [
            " ", "  ", "-", ".", "'", "%", "#", "x", "ab", "e", "s", "1", "\u{e9}", "\u{2122}",
            "\u{A0}", "中", "😀", "\u{2019}",
        ];
        let mut found = 0;
        for _ in 0..texts {
            let n = rng.below(40);
            let mut hay = String::new();
            for _ in 0..n {
                if rng.below(2) == 0 {
                    let p = &phrases[rng.below(phrases.len())];
                    // A whole phrase or a piece of it, in some case.
                    let cut = if rng.below(3) == 0 {
                        p.char_indices()
                            .nth(rng.below(p.chars().count()))
                            .map_or(p.len(), |(i, _)| i)
                    } else {
                        p.len()
                    };
                    let piece = &p[..cut];
                    match rng.below(3) {
                        0 => hay.push_str(&piece.to_ascii_uppercase()),
                        _ => hay.push_str(piece),
                    }
                } else {
                    hay.push_str(others[rng.below(others.len())]);
                }
            }
            let got = set.find(&hay);
            assert_eq!(got, reference(phrases, &hay), "{hay:?}");
            found += got.len();
        }
        found
    }

    #[test]
    fn finds_what_the_definition_finds() {
        let found = check_against_reference(&builtin_phrases(), 3, 60_000);
        assert!(found > 50_000, "{found}");
    }

    #[test]
    fn short_and_punctuated_phrases_too() {
        let phrases: Vec<String> = [
            "a",
            "ab",
            "abc",
            "abcd",
            "b c",
            "% off",
            "#1",
            "x-y",
            "\u{e9}t\u{e9}",
            "1",
            "s s",
            "ss",
            "e-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found = check_against_reference(&phrases, 8, 30_000);
        assert!(found > 50_000, "{found}");
    }

    #[test]
    fn reports_the_longest_phrase_at_each_word_start() {
        let phrases: Vec<String> = [
            "best",
            "best seller",
            "seller",
            "on sale",
            "sale",
            "best buy",
            "buy now",
            "% off",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let set = PhraseSet::new(&phrases).expect("phrases build");
        let found = |hay: &str| -> Vec<String> {
            set.find(hay)
                .iter()
                .map(|m| hay[m.start..m.end].to_owned())
                .collect()
        };
        assert_eq!(
            found("Our BEST Seller, now on sale: wholesale, 50% off"),
            ["BEST Seller", "on sale", "% off"]
        );
        // "Best" starts a word but does not end one; "sellers" starts with no phrase.
        assert_eq!(found("Bestow sellers"), Vec::<String>::new());
        // A phrase inside a word neither counts nor hides the next one.
        assert_eq!(found("Xbest buy now"), ["buy now"]);
        assert_eq!(found("caf\u{e9}sale \u{e9}best, best"), ["best"]);
    }
}
