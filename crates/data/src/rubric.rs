//! The rubric: hard gates and a 100-point compliance score, one source of truth for filtering,
//! training-set building and evaluation.
//!
//! Every rule is deterministic and reports its evidence (the field, the offending span, and the
//! lexicon row's source). Hard-fail rules cap the total at 59 (Walmart's "Poor" band). The rule
//! table, its points and sources are documented in the README ("The rubric").

use regex::Regex;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashSet;

use crate::lexicon::{Entry, Lexicons};
use crate::phrase_set::{PhraseMatch, PhraseSet};
use crate::sample::{Listing, ProductInput};
use crate::text::{self, char_len, is_stopword, words};

/// Thresholds of the hard gates and rules. Defaults follow the project rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RubricConfig {
    /// Minimum compliance score (0–100) of the compliance gate.
    pub pass_score: u8,
    /// Title length range, in Unicode characters.
    pub title_min_chars: usize,
    pub title_max_chars: usize,
    /// Over this many characters the title is a hard fail (Walmart's maximum).
    pub title_hard_max_chars: usize,
    pub features_min: usize,
    pub features_max: usize,
    /// Maximum characters per feature.
    pub feature_max_chars: usize,
    /// Minimum description length, in words after stripping HTML.
    pub description_min_words: usize,
    /// Under this many words the description is a hard fail.
    pub description_hard_min_words: usize,
    pub description_max_chars: usize,
    /// Share of uppercase letters above which a title counts as ALL CAPS.
    pub max_caps_ratio: f64,
    /// Difference (in points) between the app's own score and ours that is flagged.
    pub disagreement_points: f64,
}

impl Default for RubricConfig {
    fn default() -> Self {
        Self {
            pass_score: 80,
            title_min_chars: 50,
            title_max_chars: 100,
            title_hard_max_chars: 150,
            features_min: 3,
            features_max: 10,
            feature_max_chars: 80,
            description_min_words: 150,
            description_hard_min_words: 50,
            description_max_chars: 4000,
            max_caps_ratio: 0.3,
            disagreement_points: 25.0,
        }
    }
}

/// A rule's static description: id, points, whether it is a hard fail, what it checks, basis.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleSpec {
    pub id: &'static str,
    pub points: u8,
    pub hard_fail: bool,
    pub check: &'static str,
    pub basis: &'static str,
}

/// The compliance rules, in report order. Points add up to 100.
pub const RULES: &[RuleSpec] = &[
    RuleSpec { id: "T-LEN", points: 10, hard_fail: false, check: "title 50–100 characters (hard fail over 150)", basis: "W1, W3, W5" },
    RuleSpec { id: "T-FORM", points: 6, hard_fail: false, check: "title starts with the brand, names the product type and holds an attribute value", basis: "W1, W3, A-6" },
    RuleSpec { id: "T-CASE", points: 4, hard_fail: false, check: "title not ALL CAPS (over 30% uppercase letters, short acronyms aside)", basis: "W1, A-5" },
    RuleSpec { id: "T-REP", points: 5, hard_fail: false, check: "no content word more than twice in the title", basis: "W1, A-2" },
    RuleSpec { id: "T-CHR", points: 5, hard_fail: false, check: "no ~ ! * $ ? _ { } ^ ¬ ¦, emoji or ™ ® © in title or features", basis: "W1, W2, A-2, A-4" },
    RuleSpec { id: "F-CNT", points: 8, hard_fail: false, check: "3–10 key features", basis: "W5" },
    RuleSpec { id: "F-LEN", points: 6, hard_fail: false, check: "each feature 1–80 characters, no duplicates", basis: "project rule" },
    RuleSpec { id: "F-FMT", points: 4, hard_fail: false, check: "features are plain text, start with a capital, no placeholders", basis: "A-3, A-4" },
    RuleSpec { id: "D-LEN", points: 12, hard_fail: false, check: "description at least 150 words (hard fail under 50), at most 4,000 characters; no sentence written twice (hard fail: padding)", basis: "W4, W5, project rule" },
    RuleSpec { id: "D-HTML", points: 4, hard_fail: false, check: "description uses only p, ul, ol, li, br, b, strong, em, i; no scripts, links, images or handlers", basis: "W5, A-1" },
    RuleSpec { id: "X-PROMO", points: 10, hard_fail: true, check: "no promotional or superlative phrases", basis: "W1–W3, A-2" },
    RuleSpec { id: "X-CONTACT", points: 8, hard_fail: true, check: "no URLs, e-mails, phone numbers, addresses or seller contact", basis: "W1, W2, A-1" },
    RuleSpec { id: "X-COMMERCE", points: 6, hard_fail: false, check: "no prices, discounts, shipping, availability, dates or years", basis: "W1, W2, A-1" },
    RuleSpec { id: "X-RETAIL", points: 4, hard_fail: false, check: "no retailer or marketplace names unless part of the product name", basis: "W1, W2, W3" },
    RuleSpec { id: "X-CLAIMS", points: 6, hard_fail: false, check: "no unverifiable or regulated claims", basis: "W3, W6, W7, A-3, A-4" },
    RuleSpec { id: "X-LANG", points: 2, hard_fail: false, check: "English text; no reviews or testimonials", basis: "W1, A-1" },
];

/// Where a rule found a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// `title`, `features[2]` or `description` (visible text, tags stripped).
    pub field: String,
    /// Character offset of the span in that field (visible text for the description).
    pub at: usize,
    /// The offending text.
    pub text: String,
    /// Why: the lexicon note and source, or the measured value.
    pub reason: String,
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    /// The rule's id (`Cow`: scoring borrows the constant; a report read back owns it).
    pub id: Cow<'static, str>,
    pub passed: bool,
    /// Points earned (0 or the rule's points).
    pub points: u8,
    pub max_points: u8,
    /// Whether this failure caps the score at 59.
    pub hard_fail: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub evidence: Vec<Evidence>,
}

/// One hard gate's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub id: Cow<'static, str>,
    pub passed: bool,
    /// What was measured, e.g. "title has 43 characters".
    pub detail: GateDetail,
}

/// What a gate measured: the numbers when scoring made it, written out as a sentence only when
/// it is shown or serialised (every sample has five gates, and most reports are only counted),
/// or the sentence itself when a report is read back. Serialises as that sentence.
#[derive(Debug, Clone)]
pub enum GateDetail {
    TitleLength {
        chars: usize,
        min: usize,
        max: usize,
    },
    FeatureCount {
        count: usize,
        min: usize,
        max: usize,
    },
    /// `bad`: the length of the first feature out of bounds.
    FeatureLength {
        bad: Option<usize>,
        max: usize,
    },
    DescriptionWords {
        words: usize,
        min: usize,
    },
    Compliance {
        score: u8,
        min: u8,
    },
    Text(String),
}

impl std::fmt::Display for GateDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TitleLength { chars, min, max } => {
                write!(f, "title has {chars} characters (expected {min}–{max})")
            }
            Self::FeatureCount { count, min, max } => {
                write!(f, "{count} features (expected {min}–{max})")
            }
            Self::FeatureLength { bad: Some(n), max } => {
                write!(f, "a feature has {n} characters (expected 1–{max})")
            }
            Self::FeatureLength { bad: None, max } => {
                write!(f, "every feature has 1–{max} characters")
            }
            Self::DescriptionWords { words, min } => {
                write!(f, "description has {words} words (expected at least {min})")
            }
            Self::Compliance { score, min } => {
                write!(f, "compliance score {score} (expected at least {min})")
            }
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// Two details are equal when they read the same.
impl PartialEq for GateDetail {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for GateDetail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GateDetail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::Text)
    }
}

/// The names of the hard gates, in report order.
pub const GATES: &[&str] = &[
    "title_length",
    "feature_count",
    "feature_length",
    "description_words",
    "compliance",
];

/// The rubric's verdict on one listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Compliance score, 0–100 (capped at 59 on a hard fail).
    pub score: u8,
    /// All hard gates passed.
    pub passed: bool,
    pub hard_failed: bool,
    pub gates: Vec<Gate>,
    pub rules: Vec<RuleResult>,
    pub title_chars: usize,
    pub feature_count: usize,
    pub description_words: usize,
}

impl Report {
    pub fn failed_rules(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| !r.passed)
    }

    pub fn failed_gates(&self) -> impl Iterator<Item = &Gate> {
        self.gates.iter().filter(|g| !g.passed)
    }

    pub fn gate(&self, id: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.id == id)
    }

    /// Every reason this listing does not pass, one line each.
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .failed_gates()
            .map(|g| format!("gate {}: {}", g.id, g.detail))
            .collect();
        for r in self.failed_rules() {
            let ev = r
                .evidence
                .first()
                .map(|e| format!(": {} {:?} ({})", e.field, e.text, e.reason))
                .unwrap_or_default();
            let more = if r.evidence.len() > 1 {
                format!(" and {} more", r.evidence.len() - 1)
            } else {
                String::new()
            };
            out.push(format!("rule {} (-{}){ev}{more}", r.id, r.max_points));
        }
        out
    }
}

