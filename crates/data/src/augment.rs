//! Augmentation: feature reordering, synonym substitution and style variation of app samples.
//! Every variant is rescored and kept only if it still passes the rubric; variants are marked
//! `augmented` (with the source id and the operations), so they never land in a validation set.

use serde_json::Value;

use crate::rng::Rng;
use crate::rubric::Rubric;
use crate::sample::{Listing, Sample};

/// Synonyms (`word<TAB>alt1|alt2<TAB>source`) from `data/lexicons/synonyms.tsv`.
pub fn builtin_synonyms() -> Vec<(String, Vec<String>)> {
    parse_synonyms(include_str!("../../../data/lexicons/synonyms.tsv"))
}

pub fn parse_synonyms(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut c = l.split('\t');
            let w = c.next()?.trim().to_lowercase();
            let alts: Vec<String> = c
                .next()?
                .split('|')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect();
            (!w.is_empty() && !alts.is_empty()).then_some((w, alts))
        })
        .collect()
}

/// The augmentation operations.
pub const OPS: &[&str] = &["reorder_features", "synonyms", "style"];

/// One variant: the new record (raw JSON with every original field) and the listing.
#[derive(Debug, Clone)]
pub struct Variant {
    pub id: String,
    pub of: String,
    pub ops: Vec<String>,
    pub listing: Listing,
    pub record: Value,
}

/// Replaces whole words found in `synonyms`, keeping the first letter's case. At most `max`
/// replacements, chosen by `rng`.
fn substitute(
    text: &str,
    synonyms: &[(String, Vec<String>)],
    rng: &mut Rng,
    max: usize,
) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut last = 0;
    for (at, w) in crate::text::words(text) {
        if n >= max {
            break;
        }
        let lw = w.to_lowercase();
        if let Some((_, alts)) = synonyms.iter().find(|(k, _)| *k == lw) {
            if rng.below(2) == 0 {
                let alt = &alts[rng.below(alts.len())];
                out.push_str(&text[last..at]);
                if w.chars().next().is_some_and(char::is_uppercase) {
                    let mut c = alt.chars();
                    if let Some(f) = c.next() {
                        out.extend(f.to_uppercase());
                        out.push_str(c.as_str());
                    }
                } else {
                    out.push_str(alt);
                }
                last = at + w.len();
                n += 1;
            }
        }
    }
    out.push_str(&text[last..]);
    (out, n)
}

/// Switches a description between HTML paragraphs and plain text.
fn restyle(description: &str) -> String {
    if description.contains("<p>") {
        let plain = description
            .replace("</p>", "\n\n")
            .replace("<p>", "")
            .replace("<br>", "\n")
            .replace("<br/>", "\n");
        let plain = plain
            .replace("<ul>", "")
            .replace("</ul>", "")
            .replace("<li>", "- ")
            .replace("</li>", "\n");
        crate::text::strip_html(&plain).trim().to_owned()
    } else {
        description
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| format!("<p>{}</p>", p.replace('&', "&amp;").replace('<', "&lt;")))
            .collect::<Vec<_>>()
            .join("")
    }
}

/// Makes up to `per_sample` variants of an app sample; only variants that pass `rubric` and
/// differ from the original are returned.
pub fn augment_sample(
    s: &Sample,
    rubric: &Rubric,
    synonyms: &[(String, Vec<String>)],
    per_sample: usize,
    rng: &mut Rng,
) -> Vec<Variant> {
    let (Some(listing), Some(_)) = (&s.listing, &s.app) else {
        return Vec::new();
    };
    let Ok(base) = serde_json::from_str::<Value>(&s.raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in 0..per_sample {
        let mut l = listing.clone();
        let mut ops = Vec::new();
        // Each variant uses at least one operation; which ones is seeded.
        let pick = 1 + rng.below(7);
        if pick & 1 != 0 && l.features.len() > 1 {
            let orig = l.features.clone();
            for _ in 0..4 {
                rng.shuffle(&mut l.features);
                if l.features != orig {
                    break;
                }
            }
            if l.features != orig {
                ops.push("reorder_features".to_owned());
            }
        }
        if pick & 2 != 0 {
            let (d, n1) = substitute(&l.description, synonyms, rng, 6);
            let mut n2 = 0;
            for f in &mut l.features {
                let (nf, n) = substitute(f, synonyms, rng, 1);
                *f = nf;
                n2 += n;
            }
            l.description = d;
            if n1 + n2 > 0 {
                ops.push("synonyms".to_owned());
            }
        }
        if pick & 4 != 0 {
            l.description = restyle(&l.description);
            ops.push("style".to_owned());
        }
        if ops.is_empty() || l == *listing || out.iter().any(|v: &Variant| v.listing == l) {
            continue;
        }
        if !rubric.score(&l, s.input.as_ref()).passed {
            continue;
        }
        let id = format!("{}~aug{}", s.id, k + 1);
        let mut rec = base.clone();
        if let Some(obj) = rec.as_object_mut() {
            obj.insert("id".into(), Value::String(id.clone()));
            if let Some(o) = obj.get_mut("output").and_then(Value::as_object_mut) {
                o.insert("title".into(), Value::String(l.title.clone()));
                o.insert("features_formatted".into(), serde_json::json!(l.features));
                o.insert("description".into(), Value::String(l.description.clone()));
            }
            obj.insert(
                "augmented".into(),
                serde_json::json!({ "of": s.id, "ops": ops }),
            );
        }
        out.push(Variant {
            id,
            of: s.id.clone(),
            ops,
            listing: l,
            record: rec,
        });
    }
    out
}
