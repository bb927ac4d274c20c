//! Lexicons: the phrase lists behind the compliance rules, kept as auditable TSV data files
//! (`phrase<TAB>source<TAB>note`) in `data/lexicons/`. The defaults are compiled in; users extend
//! them with their own files of the same names (`--lexicons DIR`).

use std::path::Path;

use crate::error::DataError;
use crate::phrase_set::PhraseSet;

/// The lexicons the rubric uses, by file stem.
pub const LEXICON_NAMES: &[&str] = &[
    "promo",
    "contact",
    "commerce",
    "retailers",
    "claims",
    "testimonials",
    "attributes",
    "placeholders",
    "quantities",
    "address_cues",
];

const DEFAULTS: &[(&str, &str)] = &[
    ("promo", include_str!("../../../data/lexicons/promo.tsv")),
    (
        "contact",
        include_str!("../../../data/lexicons/contact.tsv"),
    ),
    (
        "commerce",
        include_str!("../../../data/lexicons/commerce.tsv"),
    ),
    (
        "retailers",
        include_str!("../../../data/lexicons/retailers.tsv"),
    ),
    ("claims", include_str!("../../../data/lexicons/claims.tsv")),
    (
        "testimonials",
        include_str!("../../../data/lexicons/testimonials.tsv"),
    ),
    (
        "attributes",
        include_str!("../../../data/lexicons/attributes.tsv"),
    ),
    (
        "placeholders",
        include_str!("../../../data/lexicons/placeholders.tsv"),
    ),
    (
        "quantities",
        include_str!("../../../data/lexicons/quantities.tsv"),
    ),
    (
        "address_cues",
        include_str!("../../../data/lexicons/address_cues.tsv"),
    ),
];

/// One row of a lexicon file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The phrase, lower case; matched case-insensitively on word boundaries.
    pub phrase: String,
    /// Where the rule comes from (see `data/lexicons/README.md` and the rubric notes).
    pub source: String,
    pub note: String,
}

/// A phrase list with a compiled matcher.
#[derive(Debug, Clone)]
pub struct Lexicon {
    pub name: String,
    pub entries: Vec<Entry>,
    matcher: PhraseSet,
}

/// A phrase found in a text: byte range and the lexicon entry.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub start: usize,
    pub end: usize,
    pub entry: &'a Entry,
}

impl Lexicon {
    /// Builds a lexicon from entries. Phrases are lower-cased and de-duplicated.
    pub fn new(name: &str, mut entries: Vec<Entry>) -> Result<Self, DataError> {
        for e in &mut entries {
            e.phrase = e.phrase.to_lowercase();
        }
        let mut seen = std::collections::HashSet::new();
        entries.retain(|e| seen.insert(e.phrase.clone()));
        let matcher = PhraseSet::new(entries.iter().map(|e| e.phrase.as_str())).map_err(|e| {
            DataError::Lexicon {
                name: name.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            name: name.to_owned(),
            entries,
            matcher,
        })
    }

    /// Parses a TSV lexicon. `origin` names the file in errors.
    pub fn parse(name: &str, text: &str, origin: &str) -> Result<Vec<Entry>, DataError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = line.split('\t');
            let phrase = cols.next().unwrap_or("").trim();
            let source = cols.next().unwrap_or("").trim();
            let note = cols.next().unwrap_or("").trim();
            if phrase.is_empty() || source.is_empty() {
                return Err(DataError::Lexicon {
                    name: name.to_owned(),
                    reason: format!(
                        "{origin}:{}: expected `phrase<TAB>source<TAB>note`, every row needs a phrase and a source",
                        i + 1
                    ),
                });
            }
            out.push(Entry {
                phrase: phrase.to_owned(),
                source: source.to_owned(),
                note: note.to_owned(),
            });
        }
        Ok(out)
    }

    /// All phrases found in `text`, on word boundaries (the search of [`PhraseSet::find`]).
    pub fn find_all(&self, text: &str) -> Vec<Hit<'_>> {
        self.matcher
            .find(text)
            .into_iter()
            .map(|m| Hit {
                start: m.start,
                end: m.end,
                entry: &self.entries[m.phrase],
            })
            .collect()
    }

    /// The first phrase found in `text`, on word boundaries.
    pub fn find_first(&self, text: &str) -> Option<Hit<'_>> {
        self.find_all(text).into_iter().next()
    }

    /// Whether `word` (one word, any case) is in the lexicon.
    pub fn contains_word(&self, word: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.phrase.eq_ignore_ascii_case(word))
    }
}

/// The set of lexicons the rubric uses.
#[derive(Debug, Clone)]
pub struct Lexicons {
    pub promo: Lexicon,
    pub contact: Lexicon,
    pub commerce: Lexicon,
    pub retailers: Lexicon,
    pub claims: Lexicon,
    pub testimonials: Lexicon,
    pub attributes: Lexicon,
    pub placeholders: Lexicon,
    /// Units and count nouns: a number followed by one is a quantity (no year, no street number).
    pub quantities: Lexicon,
    /// Words that put the number after them in an address.
    pub address_cues: Lexicon,
}