/// Which lexicon a phrase belongs to, in the combined matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Promo,
    Contact,
    Commerce,
    Retail,
    Claims,
    Testimonial,
    Placeholder,
}

/// The compiled rubric: config, lexicons and matchers. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Rubric {
    pub config: RubricConfig,
    phrases: PhraseSet,
    phrase_meta: Vec<(Kind, Entry)>,
    attributes: HashSet<String>,
    /// Units and count nouns, lower case: a number followed by one is a quantity.
    quantities: HashSet<String>,
    /// Words that put the number after them in an address, lower case.
    address_cues: HashSet<String>,
    contact_re: Regex,
    commerce_re: Regex,
    /// Unicode digits, whitespace and word characters: how [`Rubric::ascii_standin`] classifies
    /// a non-ASCII character, the way the patterns' `\d`, `\s`, `\w` and `\b` do.
    digit_re: Regex,
    space_re: Regex,
    word_char_re: Regex,
}

const ALLOWED_TAGS: &[&str] = &["p", "ul", "ol", "li", "br", "b", "strong", "em", "i"];
const FORBIDDEN_CHARS: &[char] = &[
    '~', '!', '*', '$', '?', '_', '{', '}', '^', '¬', '¦', '™', '®', '©',
];
/// Whether a byte is an ASCII character of [`FORBIDDEN_CHARS`] (a table built from the list).
#[inline]
fn is_forbidden_ascii(b: u8) -> bool {
    static FORBIDDEN_ASCII: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < FORBIDDEN_CHARS.len() {
            let c = FORBIDDEN_CHARS[i] as u32;
            if c < 128 {
                t[c as usize] = true;
            }
            i += 1;
        }
        t
    };
    FORBIDDEN_ASCII[b as usize]
}

impl Default for Rubric {
    fn default() -> Self {
        Self::new(RubricConfig::default(), Lexicons::builtin())
    }
}

impl Rubric {
    pub fn new(config: RubricConfig, lex: Lexicons) -> Self {
        let mut meta: Vec<(Kind, Entry)> = Vec::new();
        let mut seen = HashSet::new();
        let kinds = [
            Kind::Promo,
            Kind::Contact,
            Kind::Commerce,
            Kind::Retail,
            Kind::Claims,
            Kind::Testimonial,
            Kind::Placeholder,
        ];
        for (kind, l) in kinds.into_iter().zip(lex.phrase_lexicons()) {
            for e in &l.entries {
                if seen.insert(e.phrase.clone()) {
                    meta.push((kind, e.clone()));
                }
            }
        }
        // Phrases are plain strings from data files; building cannot fail for them.
        let phrases = PhraseSet::new(meta.iter().map(|(_, e)| e.phrase.as_str()))
            .expect("lexicon phrases build a matcher");
        let words = |l: &crate::lexicon::Lexicon| -> HashSet<String> {
            l.entries.iter().map(|e| e.phrase.to_lowercase()).collect()
        };
        let attributes = words(&lex.attributes);
        let quantities = words(&lex.quantities);
        let address_cues = words(&lex.address_cues);
        // Fixed patterns, covered by tests: compiling them cannot fail.
        let contact = concat!(
            r"(?i)(?P<url>\b(?:https?://|www\.)[^\s<]+|\b[a-z0-9][a-z0-9-]*\.(?:com|net|org|io|co|shop|store|biz|info|us)\b)",
            r"|(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
            r"|(?P<phone>(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b)",
            r"|(?P<address>\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:{street_types})\b)"
        )
        .replace("{street_types}", &STREET_TYPES.join("|"));
        let contact_re = Regex::new(&contact).expect("contact pattern compiles");
        let commerce_re = Regex::new(concat!(
            r"(?P<price>[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d{2})?\s?(?:USD|EUR|GBP)\b)",
            r"|(?P<year>\b(?:19|20)\d{2}\b)"
        ))
        .expect("commerce pattern compiles");
        Self {
            config,
            phrases,
            phrase_meta: meta,
            attributes,
            quantities,
            address_cues,
            contact_re,
            commerce_re,
            digit_re: Regex::new(r"^\d$").expect("fixed pattern compiles"),
            space_re: Regex::new(r"^\s$").expect("fixed pattern compiles"),
            word_char_re: Regex::new(r"^\w$").expect("fixed pattern compiles"),
        }
    }

    /// Whether an address match `m` of the contact pattern (a number, one to three words and a
    /// street type, matched case-insensitively), with the text `before` and `after` it, reads as a
    /// street address:
    /// - the words and the street type are capitalised as names are ("12 Maple Grove Street"),
    ///   and the first word is no unit or count noun (`quantities.tsv`), so that "2 TB Hard
    ///   Drive", "4 Wheel Drive" or "3 Piece Bedroom Suite" is not taken for one;
    /// - a street type that is also product language (Drive, Road, Lane, Suite: "USB 3 Flash
    ///   Drive", "2 Hard Drive bays", "12 Speed Road bike") needs address context too: a word of
    ///   `address_cues.tsv` ("at", "visit", ...) just before the number, or a comma after the
    ///   street type ("1600 Harbor Point Drive, Springfield").
    fn street_address(&self, before: &str, m: &str, after: &str) -> bool {
        let mut tokens = m.split_whitespace();
        let _number = tokens.next();
        let words: Vec<&str> = tokens.collect();
        let capitalised = |w: &str| {
            let mut cs = w.chars();
            cs.next().is_some_and(char::is_uppercase) && cs.all(char::is_lowercase)
        };
        let (Some(first), Some(street_type)) = (words.first(), words.last()) else {
            return false;
        };
        if !words.iter().all(|w| capitalised(w))
            || with_lowercase(first, |l| self.quantities.contains(l))
        {
            return false;
        }
        let ambiguous = ["drive", "road", "lane", "suite"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(street_type));
        if !ambiguous {
            return true;
        }
        let comma_after = after.trim_start_matches([' ', '\t']).starts_with(',');
        let word_before = before
            .trim_end()
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        comma_after || with_lowercase(word_before, |l| self.address_cues.contains(l))
    }

    /// Whether the word after a number (`rest` follows it) is a unit or count noun
    /// (`quantities.tsv`): "2000 mAh", "2000 Piece puzzle".
    fn followed_by_quantity(&self, rest: &str) -> bool {
        let next = rest.trim_start_matches([' ', '-']);
        let end = next
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(next.len());
        with_lowercase(&next[..end], |l| self.quantities.contains(l))
    }

    /// An ASCII stand-in for `s` on which the contact and commerce patterns find the same
    /// matches, one stand-in byte per character of `s`, which maps its offsets back to `s`
    /// ([`Standin::at`]); `None` when `s` holds a non-ASCII digit (then `s` itself is searched).
    ///
    /// Why: the patterns use Unicode word boundaries, which the regex crate's fast (lazy DFA)
    /// engine supports on ASCII text only; on any other text it falls back to an NFA simulation
    /// that is tens of times slower. Each non-ASCII character stands for itself by an ASCII
    /// character that belongs to exactly the same pattern classes and literals (checked for every
    /// character by a test): whitespace by a space, `€` and `£` by `$`, `ſ` (U+017F) and the
    /// Kelvin sign (U+212A), which case-fold to ASCII letters, by `s` and `k`, other word
    /// characters by `_` and everything else by `#`. Non-ASCII digits have no such stand-in.
    fn ascii_standin(&self, s: &str) -> Option<Standin> {
        let mut standin = Standin {
            text: String::with_capacity(s.len()),
            wide: Vec::new(),
        };
        let mut extra = 0;
        let mut rest = s;
        // ASCII runs stand for themselves and are copied whole.
        while let Some(run) = crate::byte_class::first_non_ascii(rest.as_bytes()) {
            standin.text.push_str(&rest[..run]);
            let Some(c) = rest[run..].chars().next() else {
                break;
            };
            let cs = &rest[run..run + c.len_utf8()];
            standin.text.push(match c {
                '\u{20AC}' | '\u{A3}' => '$',
                '\u{17F}' => 's',
                '\u{212A}' => 'k',
                _ if self.digit_re.is_match(cs) => return None,
                _ if self.space_re.is_match(cs) => ' ',
                _ if self.word_char_re.is_match(cs) => '_',
                _ => '#',
            });
            extra += cs.len() - 1;
            standin.wide.push((standin.text.len() - 1, extra));
            rest = &rest[run + cs.len()..];
        }
        standin.text.push_str(rest);
        Some(standin)
    }

