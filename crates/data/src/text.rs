//! Text helpers shared by the rubric, dedup and the completion parser: HTML stripping,
//! entity decoding, word counting and normalisation.

/// Removes HTML tags and decodes entities, so that word counts see only the visible text.
///
/// Block-level tags (`p`, `li`, `br`, ...) become a space so that words on either side stay apart.
/// Unknown entities are kept verbatim. Never fails: malformed markup degrades to text.
pub fn strip_html(s: &str) -> String {
    if !s.contains(['<', '&']) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(['<', '&']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix('<') {
            match tag_end(tail) {
                Some(end) => {
                    out.push(' ');
                    rest = &tail[end..];
                }
                None => {
                    out.push('<');
                    rest = after;
                }
            }
        } else {
            match decode_entity(tail) {
                Some((ch, len)) => {
                    out.push(ch);
                    rest = &tail[len..];
                }
                None => {
                    out.push('&');
                    rest = &tail[1..];
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length in bytes of the tag at the start of `s` (which starts with `<`), if it is one.
fn tag_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let next = *b.get(1)?;
    if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!') {
        return None;
    }
    s.find('>').map(|i| i + 1)
}

/// Decodes one entity at the start of `s` (which starts with `&`): returns the character and the
/// entity's length in bytes.
pub fn decode_entity(s: &str) -> Option<(char, usize)> {
    // Entities are short and ASCII: look for the `;` in the first 12 bytes only.
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let name = &s[1..end];
    let ch = if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        char::from_u32(code)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            "rsquo" => '’',
            "lsquo" => '‘',
            "rdquo" => '”',
            "ldquo" => '“',
            "deg" => '°',
            "trade" => '™',
            "reg" => '®',
            "copy" => '©',
            "times" => '×',
            "frac12" => '½',
            _ => return None,
        }
    };
    Some((ch, end + 1))
}

/// Counts words: maximal runs of characters that are neither whitespace nor pure punctuation.
/// A run counts when it holds at least one letter or digit ("—" alone is not a word).
pub fn word_count(visible: &str) -> usize {
    visible
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// Number of words in an HTML description, counted after stripping tags and entities.
pub fn description_words(html: &str) -> usize {
    word_count(&strip_html(html))
}

/// Number of Unicode scalar values (what the rubric means by "characters").
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Iterates over words as `(byte_start, word)`: runs of alphanumerics, apostrophes and inner
/// hyphens. Used for repeated-word, capitalisation and year checks.
pub fn words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut idx = 0;
    std::iter::from_fn(move || {
        let bytes = s.as_bytes();
        // Skip to the start of a word.
        while idx < s.len() {
            let ch = s[idx..].chars().next()?;
            if ch.is_alphanumeric() {
                break;
            }
            idx += ch.len_utf8();
        }
        if idx >= s.len() {
            return None;
        }
        let start = idx;
        while idx < s.len() {
            let ch = s[idx..].chars().next()?;
            let inner = (ch == '\'' || ch == '’' || ch == '-')
                && s[idx + ch.len_utf8()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric);
            if ch.is_alphanumeric() || inner {
                idx += ch.len_utf8();
            } else {
                break;
            }
        }
        let _ = bytes;
        Some((start, &s[start..idx]))
    })
}

/// Normalises text for duplicate detection: visible text, lower case, letters and digits only,
/// single spaces.
pub fn normalise(s: &str) -> String {
    let visible = strip_html(s);
    let mut out = String::with_capacity(visible.len());
    for (_, w) in words(&visible) {
        if !out.is_empty() {
            out.push(' ');
        }
        for ch in w.chars() {
            if ch.is_alphanumeric() {
                out.extend(ch.to_lowercase());
            }
        }
    }
    out
}

/// Small English function words: not counted as content words in repetition checks, and used as
/// a signal that a text is English.
pub const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "its", "of", "on", "or", "that", "the", "this", "to", "with", "your", "you", "while", "so",
    "can", "when", "each", "every", "all", "up", "out", "more", "than", "over", "after", "before",
];

/// Whether `w` (any case) is one of [`STOPWORDS`].
pub fn is_stopword(w: &str) -> bool {
    STOPWORDS.iter().any(|s| s.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_tags_and_entities() {
        assert_eq!(
            strip_html("<p>Salt&amp;pepper</p><ul><li>One</li></ul>"),
            " Salt&pepper   One  "
        );
        assert_eq!(strip_html("3 < 4 & 5 > 2"), "3 < 4 & 5 > 2");
        assert_eq!(strip_html("caf&#233; &#x41;"), "café A");
    }

    #[test]
    fn counts_words_after_stripping() {
        assert_eq!(description_words("<p>one two</p><p>three</p>"), 3);
        assert_eq!(description_words("one — two"), 2);
        assert_eq!(description_words("<b>a</b>&nbsp;b"), 2);
        assert_eq!(description_words(""), 0);
    }

    #[test]
    fn words_keep_inner_hyphens_and_apostrophes() {
        let w: Vec<_> = words("Men's all-weather (5-pack), 12 oz.")
            .map(|x| x.1)
            .collect();
        assert_eq!(w, ["Men's", "all-weather", "5-pack", "12", "oz"]);
    }

    #[test]
    fn normalise_folds_case_and_markup() {
        assert_eq!(
            normalise("<p>Hello, WORLD!</p> 5-pack"),
            "hello world 5pack"
        );
    }
}