impl Lexicons {
    /// The phrase lexicons, searched in every field of a listing, in the rubric's order: promo,
    /// contact, commerce, retailers, claims, testimonials, placeholders.
    pub fn phrase_lexicons(&self) -> [&Lexicon; 7] {
        [
            &self.promo,
            &self.contact,
            &self.commerce,
            &self.retailers,
            &self.claims,
            &self.testimonials,
            &self.placeholders,
        ]
    }

    /// The compiled-in defaults (the files in `data/lexicons/`).
    pub fn builtin() -> Self {
        // The defaults are part of the source tree and covered by tests; failing here is a bug.
        Self::load(None).expect("built-in lexicons are valid")
    }

    /// The defaults, extended with rows from `DIR/<name>.tsv` for each file that exists there.
    pub fn load(extra_dir: Option<&Path>) -> Result<Self, DataError> {
        let mut built = Vec::new();
        for name in LEXICON_NAMES {
            let default = DEFAULTS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .unwrap_or("");
            let mut entries = Lexicon::parse(name, default, &format!("data/lexicons/{name}.tsv"))?;
            if let Some(dir) = extra_dir {
                let path = dir.join(format!("{name}.tsv"));
                if path.exists() {
                    let text = std::fs::read_to_string(&path).map_err(|e| DataError::Io {
                        path: path.clone(),
                        source: e,
                    })?;
                    entries.extend(Lexicon::parse(name, &text, &path.display().to_string())?);
                }
            }
            built.push(Lexicon::new(name, entries)?);
        }
        let mut it = built.into_iter();
        let mut next = || it.next().expect("one lexicon per name");
        Ok(Self {
            promo: next(),
            contact: next(),
            commerce: next(),
            retailers: next(),
            claims: next(),
            testimonials: next(),
            attributes: next(),
            placeholders: next(),
            quantities: next(),
            address_cues: next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lexicons_parse_and_match_on_word_boundaries() {
        let lx = Lexicons::builtin();
        assert!(lx.promo.find_first("Wholesale pack of 12").is_none());
        let hit = lx.promo.find_first("A HOT SALE item").unwrap();
        assert_eq!(hit.entry.phrase, "hot sale");
        assert!(lx.promo.find_first("Rated #1 by users").is_some());
        assert!(lx.commerce.find_first("Save 20% off today").is_some());
        assert!(lx.retailers.find_first("Seen on Amazon").is_some());
        assert!(lx.retailers.find_first("Amazonian green").is_none());
    }

    #[test]
    fn user_quantities_and_address_cues_steer_the_address_check() {
        use crate::rubric::{Rubric, RubricConfig};
        use crate::sample::Listing;
        let contact_ok = |lx: Lexicons, text: &str| {
            let listing = Listing {
                title: "Northpeak Trail Runner 2 Shoe, Breathable Mesh, Size 10, Black".into(),
                features: vec![
                    "Breathable mesh upper".into(),
                    "Cushioned sole".into(),
                    "Grippy outsole".into(),
                ],
                description: text.into(),
            };
            let r = Rubric::new(RubricConfig::default(), lx).score(&listing, None);
            r.rules.iter().find(|r| r.id == "X-CONTACT").unwrap().passed
        };
        let dir = tempfile::tempdir().unwrap();
        // Built in: a number before a count noun is no street number; "near" is no address cue.
        assert!(contact_ok(
            Lexicons::builtin(),
            "It fits 4 Wheel Drive trucks."
        ));
        assert!(contact_ok(Lexicons::builtin(), "Sold near 5 Bingo Lane."));
        assert!(!contact_ok(Lexicons::builtin(), "Made at 5 Bingo Lane."));
        std::fs::write(
            dir.path().join("quantities.tsv"),
            "bingo\tmy-team\tgame count\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("address_cues.tsv"), "near\tmy-team\tours\n").unwrap();
        let lx = || Lexicons::load(Some(dir.path())).unwrap();
        assert!(contact_ok(lx(), "Made at 5 Bingo Lane."));
        assert!(!contact_ok(lx(), "Sold near 5 Maple Lane."));
    }

    #[test]
    fn rows_need_a_source() {
        let err = Lexicon::parse("promo", "wow\n", "x.tsv").unwrap_err();
        assert!(err.to_string().contains("x.tsv:1"), "{err}");
    }

    #[test]
    fn user_rows_extend_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("promo.tsv"), "blowout\tmy-team\tours\n").unwrap();
        let lx = Lexicons::load(Some(dir.path())).unwrap();
        assert!(lx.promo.find_first("A blowout event").is_some());
        assert!(lx.promo.find_first("hot sale").is_some());
    }
}