    /// Scores a listing. `input` (the product) lets T-FORM check the product noun and X-RETAIL
    /// accept retailer names that are part of the product name; `None` skips those refinements.
    pub fn score(&self, listing: &Listing, input: Option<&ProductInput>) -> Report {
        let cfg = &self.config;
        let title = listing.title.trim();
        // The title and the features joined by `\n`, for the scans that would otherwise start
        // over on each of these short fields: a field starts and ends on a word boundary there as
        // it does alone (`\n` is no letter or digit), no phrase holds a `\n` (else `joinable` is
        // false), so no phrase match spans two fields, and a cue of one field is a cue of the
        // whole (see `Cues`), so a whole without one spares the fields their cue passes. When the
        // whole is ASCII, so is every field: characters are bytes.
        let mut short = String::with_capacity(
            title.len() + listing.features.iter().map(|f| f.len() + 1).sum::<usize>(),
        );
        short.push_str(title);
        for f in &listing.features {
            short.push('\n');
            short.push_str(f);
        }
        let short_ascii = short.is_ascii();
        let short_has_lt = memchr::memchr(b'<', short.as_bytes()).is_some();
        let chars = |s: &str| if short_ascii { s.len() } else { char_len(s) };
        let title_chars = chars(title);
        // The description's tags, found while stripping them (D-HTML reads them).
        let mut tags: SmallVec<[(usize, usize); 32]> = SmallVec::new();
        let visible = text::strip_html_tags(&listing.description, |s, e| tags.push((s, e)));
        let description_words = text::word_count(&visible);
        let feature_count = listing.features.len();
        let automotive = input.is_some_and(|i| i.top_category().eq_ignore_ascii_case("automotive"));

        let mut rules: Vec<RuleResult> = RULES
            .iter()
            .map(|r| RuleResult {
                id: Cow::Borrowed(r.id),
                passed: true,
                points: r.points,
                max_points: r.points,
                hard_fail: false,
                evidence: Vec::new(),
            })
            .collect();
        let mut fail = |id: &str, ev: Evidence, hard: bool| {
            // Rule ids are the constants above.
            let r = rules
                .iter_mut()
                .find(|r| r.id == id)
                .expect("known rule id");
            r.passed = false;
            r.points = 0;
            r.hard_fail |= hard;
            if r.evidence.len() < 8 {
                r.evidence.push(ev);
            }
        };
        let ev = |field: &str, s: &str, start: usize, end: usize, reason: String| Evidence {
            field: field.to_owned(),
            at: s[..start].chars().count(),
            text: s[start..end].to_owned(),
            reason,
        };
        let whole = |field: &str, s: &str, reason: String| Evidence {
            field: field.to_owned(),
            at: 0,
            text: s.chars().take(120).collect(),
            reason,
        };

        // T-LEN
        if title_chars < cfg.title_min_chars || title_chars > cfg.title_max_chars {
            let hard = title_chars > cfg.title_hard_max_chars;
            fail(
                "T-LEN",
                whole(
                    "title",
                    title,
                    format!(
                        "{title_chars} characters; expected {}–{}{}",
                        cfg.title_min_chars,
                        cfg.title_max_chars,
                        if hard {
                            format!(", over {} is a hard fail", cfg.title_hard_max_chars)
                        } else {
                            String::new()
                        }
                    ),
                ),
                hard,
            );
        }

        // T-FORM
        // A title has a dozen words or so: room for them at once.
        let mut title_words: SmallVec<[(usize, &str); 24]> = SmallVec::new();
        if short_ascii {
            text::for_ascii_words(title, |at, w| title_words.push((at, w)));
        } else {
            title_words.extend(words(title));
        }
        {
            let mut missing = Vec::new();
            let starts_upper = title
                .chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
            if !starts_upper {
                missing.push("does not start with a capitalised brand");
            }
            if let Some(inp) = input {
                // Lower-cased (ASCII words are compared ASCII-case-insensitively as they are).
                let name = inp.product_name.as_str();
                let mut name_words: SmallVec<[&str; 8]> = SmallVec::new();
                if name.is_ascii() {
                    text::for_ascii_words(name, |_, w| name_words.push(w));
                } else {
                    name_words.extend(words(name).map(|(_, w)| w));
                }
                let nouns: SmallVec<[Cow<str>; 8]> = name_words
                    .into_iter()
                    .map(|w| {
                        if w.is_ascii() {
                            Cow::Borrowed(w)
                        } else {
                            Cow::Owned(w.to_lowercase())
                        }
                    })
                    .filter(|w| w.chars().count() >= 3 && !is_stopword(w))
                    .collect();
                let has_noun = nouns.is_empty()
                    || title_words
                        .iter()
                        .any(|(_, w)| nouns.iter().any(|n| n.eq_ignore_ascii_case(w)));
                if !has_noun {
                    missing.push("names no word of the product name");
                }
            } else if title_words.len() < 3 {
                missing.push("has fewer than 3 words");
            }
            // An ASCII digit byte is an ASCII digit character (UTF-8 never reuses ASCII bytes).
            let has_attr = title.bytes().any(|b| b.is_ascii_digit())
                || title_words
                    .iter()
                    .any(|(_, w)| with_lowercase(w, |l| self.attributes.contains(l)));
            if !has_attr {
                missing.push("holds no attribute value (number, size, colour or material)");
            }
            if !missing.is_empty() {
                fail(
                    "T-FORM",
                    whole("title", title, format!("title {}", missing.join("; "))),
                    false,
                );
            }
        }

        // The characters, letters and uppercase letters of each title word (T-CASE, T-REP).
        let title_letters: SmallVec<[(usize, usize, usize); 24]> = title_words
            .iter()
            .map(|(_, w)| letter_counts(w, short_ascii))
            .collect();

        // T-CASE
        {
            let (mut upper, mut letters) = (0usize, 0usize);
            for &(_, n, u) in &title_letters {
                if n > 0 && u == n && n <= 4 {
                    continue; // acronym (USB, LED, HDMI)
                }
                upper += u;
                letters += n;
            }
            if letters >= 6 && upper as f64 > cfg.max_caps_ratio * letters as f64 {
                fail(
                    "T-CASE",
                    whole(
                        "title",
                        title,
                        format!(
                            "{:.0}% of letters are uppercase; at most {:.0}%",
                            100.0 * upper as f64 / letters as f64,
                            100.0 * cfg.max_caps_ratio
                        ),
                    ),
                    false,
                );
            }
        }

        // T-REP
        {
            // Lower-cased word -> (count, first offset, first spelling); a title has a dozen
            // words, so a list beats a hash map.
            let title_ascii = short_ascii || title.is_ascii();
            let mut counts: SmallVec<[(usize, usize, &str); 16]> = SmallVec::new();
            for ((at, w), &(chars, letters, _)) in title_words.iter().zip(&title_letters) {
                if chars < 2 || letters == 0 || is_stopword(w) {
                    continue;
                }
                match counts
                    .iter_mut()
                    .find(|(_, _, k)| same_lowercase(k, w, title_ascii))
                {
                    Some(e) => e.0 += 1,
                    None => counts.push((1, *at, w)),
                }
            }
            let mut reps: Vec<_> = counts.into_iter().filter(|c| c.0 > 2).collect();
            reps.sort_by_key(|c| c.1);
            for (n, at, w) in reps {
                let word = w.to_lowercase();
                fail(
                    "T-REP",
                    ev(
                        "title",
                        title,
                        at,
                        at + w.len(),
                        format!("\"{word}\" appears {n} times; at most 2"),
                    ),
                    false,
                );
            }
        }

        // T-CHR (title and features)
        let mut check_chars = |field: &str, s: &str| {
            // ASCII text: one table lookup per byte finds whether there is anything to report.
            if s.is_ascii() && !s.bytes().any(is_forbidden_ascii) {
                return;
            }
            for (i, c) in s.char_indices() {
                if FORBIDDEN_CHARS.contains(&c) || is_emoji(c) {
                    fail(
                        "T-CHR",
                        ev(
                            field,
                            s,
                            i,
                            i + c.len_utf8(),
                            format!("special character U+{:04X}", c as u32),
                        ),
                        false,
                    );
                }
            }
        };
        // Joined ASCII text without a forbidden byte: nothing to report in any field.
        if !short_ascii || short.bytes().any(is_forbidden_ascii) {
            check_chars("title", title);
            for (i, f) in listing.features.iter().enumerate() {
                check_chars(&feature_field(i), f);
            }
        }

        // F-CNT
        if feature_count < cfg.features_min || feature_count > cfg.features_max {
            fail(
                "F-CNT",
                Evidence {
                    field: "features".into(),
                    at: 0,
                    text: String::new(),
                    reason: format!(
                        "{feature_count} features; expected {}–{}",
                        cfg.features_min, cfg.features_max
                    ),
                },
                false,
            );
        }

        // F-LEN and F-FMT
        // Lower-cased features seen so far (a handful: a list beats hashing).
        let mut seen_features: SmallVec<[&str; 10]> = SmallVec::new();
        let features_ascii = short_ascii || listing.features.iter().all(|f| f.is_ascii());
        // The length of the first feature out of bounds, for the feature_length gate.
        let mut bad_feature = None;
        for (i, f) in listing.features.iter().enumerate() {
            let field = &*feature_field(i);
            let t = f.trim();
            let n = chars(t);
            if n == 0 || n > cfg.feature_max_chars {
                bad_feature = bad_feature.or(Some(n));
                fail(
                    "F-LEN",
                    whole(
                        field,
                        t,
                        format!("{n} characters; expected 1–{}", cfg.feature_max_chars),
                    ),
                    false,
                );
            }
            if n > 0 {
                if seen_features
                    .iter()
                    .any(|f| same_lowercase(f, t, features_ascii))
                {
                    fail("F-LEN", whole(field, t, "duplicate feature".into()), false);
                } else {
                    seen_features.push(t);
                }
            }
            if short_has_lt && t.contains('<') && t.contains('>') {
                fail(
                    "F-FMT",
                    whole(
                        field,
                        t,
                        "HTML in a feature; features are plain text".into(),
                    ),
                    false,
                );
            }
            if let Some(c) = t.chars().next() {
                if !(c.is_uppercase() || c.is_ascii_digit()) {
                    fail(
                        "F-FMT",
                        whole(
                            field,
                            t,
                            "does not start with a capital letter or digit".into(),
                        ),
                        false,
                    );
                }
            }
        }

        // D-LEN
        // A text has no more characters than bytes: they are counted only when there are
        // enough bytes to be too many.
        let desc = &listing.description;
        let too_long = (desc.len() > cfg.description_max_chars)
            .then(|| char_len(desc))
            .filter(|&n| n > cfg.description_max_chars);
        if description_words < cfg.description_min_words || too_long.is_some() {
            let hard = description_words < cfg.description_hard_min_words;
            let reason = if let Some(desc_chars) = too_long {
                format!(
                    "{desc_chars} characters; at most {}",
                    cfg.description_max_chars
                )
            } else {
                format!(
                    "{description_words} words; expected at least {}{}",
                    cfg.description_min_words,
                    if hard {
                        format!(", under {} is a hard fail", cfg.description_hard_min_words)
                    } else {
                        String::new()
                    }
                )
            };
            fail("D-LEN", whole("description", &visible, reason), hard);
        }
        // A sentence written twice pads the description instead of describing the product.
        if let Some((start, end)) = text::repeated_sentence(&visible, text::REPEAT_MIN_WORDS) {
            fail(
                "D-LEN",
                ev(
                    "description",
                    &visible,
                    start,
                    end,
                    "sentence written twice (padding)".into(),
                ),
                true,
            );
        }

        // D-HTML
        for &(start, end) in &tags {
            let tag = &listing.description[start..end];
            if plain_allowed_tag(tag) {
                continue;
            }
            let lower = tag.to_ascii_lowercase();
            let name: String = lower
                .trim_start_matches('<')
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if lower.starts_with("<!--") {
                continue;
            }
            let bad_attr = ["on", "style=", "href=", "src="].iter().any(|a| {
                lower
                    .split_whitespace()
                    .skip(1)
                    .any(|part| part.starts_with(a) && (a.ends_with('=') || part.contains('=')))
            });
            if !ALLOWED_TAGS.contains(&name.as_str()) || bad_attr {
                fail(
                    "D-HTML",
                    ev(
                        "description(html)",
                        &listing.description,
                        start,
                        end,
                        format!("tag <{name}> is not basic HTML"),
                    ),
                    false,
                );
            }
        }

        // Phrase lexicons over every field.
        // `found`: the phrases of `s`, at `base` more than their offsets in `s`; `cue_free`: no
        // pattern can match `s`.
        let mut scan = |field: &str,
                        s: &str,
                        is_feature: bool,
                        found: &[PhraseMatch],
                        base: usize,
                        cue_free: bool| {
            for m in found {
                let (start, end) = (m.start - base, m.end - base);
                let (kind, entry) = &self.phrase_meta[m.phrase];
                let reason = format!("{} [{}]", entry.note, entry.source);
                let e = || ev(field, s, start, end, reason.clone());
                match kind {
                    Kind::Promo => fail("X-PROMO", e(), true),
                    Kind::Contact => fail("X-CONTACT", e(), true),
                    Kind::Commerce => fail("X-COMMERCE", e(), false),
                    Kind::Claims => fail("X-CLAIMS", e(), false),
                    Kind::Testimonial => fail("X-LANG", e(), false),
                    Kind::Placeholder => {
                        if is_feature {
                            fail("F-FMT", e(), false)
                        }
                    }
                    Kind::Retail => {
                        let in_name = input
                            .is_some_and(|i| i.product_name.to_lowercase().contains(&entry.phrase));
                        if !in_name {
                            fail("X-RETAIL", e(), false)
                        }
                    }
                }
            }
            if cue_free {
                return;
            }
            // On non-ASCII text, search an ASCII stand-in and map its offsets back to `s`.
            let standin = if s.is_ascii() {
                None
            } else {
                self.ascii_standin(s)
            };
            let hay = standin.as_ref().map_or(s, |t| t.text.as_str());
            let at = |i: usize| standin.as_ref().map_or(i, |t| t.at(i));
            // Cues first (one byte pass that most fields fail), then `is_match`: it skips the
            // capture slots `captures_iter` allocates.
            let cues = Cues::of(hay);
            let contact = cues.contact && self.contact_re.is_match(hay);
            let commerce = cues.commerce && self.commerce_re.is_match(hay);
            for caps in contact
                .then(|| self.contact_re.captures_iter(hay))
                .into_iter()
                .flatten()
            {
                let (name, m) = ["url", "email", "phone", "address"]
                    .iter()
                    .find_map(|n| caps.name(n).map(|m| (*n, m)))
                    .expect("one alternative matched");
                let (start, end) = (at(m.start()), at(m.end()));
                if name == "address" && !self.street_address(&s[..start], &s[start..end], &s[end..])
                {
                    continue;
                }
                fail(
                    "X-CONTACT",
                    ev(
                        field,
                        s,
                        at(m.start()),
                        at(m.end()),
                        format!("{name} [W1, W2, A-1]"),
                    ),
                    true,
                );
            }
            for caps in commerce
                .then(|| self.commerce_re.captures_iter(hay))
                .into_iter()
                .flatten()
            {
                if let Some(m) = caps.name("price") {
                    fail(
                        "X-COMMERCE",
                        ev(
                            field,
                            s,
                            at(m.start()),
                            at(m.end()),
                            "price [W2, A-1]".into(),
                        ),
                        false,
                    );
                } else if let Some(m) = caps.name("year") {
                    if !automotive && !self.followed_by_quantity(&s[at(m.end())..]) {
                        fail(
                            "X-COMMERCE",
                            ev(
                                field,
                                s,
                                at(m.start()),
                                at(m.end()),
                                "year or date [W1]".into(),
                            ),
                            false,
                        );
                    }
                }
            }
        };
        // The short fields' phrases in one search (or one each when a phrase holds a `\n`).
        let short_found = self.phrases.joinable().then(|| self.phrases.find(&short));
        let short_cue_free = {
            let cues = Cues::of(&short);
            !cues.contact && !cues.commerce
        };
        let mut base = 0;
        for (i, s) in std::iter::once(title)
            .chain(listing.features.iter().map(String::as_str))
            .enumerate()
        {
            let own;
            let (found, at) = match &short_found {
                Some(all) => {
                    let from = all.partition_point(|m| m.start < base);
                    let to = all.partition_point(|m| m.start < base + s.len());
                    (&all[from..to], base)
                }
                None => {
                    own = self.phrases.find(s);
                    (&own[..], 0)
                }
            };
            let field = if i == 0 {
                Cow::Borrowed("title")
            } else {
                feature_field(i - 1)
            };
            scan(&field, s, i > 0, found, at, short_cue_free);
            base += s.len() + 1;
        }
        scan(
            "description",
            &visible,
            false,
            &self.phrases.find(&visible),
            0,
            false,
        );

        // X-LANG: mostly Latin letters, and English function words in longer descriptions.
        {
            // Letters of "{title} {visible}" (the joining space is no letter). Only text with
            // a letter that is not Latin can fail, so the letters are counted only then.
            let foreign = foreign_letters(title) + foreign_letters(&visible);
            let letters = if foreign > 0 {
                count_letters(title).0 + count_letters(&visible).0
            } else {
                0
            };
            if letters > 0 && foreign * 10 > letters {
                fail("X-LANG", whole("description", &visible, format!("{foreign} of {letters} letters are not Latin; listings must be in English")), false);
            } else if description_words >= 40 {
                // Fewer than 5% of the words: counting can stop at that many.
                let enough = (description_words * 5).div_ceil(100);
                let stop = text::count_stopwords_up_to(&visible, enough);
                if stop * 100 < description_words * 5 {
                    fail("X-LANG", whole("description", &visible, format!("only {stop} English function words in {description_words}; listings must be in English")), false);
                }
            }
        }

        let hard_failed = rules.iter().any(|r| r.hard_fail);
        let mut score: u32 = rules.iter().map(|r| r.points as u32).sum();
        if hard_failed {
            score = score.min(59);
        }
        let score = score as u8;

        let gates = vec![
            Gate {
                id: Cow::Borrowed("title_length"),
                passed: (cfg.title_min_chars..=cfg.title_max_chars).contains(&title_chars),
                detail: GateDetail::TitleLength {
                    chars: title_chars,
                    min: cfg.title_min_chars,
                    max: cfg.title_max_chars,
                },
            },
            Gate {
                id: Cow::Borrowed("feature_count"),
                passed: (cfg.features_min..=cfg.features_max).contains(&feature_count),
                detail: GateDetail::FeatureCount {
                    count: feature_count,
                    min: cfg.features_min,
                    max: cfg.features_max,
                },
            },
            Gate {
                id: Cow::Borrowed("feature_length"),
                passed: bad_feature.is_none(),
                detail: GateDetail::FeatureLength {
                    bad: bad_feature,
                    max: cfg.feature_max_chars,
                },
            },
            Gate {
                id: Cow::Borrowed("description_words"),
                passed: description_words >= cfg.description_min_words,
                detail: GateDetail::DescriptionWords {
                    words: description_words,
                    min: cfg.description_min_words,
                },
            },
            Gate {
                id: Cow::Borrowed("compliance"),
                passed: score >= cfg.pass_score,
                detail: GateDetail::Compliance {
                    score,
                    min: cfg.pass_score,
                },
            },
        ];
        let passed = gates.iter().all(|g| g.passed);
        Report {
            score,
            passed,
            hard_failed,
            gates,
            rules,
            title_chars,
            feature_count,
            description_words,
        }
    }

