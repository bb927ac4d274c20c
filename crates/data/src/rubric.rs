//! The rubric: hard gates and a 100-point compliance score, one source of truth for filtering,
//! training-set building and evaluation.
//!
//! Every rule is deterministic and reports its evidence (the field, the offending span, and the
//! lexicon row's source). Hard-fail rules cap the total at 59 (Walmart's "Poor" band). The rule
//! table, its points and sources are documented in the README ("The rubric").

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

use crate::lexicon::{Entry, Lexicons};
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
    RuleSpec { id: "D-LEN", points: 12, hard_fail: false, check: "description at least 150 words (hard fail under 50), at most 4,000 characters", basis: "W4, W5" },
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
    pub id: String,
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
    pub id: String,
    pub passed: bool,
    /// What was measured, e.g. "title has 43 characters".
    pub detail: String,
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
    phrases: AhoCorasick,
    phrase_meta: Vec<(Kind, Entry)>,
    attributes: HashSet<String>,
    contact_re: Regex,
    commerce_re: Regex,
}

const ALLOWED_TAGS: &[&str] = &["p", "ul", "ol", "li", "br", "b", "strong", "em", "i"];
const FORBIDDEN_CHARS: &[char] = &[
    '~', '!', '*', '$', '?', '_', '{', '}', '^', '¬', '¦', '™', '®', '©',
];
/// Words after a number that make it a quantity, not a year ("2000 mAh").
const UNITS: &[&str] = &[
    "mah", "w", "watt", "watts", "lm", "lumens", "rpm", "mm", "cm", "ml", "g", "kg", "lb", "lbs",
    "psi", "v", "volt", "volts", "btu", "sq", "ft", "pcs", "pieces", "count", "dpi", "hz", "mbps",
    "gb", "tb", "x", "threads", "thread", "cc", "oz", "sheets", "series",
];

impl Default for Rubric {
    fn default() -> Self {
        Self::new(RubricConfig::default(), Lexicons::builtin())
    }
}