    /// The hard gates on lengths alone (no compliance rules): what the data benchmark compares
    /// with the Python baseline.
    pub fn length_gates(&self, listing: &Listing) -> bool {
        let cfg = &self.config;
        let t = char_len(listing.title.trim());
        (cfg.title_min_chars..=cfg.title_max_chars).contains(&t)
            && (cfg.features_min..=cfg.features_max).contains(&listing.features.len())
            && listing
                .features
                .iter()
                .all(|f| (1..=cfg.feature_max_chars).contains(&char_len(f.trim())))
            && text::description_words(&listing.description) >= cfg.description_min_words
    }
}

/// The characters, letters and uppercase letters of a word, byte by byte when the caller knows
/// it is ASCII (`ascii`).
fn letter_counts(w: &str, ascii: bool) -> (usize, usize, usize) {
    if ascii {
        let (mut letters, mut upper) = (0, 0);
        for &c in w.as_bytes() {
            letters += usize::from(c.is_ascii_alphabetic());
            upper += usize::from(c.is_ascii_uppercase());
        }
        (w.len(), letters, upper)
    } else {
        let letters = w.chars().filter(|c| c.is_alphabetic()).count();
        let upper = w.chars().filter(|c| c.is_uppercase()).count();
        (w.chars().count(), letters, upper)
    }
}