impl Rubric {
    pub fn new(config: RubricConfig, lex: Lexicons) -> Self {
        let mut meta: Vec<(Kind, Entry)> = Vec::new();
        let mut seen = HashSet::new();
        for (kind, l) in [
            (Kind::Promo, &lex.promo),
            (Kind::Contact, &lex.contact),
            (Kind::Commerce, &lex.commerce),
            (Kind::Retail, &lex.retailers),
            (Kind::Claims, &lex.claims),
            (Kind::Testimonial, &lex.testimonials),
            (Kind::Placeholder, &lex.placeholders),
        ] {
            for e in &l.entries {
                if seen.insert(e.phrase.clone()) {
                    meta.push((kind, e.clone()));
                }
            }
        }
        // Phrases are plain strings from data files; building cannot fail for them.
        let phrases = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(meta.iter().map(|(_, e)| e.phrase.as_str()))
            .expect("lexicon phrases build a matcher");
        let attributes = lex
            .attributes
            .entries
            .iter()
            .map(|e| e.phrase.to_lowercase())
            .collect();
        // Fixed patterns, covered by tests: compiling them cannot fail.
        let contact_re = Regex::new(concat!(
            r"(?i)(?P<url>\b(?:https?://|www\.)[^\s<]+|\b[a-z0-9][a-z0-9-]*\.(?:com|net|org|io|co|shop|store|biz|info|us)\b)",
            r"|(?P<email>\b[\w.+-]+@[\w-]+\.[\w.-]+)",
            r"|(?P<phone>(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b)",
            r"|(?P<address>\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Suite)\b)"
        ))
        .expect("contact pattern compiles");
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
            contact_re,
            commerce_re,
        }
    }

    /// Scores a listing. `input` (the product) lets T-FORM check the product noun and X-RETAIL
    /// accept retailer names that are part of the product name; `None` skips those refinements.
    pub fn score(&self, listing: &Listing, input: Option<&ProductInput>) -> Report {
        let cfg = &self.config;
        let title = listing.title.trim();
        let title_chars = char_len(title);
        let visible = text::strip_html(&listing.description);
        let description_words = text::word_count(&visible);
        let feature_count = listing.features.len();
        let automotive = input.is_some_and(|i| i.top_category().eq_ignore_ascii_case("automotive"));

        let mut rules: Vec<RuleResult> = RULES
            .iter()
            .map(|r| RuleResult {
                id: r.id.to_owned(),
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
        let title_words: Vec<(usize, &str)> = words(title).collect();
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
                let nouns: Vec<String> = words(&inp.product_name)
                    .map(|(_, w)| w.to_lowercase())
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
            let has_attr = title.chars().any(|c| c.is_ascii_digit())
                || title_words
                    .iter()
                    .any(|(_, w)| self.attributes.contains(&w.to_lowercase()));
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

        // T-CASE
        {
            let (mut upper, mut letters) = (0usize, 0usize);
            for (_, w) in &title_words {
                let n = w.chars().filter(|c| c.is_alphabetic()).count();
                let u = w.chars().filter(|c| c.is_uppercase()).count();
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
            let mut counts: HashMap<String, (usize, usize, &str)> = HashMap::new();
            for (at, w) in &title_words {
                if w.chars().count() < 2 || is_stopword(w) || !w.chars().any(char::is_alphabetic) {
                    continue;
                }
                let e = counts.entry(w.to_lowercase()).or_insert((0, *at, w));
                e.0 += 1;
            }
            let mut reps: Vec<_> = counts.into_iter().filter(|(_, c)| c.0 > 2).collect();
            reps.sort_by_key(|(_, c)| c.1);
            for (word, (n, at, w)) in reps {
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
        check_chars("title", title);
        let feature_fields: Vec<String> = (0..feature_count)
            .map(|i| format!("features[{i}]"))
            .collect();
        for (i, f) in listing.features.iter().enumerate() {
            check_chars(&feature_fields[i], f);
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
        let mut seen_features: HashSet<String> = HashSet::new();
        for (i, f) in listing.features.iter().enumerate() {
            let field = &feature_fields[i];
            let t = f.trim();
            let n = char_len(t);
            if n == 0 || n > cfg.feature_max_chars {
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
            if n > 0 && !seen_features.insert(t.to_lowercase()) {
                fail("F-LEN", whole(field, t, "duplicate feature".into()), false);
            }
            if t.contains('<') && t.contains('>') {
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
        let desc_chars = char_len(&listing.description);
        if description_words < cfg.description_min_words || desc_chars > cfg.description_max_chars {
            let hard = description_words < cfg.description_hard_min_words;
            let reason = if desc_chars > cfg.description_max_chars {
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

        // D-HTML
        for (start, end, tag) in html_tags(&listing.description) {
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
        let mut scan = |field: &str, s: &str, is_feature: bool| {
            for m in self.phrases.find_iter(s) {
                if !on_word_boundaries(s, m.start(), m.end()) {
                    continue;
                }
                let (kind, entry) = &self.phrase_meta[m.pattern().as_usize()];
                let reason = format!("{} [{}]", entry.note, entry.source);
                let e = || ev(field, s, m.start(), m.end(), reason.clone());
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
            for caps in self.contact_re.captures_iter(s) {
                let (name, m) = ["url", "email", "phone", "address"]
                    .iter()
                    .find_map(|n| caps.name(n).map(|m| (*n, m)))
                    .expect("one alternative matched");
                fail(
                    "X-CONTACT",
                    ev(
                        field,
                        s,
                        m.start(),
                        m.end(),
                        format!("{name} [W1, W2, A-1]"),
                    ),
                    true,
                );
            }
            for caps in self.commerce_re.captures_iter(s) {
                if let Some(m) = caps.name("price") {
                    fail(
                        "X-COMMERCE",
                        ev(field, s, m.start(), m.end(), "price [W2, A-1]".into()),
                        false,
                    );
                } else if let Some(m) = caps.name("year") {
                    if !automotive && !followed_by_unit(&s[m.end()..]) {
                        fail(
                            "X-COMMERCE",
                            ev(field, s, m.start(), m.end(), "year or date [W1]".into()),
                            false,
                        );
                    }
                }
            }
        };
        scan("title", title, false);
        for (i, f) in listing.features.iter().enumerate() {
            scan(&feature_fields[i], f, true);
        }
        scan("description", &visible, false);

        // X-LANG: mostly Latin letters, and English function words in longer descriptions.
        {
            let all = format!("{title} {visible}");
            let (mut letters, mut foreign) = (0usize, 0usize);
            for c in all.chars().filter(|c| c.is_alphabetic()) {
                letters += 1;
                if (c as u32) > 0x024F {
                    foreign += 1;
                }
            }
            if letters > 0 && foreign * 10 > letters {
                fail("X-LANG", whole("description", &visible, format!("{foreign} of {letters} letters are not Latin; listings must be in English")), false);
            } else if description_words >= 40 {
                let stop = words(&visible).filter(|(_, w)| is_stopword(w)).count();
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

        let bad_feature = listing
            .features
            .iter()
            .map(|f| char_len(f.trim()))
            .find(|&n| n == 0 || n > cfg.feature_max_chars);
        let gates = vec![
            Gate {
                id: "title_length".into(),
                passed: (cfg.title_min_chars..=cfg.title_max_chars).contains(&title_chars),
                detail: format!(
                    "title has {title_chars} characters (expected {}–{})",
                    cfg.title_min_chars, cfg.title_max_chars
                ),
            },
            Gate {
                id: "feature_count".into(),
                passed: (cfg.features_min..=cfg.features_max).contains(&feature_count),
                detail: format!(
                    "{feature_count} features (expected {}–{})",
                    cfg.features_min, cfg.features_max
                ),
            },
            Gate {
                id: "feature_length".into(),
                passed: bad_feature.is_none(),
                detail: match bad_feature {
                    Some(n) => format!(
                        "a feature has {n} characters (expected 1–{})",
                        cfg.feature_max_chars
                    ),
                    None => format!("every feature has 1–{} characters", cfg.feature_max_chars),
                },
            },
            Gate {
                id: "description_words".into(),
                passed: description_words >= cfg.description_min_words,
                detail: format!(
                    "description has {description_words} words (expected at least {})",
                    cfg.description_min_words
                ),
            },
            Gate {
                id: "compliance".into(),
                passed: score >= cfg.pass_score,
                detail: format!(
                    "compliance score {score} (expected at least {})",
                    cfg.pass_score
                ),
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

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F | 0x2B50 | 0x2B55)
}

fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let phrase = &text[start..end];
    let w = |c: char| c.is_alphanumeric();
    let first_inner = phrase.chars().next().is_some_and(w);
    let last_inner = phrase.chars().next_back().is_some_and(w);
    (!first_inner || !text[..start].chars().next_back().is_some_and(w))
        && (!last_inner || !text[end..].chars().next().is_some_and(w))
}

fn followed_by_unit(rest: &str) -> bool {
    let next = rest.trim_start_matches([' ', '-']);
    let word: String = next
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    UNITS.contains(&word.as_str())
}

/// The tags of an HTML fragment as `(start, end, text)` byte ranges.
fn html_tags(s: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = s[i..].find('<') {
        let start = i + p;
        let next = s[start + 1..].chars().next();
        if next.is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            if let Some(e) = s[start..].find('>') {
                out.push((start, start + e + 1, &s[start..start + e + 1]));
                i = start + e + 1;
                continue;
            }
        }
        i = start + 1;
    }
    out
}