/// `a.to_lowercase() == b.to_lowercase()`, without allocating when `ascii` (the caller knows
/// both are ASCII).
#[inline]
fn same_lowercase(a: &str, b: &str, ascii: bool) -> bool {
    // Equal but for ASCII case implies equal lower-cased; unequal ASCII stays unequal.
    a.eq_ignore_ascii_case(b) || (!ascii && a.to_lowercase() == b.to_lowercase())
}

/// `f(&w.to_lowercase())`, lower-casing a short ASCII word on the stack instead.
fn with_lowercase<T>(w: &str, f: impl FnOnce(&str) -> T) -> T {
    let mut buf = [0u8; 48];
    match buf.get_mut(..w.len()) {
        Some(b) if w.is_ascii() => {
            b.copy_from_slice(w.as_bytes());
            b.make_ascii_lowercase();
            // ASCII bytes are UTF-8.
            f(std::str::from_utf8(b).unwrap_or_default())
        }
        _ => f(&w.to_lowercase()),
    }
}

/// The field name of feature `i`, without allocating for the usual counts.
fn feature_field(i: usize) -> Cow<'static, str> {
    const NAMES: [&str; 16] = [
        "features[0]",
        "features[1]",
        "features[2]",
        "features[3]",
        "features[4]",
        "features[5]",
        "features[6]",
        "features[7]",
        "features[8]",
        "features[9]",
        "features[10]",
        "features[11]",
        "features[12]",
        "features[13]",
        "features[14]",
        "features[15]",
    ];
    match NAMES.get(i) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(format!("features[{i}]")),
    }
}

/// The alphabetic characters of `s` past U+024F (not Latin): `count_letters(s).1`, with only
/// the non-ASCII characters decoded.
fn foreign_letters(s: &str) -> usize {
    // Most text is ASCII, which `is_ascii` tells many bytes at a time.
    if s.is_ascii() {
        return 0;
    }
    let mut foreign = 0;
    let mut rest = s;
    while let Some(i) = crate::byte_class::first_non_ascii(rest.as_bytes()) {
        let Some(c) = rest[i..].chars().next() else {
            break;
        };
        foreign += usize::from(c.is_alphabetic() && (c as u32) > 0x024F);
        rest = &rest[i + c.len_utf8()..];
    }
    foreign
}

/// Alphabetic characters in `s`, and how many of them are past U+024F (not Latin).
fn count_letters(s: &str) -> (usize, usize) {
    if s.is_ascii() {
        return (ascii_letters(s.as_bytes()), 0);
    }
    let (mut letters, mut foreign) = (0, 0);
    let mut rest = s;
    loop {
        // An ASCII run, counted bytewise, then one decoded character.
        let run = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        letters += ascii_letters(&rest.as_bytes()[..run]);
        rest = &rest[run..];
        let Some(c) = rest.chars().next() else {
            return (letters, foreign);
        };
        if c.is_alphabetic() {
            letters += 1;
            if (c as u32) > 0x024F {
                foreign += 1;
            }
        }
        rest = &rest[c.len_utf8()..];
    }
}

/// ASCII letters among ASCII bytes (written to vectorise).
fn ascii_letters(b: &[u8]) -> usize {
    b.iter()
        .map(|&c| ((c | 0x20).wrapping_sub(b'a') < 26) as usize)
        .sum()
}

/// Whether a tag is trivially allowed by D-HTML: an allowed name, no whitespace, so no
/// attributes (what the full check concludes for such a tag, without its allocations).
fn plain_allowed_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    if !tag.is_ascii() || b.iter().any(|c| c.is_ascii_whitespace() || *c == b'\x0B') {
        return false;
    }
    let rest = tag.trim_start_matches('<').trim_start_matches('/');
    let len = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
    let name = &rest[..len];
    !tag.starts_with("<!--") && ALLOWED_TAGS.iter().any(|t| t.eq_ignore_ascii_case(name))
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F | 0x2B50 | 0x2B55)
}

/// An ASCII stand-in for a text (see [`Rubric::ascii_standin`]): one byte per character.
struct Standin {
    text: String,
    /// For each non-ASCII character, in order: the index of its stand-in byte, and the bytes that
    /// the text has more than the stand-in up to and including that character.
    wide: Vec<(usize, usize)>,
}

impl Standin {
    /// The byte offset in the text of the character that stand-in byte `i` stands for (the end
    /// of the text for `i` = the stand-in's length).
    fn at(&self, i: usize) -> usize {
        let before = self.wide.partition_point(|&(j, _)| j < i);
        i + before.checked_sub(1).map_or(0, |k| self.wide[k].1)
    }
}

/// Which of the contact and commerce patterns can match a text at all: a necessary condition of
/// each, found in one byte pass, so that most fields skip both regex searches (which cost more
/// than the rest of the rubric's scans together). Every alternative of the patterns needs one of
/// these cues (checked against the patterns by a test):
/// - url: `://`, a `.` after `www` or before a letter (`.com`);
/// - e-mail: `@`;
/// - phone and year: four digits in a row;
/// - address: digits, whitespace and then, as the second to fourth word, a street type that
///   ends there or before a byte that is no word character (`\b`: "St." or "Street," but not
///   "Stainless");
/// - price: `$` (the ASCII stand-in of `€` and `£` too) or `USD`, `EUR`, `GBP`.
///
/// Text that is not ASCII (a stand-in could not be made) gets every cue.
struct Cues {
    contact: bool,
    commerce: bool,
}

impl Cues {
    const ALL: Self = Self {
        contact: true,
        commerce: true,
    };

    fn of(hay: &str) -> Self {
        if !hay.is_ascii() {
            return Self::ALL;
        }
        #[cfg(target_arch = "x86_64")]
        return Self::of_ascii_masks(hay.as_bytes());
        #[cfg(not(target_arch = "x86_64"))]
        return Self::of_ascii_bytes(hay.as_bytes());
    }

    /// [`Cues::of`] of ASCII text, 64 bytes at a time: four byte classes (digits, whitespace,
    /// dots and the rare cue bytes `@ $ : U E G`) are classified into bit masks, the digit cues
    /// (a run of four, a run before whitespace) are combinations of those masks, and only the
    /// rare bytes and the dots (about one a sentence) are looked at one by one. The same result
    /// as [`Cues::of_ascii_bytes`] (a test compares them).
    #[cfg(target_arch = "x86_64")]
    fn of_ascii_masks(b: &[u8]) -> Self {
        let (mut contact, mut commerce) = (false, false);
        // Zero padding is in no class: no cue. Past the end there is nothing to classify.
        let block = |k: usize| {
            if 64 * k < b.len() {
                cue_masks(crate::byte_class::block64(b, k, &mut [0u8; 64]))
            } else {
                CueMasks::default()
            }
        };
        let blocks = b.len().div_ceil(64);
        let mut cur = block(0);
        for k in 0..blocks {
            let next = block(k + 1);
            // Bit j of `after(m, s)`: the class of byte j + s.
            let after = |cur: u64, next: u64, s: u32| (cur >> s) | (next << (64 - s));
            let d = cur.digit;
            if d & after(d, next.digit, 1) & after(d, next.digit, 2) & after(d, next.digit, 3) != 0
            {
                return Self::ALL;
            }
            let mut m = cur.rare | cur.dot;
            while m != 0 {
                let i = 64 * k + m.trailing_zeros() as usize;
                m &= m - 1;
                Self::other_cue(b, i, &mut contact, &mut commerce);
            }
            if !contact {
                // A digit before whitespace: the number of a street address may start there.
                let mut m = d & after(cur.space, next.space, 1);
                if m != 0 {
                    // The words that start in this block and the next (a byte that is no
                    // whitespace after one that is, within the text), for `street_type_after`.
                    let space = u128::from(cur.space) | u128::from(next.space) << 64;
                    let len = (b.len() - 64 * k).min(128);
                    let valid = u128::MAX >> (128 - len);
                    let starts = !space & valid & (space << 1);
                    while m != 0 {
                        let j = m.trailing_zeros();
                        m &= m - 1;
                        if street_type_after(b, 64 * k, starts, j + 1) {
                            contact = true;
                            break;
                        }
                    }
                }
            }
            cur = next;
        }
        Self { contact, commerce }
    }

    /// The cue of byte `i` of ASCII text `b`, a cue byte that is not a digit (`@ $ : .` or the
    /// first letter of `USD`, `EUR` or `GBP`): what it adds to `contact` and `commerce`.
    fn other_cue(b: &[u8], i: usize, contact: &mut bool, commerce: &mut bool) {
        let next = b.get(i + 1).copied().unwrap_or(0);
        match b[i] {
            b'@' => *contact = true,
            b'$' => *commerce = true,
            b':' => *contact |= next == b'/',
            b'.' => {
                *contact |= next.is_ascii_alphabetic()
                    || (i >= 3 && b[i - 3..i].eq_ignore_ascii_case(b"www"))
            }
            _ => *commerce |= matches!(&b[i..b.len().min(i + 3)], b"USD" | b"EUR" | b"GBP"),
        }
    }

    /// [`Cues::of`] of ASCII text, byte by byte: the definition the masks follow.
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    fn of_ascii_bytes(b: &[u8]) -> Self {
        let (mut contact, mut commerce) = (false, false);
        let mut i = 0;
        while i < b.len() {
            // Skip the bytes that are no cue (letters, spaces and most punctuation) in a tight
            // loop; the rest is looked at one by one.
            while i < b.len() && !is_cue_byte(b[i]) {
                i += 1;
            }
            let Some(&c) = b.get(i) else { break };
            match c {
                b'0'..=b'9' => {
                    let run = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if run >= 4 {
                        return Self::ALL;
                    }
                    i += run;
                    if b.get(i).is_some_and(|&c| is_regex_space(c)) {
                        contact |= street_type_follows(&b[i..]);
                    }
                    continue;
                }
                _ => Self::other_cue(b, i, &mut contact, &mut commerce),
            }
            if contact && commerce {
                break;
            }
            i += 1;
        }
        Self { contact, commerce }
    }
}

/// The byte classes of 64 bytes that [`Cues::of_ascii_masks`] combines, bit `j` for byte `j`.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, Default)]
struct CueMasks {
    digit: u64,
    /// `\s` of the patterns: space, `\t`, `\n`, `\x0B`, `\x0C`, `\r`.
    space: u64,
    dot: u64,
    /// `@`, `$`, `:` and the `U`, `E` and `G` that may start `USD`, `EUR` or `GBP`.
    rare: u64,
}

#[cfg(target_arch = "x86_64")]
fn cue_masks(block: &[u8]) -> CueMasks {
    use crate::byte_class::{eq, in_range, masks64, or};
    let [digit, space, dot, rare] = masks64(block, |v| {
        [
            in_range(v, b'0', 9),
            or(eq(v, b' '), in_range(v, b'\t', 4)),
            eq(v, b'.'),
            or(
                or(or(eq(v, b'@'), eq(v, b'$')), eq(v, b':')),
                or(or(eq(v, b'U'), eq(v, b'E')), eq(v, b'G')),
            ),
        ]
    });
    CueMasks {
        digit,
        space,
        dot,
        rare,
    }
}

/// The bytes [`Cues::of`] looks at: digits, `:`, `@`, `$`, `.` and the first letters of `USD`,
/// `EUR` and `GBP` (a table: faster than comparisons in a byte loop).
#[inline]
fn is_cue_byte(c: u8) -> bool {
    static CUE_BYTE: [bool; 256] = {
        let mut t = [false; 256];
        let cues = b"0123456789:@$.UEG";
        let mut i = 0;
        while i < cues.len() {
            t[cues[i] as usize] = true;
            i += 1;
        }
        t
    };
    CUE_BYTE[c as usize]
}

/// `\s` of the patterns on ASCII text (with `\x0B`, unlike `u8::is_ascii_whitespace`).
fn is_regex_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

/// The street types of the contact pattern's address alternative.
const STREET_TYPES: &[&str] = &[
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Lane",
    "Ln",
    "Drive",
    "Suite",
];

/// [`street_type_follows`] of the text after byte `base + j` of `b` (a whitespace), from the
/// word starts of the 128 bytes from `base` (`starts`, bit `p` for byte `base + p`): the words
/// are looked at where they start, without walking the bytes between them; only words past those
/// 128 bytes are walked to.
fn street_type_after(b: &[u8], base: usize, starts: u128, j: u32) -> bool {
    let mut words = starts & (u128::MAX << (j + 1));
    for word in 0..4 {
        if words == 0 {
            // Past the window: walk on from its end (the text may end there), after the rest of
            // a word that crosses it (one of those already looked at).
            let Some(rest) = b.get(base + 128..).filter(|r| !r.is_empty()) else {
                return false;
            };
            let inside = !is_regex_space(b[base + 127]);
            let skip = if inside {
                rest.iter()
                    .position(|&c| is_regex_space(c))
                    .unwrap_or(rest.len())
            } else {
                0
            };
            return street_type_follows_from(&rest[skip..], word);
        }
        let p = base + words.trailing_zeros() as usize;
        words &= words - 1;
        if word > 0 && starts_with_street_type(&b[p..]) {
            return true;
        }
    }
    false
}

/// Whether the second, third or fourth word of `rest` (which starts with whitespace) begins with
/// one of [`STREET_TYPES`] as a whole word, in any case.
fn street_type_follows(rest: &[u8]) -> bool {
    street_type_follows_from(rest, 0)
}

/// [`street_type_follows`] with `seen` of the four words already looked at before `rest` (which
/// starts with whitespace or in a word that is not one of them).
fn street_type_follows_from(rest: &[u8], seen: usize) -> bool {
    rest.split(|&c| is_regex_space(c))
        .filter(|w| !w.is_empty())
        .enumerate()
        .take(4 - seen)
        .any(|(i, w)| i + seen > 0 && starts_with_street_type(w))
}

/// Whether `w` begins with one of [`STREET_TYPES`], in any case, followed by its end or a byte
/// that is no word character (the pattern's `\b`; a stand-in has `_` for a non-ASCII word
/// character). Numbers in listings are mostly followed by units and nouns, so the lower-cased
/// first two bytes (every street type has two) are looked up first, in a table of 256 x 256
/// bits.
fn starts_with_street_type(w: &[u8]) -> bool {
    static FIRST_TWO: [u64; 1024] = {
        let mut t = [0u64; 1024];
        let mut i = 0;
        while i < STREET_TYPES.len() {
            let b = STREET_TYPES[i].as_bytes();
            let k = (b[0].to_ascii_lowercase() as usize) << 8 | b[1].to_ascii_lowercase() as usize;
            t[k / 64] |= 1 << (k % 64);
            i += 1;
        }
        t
    };
    let [a, b, ..] = *w else {
        return false;
    };
    let k = (a.to_ascii_lowercase() as usize) << 8 | b.to_ascii_lowercase() as usize;
    FIRST_TWO[k / 64] >> (k % 64) & 1 == 1
        && STREET_TYPES.iter().any(|t| {
            w.len() >= t.len()
                && w[..t.len()].eq_ignore_ascii_case(t.as_bytes())
                && !w
                    .get(t.len())
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        })
}

/// The tags of an HTML fragment as `(start, end, text)` byte ranges: the definition of the tags
/// `text::strip_html_tags` reports (a test compares them).
#[cfg(test)]
fn html_tags(s: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    // `<` and `>` are ASCII: the positions memchr finds are character boundaries.
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while let Some(p) = memchr::memchr(b'<', &b[i..]) {
            let start = i + p;
            let next = b.get(start + 1).copied().unwrap_or(0);
            if next.is_ascii_alphabetic() || next == b'/' || next == b'!' {
                if let Some(e) = memchr::memchr(b'>', &b[start..]) {
                    i = start + e + 1;
                    return Some((start, i, &s[start..i]));
                }
            }
            i = start + 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use regex::RegexSet;

    /// The title and the features are searched for phrases joined: the reports are those of a
    /// rubric that has to search them one by one (an extra phrase with a `\n` that never matches
    /// makes its phrase set not joinable), on fields with phrases at their edges, non-ASCII
    /// text, line breaks and pattern cues.
    #[test]
    fn joined_short_fields_score_as_fields_alone() {
        let joined = Rubric::default();
        let mut lex = Lexicons::builtin();
        lex.promo.entries.push(Entry {
            phrase: "never\nseen".into(),
            source: "test".into(),
            note: "test".into(),
        });
        let alone = Rubric::new(RubricConfig::default(), lex);
        assert!(joined.phrases.joinable() && !alone.phrases.joinable());
        let parts = [
            "best",
            "Best seller",
            "#1",
            "rated #1",
            "% off",
            "50",
            "amazon",
            "placeholder",
            "lorem ipsum",
            "free shipping",
            "Sale",
            "wholesale",
            " ",
            "\n",
            "-",
            ".",
            ",",
            "é",
            "\u{2019}",
            "ß",
            "Ünïcode",
            "$5",
            "2019",
            "www.x.com",
            "a@b.io",
            "12 Main Street",
            "USB",
            "Drive",
            "Soft",
            "cotton",
            "Maple",
            "9",
            "x",
        ];
        let mut rng = Rng::new(5);
        let field = |rng: &mut Rng| -> String {
            let n = rng.below(7);
            (0..n).map(|_| parts[rng.below(parts.len())]).collect()
        };
        let mut flagged = 0;
        for _ in 0..20_000 {
            let listing = Listing {
                title: field(&mut rng),
                features: (0..rng.below(6)).map(|_| field(&mut rng)).collect(),
                description: field(&mut rng),
            };
            let input = ProductInput {
                product_name: field(&mut rng),
                ..Default::default()
            };
            let a = joined.score(&listing, Some(&input));
            let b = alone.score(&listing, Some(&input));
            assert_eq!(a, b, "{listing:?}");
            flagged += a.rules.iter().any(|r| r.id.starts_with('X') && !r.passed) as usize;
        }
        assert!(flagged > 5_000, "{flagged}");
    }

    /// A cue of a field is a cue of the fields joined by `\n`: a joined text without one spares
    /// every field its cue pass.
    #[test]
    fn a_cue_of_a_field_is_a_cue_of_the_joined_fields() {
        let parts = [
            " ", "\n", ".", "@", "$", ":", "/", "1", "19", "2019", "555", "4567", "12", "w", "x",
            "com", "www", "://", "Main", "Street", "St", "Drive", "USD", "US", "D", "EUR", "GBP",
            "\u{e9}",
        ];
        let mut rng = Rng::new(12);
        for _ in 0..100_000 {
            let fields: Vec<String> = (0..1 + rng.below(4))
                .map(|_| {
                    let n = rng.below(6);
                    (0..n).map(|_| parts[rng.below(parts.len())]).collect()
                })
                .collect();
            let whole = Cues::of(&fields.join("\n"));
            for f in &fields {
                let c = Cues::of(f);
                assert!(
                    (!c.contact || whole.contact) && (!c.commerce || whole.commerce),
                    "{f:?} in {fields:?}"
                );
            }
        }
    }

    /// The tags stripping reports are the tags of the HTML, on fragments of tags, entities,
    /// stray `<`, `>` and `&`, and non-ASCII text.
    #[test]
    fn stripping_reports_the_html_tags() {
        let parts = [
            "<p>",
            "</p>",
            "<b>",
            "<br/>",
            "<!-- c -->",
            "<a href=x>",
            "< p>",
            "<3",
            "a < b",
            ">",
            "&amp;",
            "&lt;p&gt;",
            "&#60;",
            "&#x3c;b>",
            "&bogus;",
            "&",
            "&<p>",
            "<&>",
            "text",
            " ",
            "\u{e9}",
            "\u{2019}",
            "<",
            "<p",
            "<ul><li>",
        ];
        let mut rng = Rng::new(21);
        let mut tags_seen = 0;
        for _ in 0..50_000 {
            let s: String = (0..rng.below(12))
                .map(|_| parts[rng.below(parts.len())])
                .collect();
            let mut got = Vec::new();
            text::strip_html_tags(&s, |a, b| got.push((a, b)));
            let want: Vec<(usize, usize)> = html_tags(&s).map(|(a, b, _)| (a, b)).collect();
            assert_eq!(got, want, "{s:?}");
            tags_seen += got.len();
        }
        assert!(tags_seen > 50_000, "{tags_seen}");
    }

    /// The street cue read off the word-start masks agrees with the byte loop on long texts of
    /// numbers, words and whitespace only, where the words after a number run past the 128
    /// bytes the masks cover (long words and gaps across that end).
    #[test]
    fn street_cue_agrees_across_the_mask_window() {
        let parts = [
            " ",
            "  ",
            "\t",
            "\n",
            &" ".repeat(40),
            "12 ",
            "9 ",
            "Main",
            "Street",
            "St,",
            "Stx",
            "x",
            "drive",
            &"y".repeat(30),
            &"z".repeat(70),
        ];
        let mut rng = Rng::new(9);
        let mut found = 0;
        for _ in 0..30_000 {
            let mut s = String::new();
            while s.len() < 60 + rng.below(400) {
                s.push_str(parts[rng.below(parts.len())]);
                s.push(' ');
            }
            let (a, b) = (
                Cues::of_ascii_masks(s.as_bytes()),
                Cues::of_ascii_bytes(s.as_bytes()),
            );
            assert_eq!(a.contact, b.contact, "{s:?}");
            found += a.contact as usize;
        }
        assert!(found > 3_000 && found < 27_000, "{found}");
    }

    /// Gate details read as sentences, serialise as those sentences and read back equal.
    #[test]
    fn gate_details_serialise_as_their_sentences() {
        let rubric = Rubric::default();
        let listing = Listing {
            title: "Short title".into(),
            features: vec!["Fine".into(), "x".repeat(90)],
            description: "Too short.".into(),
        };
        let report = rubric.score(&listing, None);
        let details: Vec<String> = report.gates.iter().map(|g| g.detail.to_string()).collect();
        assert_eq!(
            details,
            [
                "title has 11 characters (expected 50–100)",
                "2 features (expected 3–10)",
                "a feature has 90 characters (expected 1–80)",
                "description has 2 words (expected at least 150)",
                &format!("compliance score {} (expected at least 80)", report.score),
            ]
        );
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["gates"][0]["detail"], details[0].as_str());
        let back: Report = serde_json::from_value(json).expect("reads back");
        assert!(matches!(back.gates[0].detail, GateDetail::Text(_)));
        assert_eq!(back, report);
    }

    /// Every non-ASCII character but digits has a stand-in that every class and literal of the
    /// contact and commerce patterns treats exactly like it, case-insensitively (contact) and
    /// not (commerce).
    #[test]
    fn standin_characters_belong_to_the_same_classes() {
        let r = Rubric::default();
        // The classes (`\w` for `\b`) and literal characters of each pattern.
        let contact_classes = [
            r"\w",
            r"\s",
            r"\d",
            r"[^\s<]",
            r"[\w.+-]",
            r"[\w-]",
            r"[\w.-]",
            r"[a-z0-9]",
            r"[a-z0-9-]",
            r"[A-Z]",
            r"[a-z]",
            r"[\s.-]",
        ];
        let contact_literals = "httpswwwcomnetorgiocoshopstorebizinfousStreetAvenueRoadRdBoulevard\
                                BlvdLaneLnDriveSuite:/.@()+1";
        let commerce_classes = [r"\w", r"\s", r"\d", r"[$€£]", r"[\d,]"];
        let commerce_literals = "USDEURGBP1920.,";
        let set = |flags: &str, classes: &[&str], literals: &str| {
            let literals = literals.chars().map(|c| regex::escape(&c.to_string()));
            let patterns: Vec<String> = classes
                .iter()
                .map(|c| c.to_string())
                .chain(literals)
                .collect();
            RegexSet::new(patterns.iter().map(|p| format!("{flags}^{p}$"))).unwrap()
        };
        let sets = [
            set("(?i)", &contact_classes, contact_literals),
            set("", &commerce_classes, commerce_literals),
        ];
        let mut buf = [0u8; 4];
        for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
            let cs: &str = c.encode_utf8(&mut buf);
            let Some(st) = r.ascii_standin(cs) else {
                assert!(r.digit_re.is_match(cs), "{c:?} has no stand-in");
                continue;
            };
            let standin = st.text.as_str();
            assert!(standin.len() == 1 && standin.is_ascii(), "{c:?}");
            assert_eq!([st.at(0), st.at(1)], [0, cs.len()]);
            for set in &sets {
                assert_eq!(
                    set.matches(cs).into_iter().collect::<Vec<_>>(),
                    set.matches(standin).into_iter().collect::<Vec<_>>(),
                    "{c:?} stood in for by {standin:?}"
                );
            }
        }
    }

    /// Whenever a pattern matches a text, the text has that pattern's cue.
    #[test]
    fn cues_are_necessary_for_a_match() {
        let r = Rubric::default();
        let parts = [
            " ", "  ", "\t", "\x0B", "\n", ".", ",", "-", "+", "@", "(", ")", "<", "$", ":", "/",
            "1", "2", "19", "20", "2019", "555", "123", "4567", "12", "a", "b", "w", "W", "x",
            "com", "Com", "co", "us", "io", "www", "WWW", "http", "https://", "://", "Main",
            "Maple", "Street", "St", "st", "ST", "Ave", "Rd", "Drive", "drive", "Suite", "Lane",
            "Blvd", "Road", "USD", "EUR", "GBP", "usd", "mAh", "shop", ".com", "mail", "host", "_",
            "\u{e9}", "\u{20AC}", "\u{A3}", "\u{17F}", "\u{212A}", "\u{A0}",
        ];
        let mut rng = Rng::new(11);
        let (mut contacts, mut commerces) = (0, 0);
        for _ in 0..200_000 {
            let n = 1 + rng.below(12);
            let s: String = (0..n).map(|_| parts[rng.below(parts.len())]).collect();
            let hay = r.ascii_standin(&s).map_or(s.clone(), |t| t.text);
            let cues = Cues::of(&hay);
            if r.contact_re.is_match(&hay) {
                contacts += 1;
                assert!(
                    cues.contact,
                    "{s:?} (stand-in {hay:?}) matches the contact pattern"
                );
            }
            if r.commerce_re.is_match(&hay) {
                commerces += 1;
                assert!(
                    cues.commerce,
                    "{s:?} (stand-in {hay:?}) matches the commerce pattern"
                );
            }
        }
        // The generator reaches every alternative often enough for the check to mean something.
        assert!(
            contacts > 10_000 && commerces > 10_000,
            "{contacts} {commerces}"
        );
        for (text, contact, commerce) in [
            (
                "a plain sentence, with 12 bulbs and 3.5 mm jacks.",
                false,
                false,
            ),
            ("at 12 Maple Grove Street", true, false),
            ("at 12 Maple Grove St.", true, false),
            // A word that starts like a street type is none; a `w` before a `.` is no `www.`.
            ("12 stainless steel blades", false, false),
            ("a sturdy draw. Then", false, false),
            ("now $29.99", false, true),
            ("the 2024 edition", true, true),
            ("help@northpeak.io", true, false),
        ] {
            let c = Cues::of(text);
            assert_eq!((c.contact, c.commerce), (contact, commerce), "{text}");
        }
    }

    /// The bit-mask cues are the byte loop's, on texts that cross 64-byte blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn cue_masks_agree_with_the_byte_loop() {
        let parts = [
            " ", "\t", "\x0B", "\r", ".", "@", "$", ":", "/", "1", "12", "123", "4567", "a", "w",
            "W", "com", "www", "://", "Main", "Street", "St", "Ave", "Suite", "USD", "EUR", "GBP",
            "US", "EU", "GB", "U", "E", "G", "x", "yz", "-",
        ];
        let mut rng = Rng::new(5);
        let mut seen = [[0usize; 2]; 2];
        for _ in 0..100_000 {
            let n = rng.below(90);
            let s: String = (0..n).map(|_| parts[rng.below(parts.len())]).collect();
            let (a, b) = (
                Cues::of_ascii_masks(s.as_bytes()),
                Cues::of_ascii_bytes(s.as_bytes()),
            );
            assert_eq!((a.contact, a.commerce), (b.contact, b.commerce), "{s:?}");
            seen[a.contact as usize][a.commerce as usize] += 1;
        }
        // Every combination of the two cues came up.
        assert!(seen.iter().flatten().all(|&n| n > 1000), "{seen:?}");
    }

    #[test]
    fn byte_tests_match_their_lists() {
        for b in 0u8..=255 {
            let c = b as char;
            assert_eq!(
                is_forbidden_ascii(b),
                b < 128 && FORBIDDEN_CHARS.contains(&c),
                "{c:?}"
            );
            assert_eq!(
                is_cue_byte(b),
                c.is_ascii_digit() || ":@$.UEG".contains(c),
                "{c:?}"
            );
        }
    }

    /// The allocation-free case helpers answer as `to_lowercase` does.
    #[test]
    fn case_helpers_agree_with_to_lowercase() {
        let mut r = Rng::new(3);
        let words = [
            "Drive", "DRIVE", "drive", "Écran", "ÉCRAN", "écran", "İz", "i̇z", "Straße", "",
        ];
        for _ in 0..20_000 {
            let a = crate::text::tests::random_text(&mut r);
            let b = if r.below(2) == 0 {
                a.to_uppercase()
            } else {
                crate::text::tests::random_text(&mut r)
            };
            for (a, b) in [
                (a.as_str(), b.as_str()),
                (words[r.below(10)], words[r.below(10)]),
            ] {
                assert_eq!(
                    same_lowercase(a, b, a.is_ascii() && b.is_ascii()),
                    a.to_lowercase() == b.to_lowercase(),
                    "{a:?} {b:?}"
                );
                assert_eq!(with_lowercase(a, str::to_owned), a.to_lowercase(), "{a:?}");
                let counts = (
                    a.chars().count(),
                    a.chars().filter(|c| c.is_alphabetic()).count(),
                    a.chars().filter(|c| c.is_uppercase()).count(),
                );
                assert_eq!(letter_counts(a, false), counts, "{a:?}");
                if a.is_ascii() {
                    assert_eq!(letter_counts(a, true), counts, "{a:?}");
                }
            }
        }
    }

    fn spans(re: &Regex, s: &str) -> Vec<Vec<Option<(usize, usize)>>> {
        re.captures_iter(s)
            .map(|c| c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect())
            .collect()
    }

    /// The contact and commerce patterns find the same spans on a text and on its stand-in.
    #[test]
    fn standin_matches_like_the_text() {
        let r = Rubric::default();
        let parts = [
            "é", "–", "’", "°", "€", "£", "\u{17F}", "\u{212A}", "٣", "\u{a0}", "\u{2009}",
            "\u{3000}", "\u{85}", "\u{200d}", "\u{301}", "™", "😀", "中", "ß", "_", "½", "²", "Ω",
            " ", "  ", ".", ",", "-", "+", "@", "(", ")", "<", "$", "1", "2", "19", "20", "2019",
            "555", "123", "4567", "a", "b", "x", "com", "co", "us", "io", "www", "http",
            "https://", "://", "Main", "Street", "St", "Ave", "USD", "EUR", "mAh", "shop", ".com",
            "mail", "host", "\n",
        ];
        let mut rng = Rng::new(7);
        let mut checked = 0;
        for _ in 0..60_000 {
            let n = 1 + rng.below(14);
            let s: String = (0..n).map(|_| parts[rng.below(parts.len())]).collect();
            let Some(st) = r.ascii_standin(&s) else {
                continue;
            };
            let standin = st.text.as_str();
            assert!(standin.is_ascii() && standin.len() == s.chars().count());
            // Every stand-in byte maps to the start of its character, and the end to the end.
            let starts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
            assert_eq!(
                (0..=standin.len()).map(|i| st.at(i)).collect::<Vec<_>>(),
                starts
            );
            for re in [&r.contact_re, &r.commerce_re] {
                let mapped: Vec<Vec<Option<(usize, usize)>>> = spans(re, standin)
                    .into_iter()
                    .map(|c| {
                        c.into_iter()
                            .map(|m| m.map(|(a, b)| (st.at(a), st.at(b))))
                            .collect()
                    })
                    .collect();
                assert_eq!(spans(re, &s), mapped, "{s:?} vs {standin:?}");
            }
            checked += 1;
        }
        assert!(checked > 30_000, "{checked}");
    }

    #[test]
    fn count_letters_agrees_with_a_char_scan() {
        let mut r = Rng::new(5);
        for _ in 0..100_000 {
            let s = crate::text::tests::random_text(&mut r);
            let (mut letters, mut foreign) = (0, 0);
            for c in s.chars().filter(|c| c.is_alphabetic()) {
                letters += 1;
                foreign += ((c as u32) > 0x024F) as usize;
            }
            assert_eq!(count_letters(&s), (letters, foreign), "{s:?}");
            assert_eq!(foreign_letters(&s), foreign, "{s:?}");
        }
    }

    #[test]
    fn plain_allowed_tags_are_the_ones_the_full_check_allows() {
        for tag in [
            "<p>",
            "</P>",
            "<li>",
            "<br/>",
            "<br />",
            "<b>",
            "<STRONG>",
            "<em>",
            "<i>",
            "<ul>",
            "<ol>",
            "<div>",
            "<p\x0Bonclick=x>",
            "<p\tstyle=x>",
            "<a>",
            "<!-- c -->",
            "<p2>",
            "<pé>",
            "<<p>",
            "<//li>",
            "</>",
            "<x",
        ] {
            if plain_allowed_tag(tag) {
                let lower = tag.to_ascii_lowercase();
                assert!(lower.split_whitespace().nth(1).is_none(), "{tag:?}");
                let name: String = lower
                    .trim_start_matches('<')
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                assert!(ALLOWED_TAGS.contains(&name.as_str()), "{tag:?}");
            }
        }
        assert!(plain_allowed_tag("<p>") && plain_allowed_tag("</LI>"));
        assert!(!plain_allowed_tag("<div>") && !plain_allowed_tag("<p style=x>"));
    }
}
