//! Text helpers shared by the rubric, dedup and the completion parser: HTML stripping,
//! entity decoding, word counting and normalisation.

/// Removes HTML tags and decodes entities, so that word counts see only the visible text.
///
/// Block-level tags (`p`, `li`, `br`, ...) become a space so that words on either side stay apart.
/// Unknown entities are kept verbatim. Never fails: malformed markup degrades to text.
pub fn strip_html(s: &str) -> String {
    strip_html_tags(s, |_, _| {})
}

/// [`strip_html`], calling `tag(start, end)` with the byte range of every tag it removes, in
/// order: a `<` followed by a letter, `/` or `!`, up to the next `>` (what the rubric's HTML
/// check reads, found in the same walk).
pub fn strip_html_tags(s: &str, mut tag: impl FnMut(usize, usize)) -> String {
    // `<` and `&` are ASCII: byte positions found by memchr are character boundaries.
    if memchr::memchr2(b'<', b'&', s.as_bytes()).is_none() {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    walk_visible(s, |piece| match piece {
        Visible::Text(t) => out.push_str(t),
        Visible::Char(c) => out.push(c),
        Visible::Tag(start, end) => {
            out.push(' ');
            tag(start, end);
        }
    });
    out
}

/// A piece of the visible text of an HTML fragment.
enum Visible<'a> {
    /// Text between tags and entities, as it stands.
    Text(&'a str),
    /// An entity's character, or a `<` or `&` that starts neither.
    Char(char),
    /// A tag, as its byte range in the HTML: a space in the visible text.
    Tag(usize, usize),
}

/// Walks the visible text of `html` in order, as [`strip_html`] writes it.
fn walk_visible<'a>(html: &'a str, mut f: impl FnMut(Visible<'a>)) {
    let bytes = html.as_bytes();
    let mut done = 0; // bytes of `html` consumed
    while let Some(i) = memchr::memchr2(b'<', b'&', &bytes[done..]) {
        let pos = done + i;
        f(Visible::Text(&html[done..pos]));
        let tail = &html[pos..];
        if bytes[pos] == b'<' {
            if let Some(end) = tag_end(tail) {
                f(Visible::Tag(pos, pos + end));
                done = pos + end;
                continue;
            }
        }
        let (c, len) = if bytes[pos] == b'<' {
            ('<', 1)
        } else {
            decode_entity(tail).unwrap_or(('&', 1))
        };
        f(Visible::Char(c));
        done = pos + len;
    }
    f(Visible::Text(&html[done..]));
}

/// Length in bytes of the tag at the start of `s` (which starts with `<`), if it is one.
fn tag_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let next = *b.get(1)?;
    if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!') {
        return None;
    }
    memchr::memchr(b'>', b).map(|i| i + 1)
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
    let mut w = WordCounter::default();
    w.feed(visible);
    w.count
}

/// [`word_count`] fed piece by piece: the number of `split_whitespace` runs holding an
/// alphanumeric character. A run counts at its first alphanumeric character, and whitespace arms
/// the next run. ASCII bytes are classified by table; other characters are decoded.
#[derive(Debug, Clone, Copy)]
struct WordCounter {
    count: usize,
    armed: bool,
}

impl Default for WordCounter {
    fn default() -> Self {
        Self {
            count: 0,
            armed: true,
        }
    }
}

impl WordCounter {
    fn feed(&mut self, text: &str) {
        let bytes = text.as_bytes();
        if text.is_ascii() {
            // All of it as blocks of 64 bytes, the last one padded with a byte that is neither
            // whitespace nor alphanumeric: no event.
            for k in 0..bytes.len().div_ceil(64) {
                self.feed_block(crate::byte_class::block64(bytes, k, &mut [1u8; 64]));
            }
            return;
        }
        // 64 bytes at a time as bit masks, up to the next non-ASCII character (a curly quote or
        // a no-break space in otherwise ASCII text), which is decoded.
        let mut i = 0;
        while i < bytes.len() {
            let chunk = &bytes[i..bytes.len().min(i + 64)];
            let ascii = crate::byte_class::first_non_ascii(chunk).unwrap_or(chunk.len());
            if ascii == 64 {
                self.feed_block(chunk);
            } else if ascii > 0 {
                // Padded with a byte that is neither whitespace nor alphanumeric: no event.
                let mut block = [1u8; 64];
                block[..ascii].copy_from_slice(&chunk[..ascii]);
                self.feed_block(&block);
            }
            i += ascii;
            if let Some(c) = (ascii < chunk.len())
                .then(|| text[i..].chars().next())
                .flatten()
            {
                self.feed_char(c);
                i += c.len_utf8();
            }
        }
    }

    /// [`WordCounter::feed`] of 64 ASCII bytes, on bit masks: whitespace `ws` and alphanumeric
    /// `an`; the rest (`other`) does not change the state. A word starts at the first event
    /// (whitespace or alphanumeric) after a whitespace when that event is alphanumeric. Each
    /// whitespace's next event is the next byte when that is an event, or else the first event
    /// after the run of other bytes that starts there, found by the carry of an addition: such a
    /// run is a run of ones in `other`, and adding its lowest bit carries to the bit past it.
    /// Being armed at the start stands for a whitespace just before the block; a run of other
    /// bytes that reaches the end carries over in `armed`.
    fn feed_block(&mut self, block: &[u8]) {
        let (ws, an) = class_masks(block);
        let events = ws | an;
        let other = !events;
        let after_ws = (ws << 1) | self.armed as u64;
        let next_event = (after_ws & events) | (other.wrapping_add(after_ws & other) & events);
        self.count += (next_event & an).count_ones() as usize;
        if events != 0 {
            self.armed = ws >> (63 - events.leading_zeros()) & 1 == 1;
        }
    }

    fn feed_char(&mut self, c: char) {
        self.step(c.is_whitespace(), c.is_alphanumeric());
    }

    fn step(&mut self, space: bool, alnum: bool) {
        self.count += (self.armed && alnum) as usize;
        self.armed = (self.armed && !alnum) || space;
    }
}

/// The whitespace and alphanumeric bit masks of 64 ASCII bytes (bit `j` for byte `j`), as the
/// class table has them.
#[cfg(target_arch = "x86_64")]
fn class_masks(block: &[u8]) -> (u64, u64) {
    use crate::byte_class::{ascii_alnum, eq, in_range, masks64, or};
    // \t \n \x0B \x0C \r and the space.
    let [ws, an] = masks64(block, |v| {
        [or(eq(v, b' '), in_range(v, b'\t', 4)), ascii_alnum(v)]
    });
    (ws, an)
}

#[cfg(not(target_arch = "x86_64"))]
fn class_masks(block: &[u8]) -> (u64, u64) {
    let (mut ws, mut an) = (0u64, 0u64);
    for (j, &b) in block[..64].iter().enumerate() {
        let c = ASCII_CLASS[(b & 0x7F) as usize];
        ws |= ((c & WS) as u64) << j;
        an |= (((c >> 1) & 1) as u64) << j;
    }
    (ws, an)
}

/// ASCII character classes: `char::is_whitespace` (which, unlike `u8::is_ascii_whitespace`,
/// includes `\x0B`) and `char::is_alphanumeric`. What [`class_masks`] computes (a test
/// compares them).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
const WS: u8 = 1;
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
const ALNUM: u8 = 2;
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
static ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if matches!(b, b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r' | b' ') {
            t[i] = WS;
        } else if b.is_ascii_alphanumeric() {
            t[i] = ALNUM;
        }
        i += 1;
    }
    t
};

/// The number of [`words`] of `s` that are stopwords: `words(s).filter(is_stopword).count()`,
/// with a byte loop for ASCII text.
pub fn count_stopwords(s: &str) -> usize {
    count_stopwords_up_to(s, usize::MAX)
}

/// [`count_stopwords`], but counting stops once `limit` stopwords are found: what a check that
/// needs "at least `limit`" reads (English prose reaches 5% of its words in its first lines).
pub fn count_stopwords_up_to(s: &str, limit: usize) -> usize {
    if s.is_ascii() {
        #[cfg(target_arch = "x86_64")]
        return stopwords_ascii_masks(s.as_bytes(), limit);
        #[cfg(not(target_arch = "x86_64"))]
        return stopwords_ascii(s.as_bytes(), limit);
    } else {
        words(s).filter(|(_, w)| is_stopword(w)).take(limit).count()
    }
}

/// [`count_stopwords`] of ASCII text from the word starts of bit masks of 64 bytes at a time:
/// the same count as [`stopwords_ascii`] (a test compares them), with a few steps per word
/// instead of a few per byte.
#[cfg(target_arch = "x86_64")]
fn stopwords_ascii_masks(b: &[u8], limit: usize) -> usize {
    use crate::byte_class::{ascii_alnum, block64, masks64};
    let mut count = 0;
    // Whether the byte before the block is a letter or digit.
    let mut carry = false;
    for k in 0..b.len().div_ceil(64) {
        if count >= limit {
            break;
        }
        let mut pad = [0u8; 64];
        let [alnum] = masks64(block64(b, k, &mut pad), |v| [ascii_alnum(v)]);
        let mut starts = alnum & !((alnum << 1) | u64::from(carry));
        carry = alnum >> 63 == 1;
        while starts != 0 && count < limit {
            let j = starts.trailing_zeros();
            starts &= starts - 1;
            // The run's length off the mask (ones from bit j), unless it reaches the block's end.
            let ones = (!alnum >> j).trailing_zeros() as usize;
            let i = 64 * k + j as usize;
            let len = if ones < 64 - j as usize {
                ones
            } else {
                b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count()
            };
            count += usize::from(stopword_run(b, i, len));
        }
    }
    count
}

/// Whether the run of `len` letters and digits of ASCII text `b` that starts at `i` is a whole
/// stopword: not the part of a word after an inner `'` or `-` ("it's", "all-weather"), nor
/// followed by one, and letters only (a word with a digit is no stopword: no key of one is a
/// stopword's). The run's bytes are read as one word and lower-cased together (`| 0x20` lowers
/// letters and leaves digits as they are), the key [`stopword_key`] makes byte by byte.
#[cfg(target_arch = "x86_64")]
fn stopword_run(b: &[u8], i: usize, len: usize) -> bool {
    // Stopwords have at most 6 letters.
    if len > 6 {
        return false;
    }
    if i >= 2 && matches!(b[i - 1], b'\'' | b'-') && b[i - 2].is_ascii_alphanumeric() {
        return false;
    }
    let end = i + len;
    if matches!(b.get(end), Some(b'\'' | b'-'))
        && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let word = match b.get(i..i + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
        None => {
            let mut w = [0u8; 8];
            w[..b.len() - i].copy_from_slice(&b[i..]);
            u64::from_le_bytes(w)
        }
    };
    let keep = (1u64 << (8 * len)) - 1;
    let key = ((word | 0x2020_2020_2020_2020) & keep) | (len as u64) << 56;
    // A run has at least one byte; an empty key (0) would match the table's empty slots.
    len > 0 && is_stopword_key(key)
}

/// [`count_stopwords`] of ASCII text, a byte at a time.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
fn stopwords_ascii(b: &[u8], limit: usize) -> usize {
    let n = b.len();
    let (mut i, mut count) = (0, 0);
    while i < n && count < limit {
        // Skip to the start of a word.
        while i < n && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == n {
            break;
        }
        let start = i;
        // Letters and digits, and `'` or `-` before one (ASCII text has no `’`).
        let mut letters_only = true;
        loop {
            while i < n && b[i].is_ascii_alphanumeric() {
                letters_only &= b[i].is_ascii_alphabetic();
                i += 1;
            }
            if i + 1 < n && (b[i] == b'\'' || b[i] == b'-') && b[i + 1].is_ascii_alphanumeric() {
                letters_only = false;
                i += 1;
            } else {
                break;
            }
        }
        if letters_only && stopword_bytes(&b[start..i]) {
            count += 1;
        }
    }
    count
}

/// Number of words in an HTML description, counted after stripping tags and entities:
/// `word_count(&strip_html(html))`, counted as the text is walked instead of on a stripped copy.
pub fn description_words(html: &str) -> usize {
    let mut w = WordCounter::default();
    walk_visible(html, |piece| match piece {
        Visible::Text(t) => w.feed(t),
        Visible::Char(c) => w.feed_char(c),
        Visible::Tag(..) => w.feed_char(' '),
    });
    w.count
}

/// Sentences shorter than this many words may repeat (list labels, "Key details:").
pub const REPEAT_MIN_WORDS: usize = 5;

/// The first sentence of `visible` text that repeats an earlier one word for word (case,
/// punctuation and spacing aside), as the byte range of the repeat; `None` when every sentence
/// of at least `min_words` words is new.
///
/// Sentences end at `!`, `?`, `;` or a line break, and at a `.` or `:` before whitespace or the
/// end (so "5.3 volts" or "10:30" does not end one). Padding a description to a length by
/// writing a sentence again is what this finds: a listing that says the same thing twice.
///
/// Two sentences can only have the same words if they have as many words with as many bytes
/// once lower-cased: that shape picks the candidates, and a candidate is confirmed word by word,
/// so a shared shape never reports a repeat. The text is read 64 bytes at a time as bit masks
/// ([`ByteMasks`]): the sentence ends, and the word starts and alphanumeric bytes between them
/// (the shape of an ASCII sentence), are counted off the masks in one pass.
pub fn repeated_sentence(visible: &str, min_words: usize) -> Option<(usize, usize)> {
    // (shape, start, end) of every sentence long enough.
    let mut seen: smallvec::SmallVec<[(u64, usize, usize); 16]> = smallvec::SmallVec::new();
    // The sentence `start..end`, whose ASCII words and their bytes the masks counted (or that
    // holds a non-ASCII byte): its range if it repeats an earlier one.
    let mut sentence = |start: usize, end: usize, counted: (usize, usize), high: bool| {
        let sentence = &visible[start..end];
        let (words, bytes) = if high {
            sentence_shape(sentence)
        } else {
            counted
        };
        if words < min_words {
            return None;
        }
        let shape = (words as u64) << 32 | bytes as u64;
        let repeat = seen
            .iter()
            .any(|&(k, s, e)| k == shape && same_words(&visible[s..e], sentence));
        if repeat {
            let lead = sentence.len() - sentence.trim_start().len();
            return Some((start + lead, start + sentence.trim_end().len()));
        }
        seen.push((shape, start, end));
        None
    };

    let bytes = visible.as_bytes();
    let blocks = bytes.len().div_ceil(64);
    // Padded with spaces: whitespace, so a final `.` ends a sentence.
    let masks = |k: usize| byte_masks(crate::byte_class::block64(bytes, k, &mut [b' '; 64]));
    // The current sentence's start, its word starts and alphanumeric bytes so far, and whether
    // it holds a non-ASCII byte.
    let (mut start, mut words, mut alnum, mut high) = (0, 0, 0, false);
    let mut cur = masks(0);
    // Whether the byte before the block is alphanumeric.
    let mut carry = false;
    for k in 0..blocks {
        let next = (k + 1 < blocks).then(|| masks(k + 1));
        // The end of the text counts as whitespace.
        let next_ws = next.is_none_or(|n| n.space & 1 == 1);
        let ws_after = (cur.space >> 1) | u64::from(next_ws) << 63;
        let word_starts = cur.alnum & !((cur.alnum << 1) | u64::from(carry));
        let mut ends = cur.stop | (cur.maybe_stop & ws_after);
        // Bits `from..` of the block are not counted yet.
        let mut from = 0;
        loop {
            let j = ends.trailing_zeros();
            let part = bits_from(from) & !bits_from(j);
            words += (word_starts & part).count_ones() as usize;
            alnum += (cur.alnum & part).count_ones() as usize;
            high |= cur.high & part != 0;
            if j == 64 {
                break;
            }
            ends &= ends - 1;
            let end = 64 * k + j as usize;
            if let Some(r) = sentence(start, end, (words, alnum), high) {
                return Some(r);
            }
            (start, words, alnum, high) = (end + 1, 0, 0, false);
            from = j + 1;
        }
        carry = cur.alnum >> 63 == 1;
        if let Some(n) = next {
            cur = n;
        }
    }
    // The last sentence runs to the end of the text.
    sentence(start, visible.len(), (words, alnum), high)
}

/// The bits `i..64` of a `u64` (none for `i` = 64).
fn bits_from(i: u32) -> u64 {
    u64::MAX.checked_shl(i).unwrap_or(0)
}

/// Classes of 64 bytes as bit masks (bit `j` for byte `j`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ByteMasks {
    alnum: u64,
    /// `u8::is_ascii_whitespace` (no `\x0B`).
    space: u64,
    /// `!`, `?`, `;`, `\n`.
    stop: u64,
    /// `.`, `:`.
    maybe_stop: u64,
    /// Bytes of 0x80 and up.
    high: u64,
}

#[cfg(target_arch = "x86_64")]
fn byte_masks(block: &[u8]) -> ByteMasks {
    use crate::byte_class::{ascii_alnum, eq, high, in_range, masks64, or};
    let [alnum, space, stop, maybe_stop, high] = masks64(block, |v| {
        [
            ascii_alnum(v),
            // \t \n, \x0C \r, and the space.
            or(
                or(eq(v, b' '), in_range(v, b'\t', 1)),
                in_range(v, b'\x0C', 1),
            ),
            or(or(eq(v, b'!'), eq(v, b'?')), or(eq(v, b';'), eq(v, b'\n'))),
            or(eq(v, b'.'), eq(v, b':')),
            high(v),
        ]
    });
    ByteMasks {
        alnum,
        space,
        stop,
        maybe_stop,
        high,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn byte_masks(block: &[u8]) -> ByteMasks {
    byte_masks_scalar(block)
}

/// [`byte_masks`] one byte at a time.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
fn byte_masks_scalar(block: &[u8]) -> ByteMasks {
    let mut m = ByteMasks::default();
    for (j, &b) in block[..64].iter().enumerate() {
        let bit = |x: bool| u64::from(x) << j;
        m.alnum |= bit(b.is_ascii_alphanumeric());
        m.space |= bit(b.is_ascii_whitespace());
        m.stop |= bit(matches!(b, b'!' | b'?' | b';' | b'\n'));
        m.maybe_stop |= bit(matches!(b, b'.' | b':'));
        m.high |= bit(b >= 0x80);
    }
    m
}

/// Words of a sentence: runs of alphanumeric characters.
fn sentence_words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The number of a sentence's words and of their bytes once lower-cased: what
/// [`repeated_sentence`] reads off its masks for ASCII text.
fn sentence_shape(s: &str) -> (usize, usize) {
    sentence_words(s).fold((0, 0), |(n, bytes), w| {
        let lower: usize = w
            .chars()
            .flat_map(char::to_lowercase)
            .map(char::len_utf8)
            .sum();
        (n + 1, bytes + lower)
    })
}

/// [`sentence_words`] of ASCII text.
fn ascii_words(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes()
        .split(|c| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Whether two sentences have the same words, case aside.
fn same_words(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        let (mut x, mut y) = (ascii_words(a), ascii_words(b));
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(p), Some(q)) if p.eq_ignore_ascii_case(q) => {}
                _ => return false,
            }
        }
    }
    let mut x = sentence_words(a);
    let mut y = sentence_words(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p.to_lowercase() == q.to_lowercase() => {}
            _ => return false,
        }
    }
}

/// Number of Unicode scalar values (what the rubric means by "characters").
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// [`words`] of ASCII text (the caller knows it is), `f(byte_start, word)` for each, from bit
/// masks of 64 bytes at a time: a word is a run of letters and digits and of the `'` and `-`
/// that stand between two of them (a word never starts or ends with one, and two never follow
/// each other inside one), so the runs of those bytes are the words.
pub fn for_ascii_words<'a>(s: &'a str, mut f: impl FnMut(usize, &'a str)) {
    debug_assert!(s.is_ascii());
    let b = s.as_bytes();
    let masks = |k: usize| -> (u64, u64) {
        if 64 * k >= b.len() {
            return (0, 0);
        }
        ascii_word_masks(crate::byte_class::block64(b, k, &mut [0u8; 64]))
    };
    let (mut alnum, mut joiner) = masks(0);
    // Whether the byte before the block is a letter or digit; where the open word started.
    let mut alnum_before = false;
    let mut open: Option<usize> = None;
    for k in 0..b.len().div_ceil(64) {
        let (next_alnum, next_joiner) = masks(k + 1);
        let before = alnum << 1 | u64::from(alnum_before);
        let after = alnum >> 1 | (next_alnum & 1) << 63;
        let word = alnum | (joiner & before & after);
        let carry = u64::from(open.is_some());
        // Bytes that start a run, and the first byte after one (its end).
        let starts = word & !(word << 1 | carry);
        let ends = !word & (word << 1 | carry);
        let mut m = starts | ends;
        while m != 0 {
            let i = 64 * k + m.trailing_zeros() as usize;
            m &= m - 1;
            match open.take() {
                Some(start) => f(start, &s[start..i]),
                None => open = Some(i),
            }
        }
        alnum_before = alnum >> 63 == 1;
        (alnum, joiner) = (next_alnum, next_joiner);
    }
    if let Some(start) = open {
        f(start, &s[start..]);
    }
}

/// The letters and digits, and the `'` and `-`, of 64 ASCII bytes (bit `j` for byte `j`).
#[cfg(target_arch = "x86_64")]
fn ascii_word_masks(block: &[u8]) -> (u64, u64) {
    use crate::byte_class::{ascii_alnum, eq, masks64, or};
    let [alnum, joiner] = masks64(block, |v| [ascii_alnum(v), or(eq(v, b'\''), eq(v, b'-'))]);
    (alnum, joiner)
}

#[cfg(not(target_arch = "x86_64"))]
fn ascii_word_masks(block: &[u8]) -> (u64, u64) {
    block[..64]
        .iter()
        .enumerate()
        .fold((0, 0), |(a, j), (i, &c)| {
            (
                a | u64::from(c.is_ascii_alphanumeric()) << i,
                j | u64::from(c == b'\'' || c == b'-') << i,
            )
        })
}

/// Iterates over words as `(byte_start, word)`: runs of alphanumerics, apostrophes and inner
/// hyphens. Used for repeated-word, capitalisation and year checks.
pub fn words(s: &str) -> Words<'_> {
    Words { s, idx: 0 }
}

/// The iterator of [`words`]. ASCII bytes are classified directly; only non-ASCII characters
/// are decoded.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    s: &'a str,
    idx: usize,
}

impl Words<'_> {
    /// The character at byte `i` (a character boundary) and its length in bytes.
    #[inline]
    fn char_at(&self, i: usize) -> Option<(char, usize)> {
        let b = *self.s.as_bytes().get(i)?;
        if b.is_ascii() {
            Some((b as char, 1))
        } else {
            self.s[i..].chars().next().map(|c| (c, c.len_utf8()))
        }
    }

    /// Whether the character at byte `i` is alphanumeric (false past the end).
    #[inline]
    fn alnum_at(&self, i: usize) -> bool {
        match self.s.as_bytes().get(i) {
            None => false,
            Some(b) if b.is_ascii() => b.is_ascii_alphanumeric(),
            Some(_) => self.s[i..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric),
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let bytes = self.s.as_bytes();
        // Skip to the start of a word.
        loop {
            let b = *bytes.get(self.idx)?;
            if b.is_ascii_alphanumeric() {
                break;
            }
            if b.is_ascii() {
                self.idx += 1;
            } else {
                let (c, len) = self.char_at(self.idx)?;
                if c.is_alphanumeric() {
                    break;
                }
                self.idx += len;
            }
        }
        let start = self.idx;
        loop {
            // A run of ASCII letters and digits, then whatever ends it.
            while bytes.get(self.idx).is_some_and(u8::is_ascii_alphanumeric) {
                self.idx += 1;
            }
            let Some(&b) = bytes.get(self.idx) else {
                break;
            };
            let (ch, len) = if b.is_ascii() {
                (b as char, 1)
            } else {
                match self.char_at(self.idx) {
                    Some(x) => x,
                    None => break,
                }
            };
            // Apostrophes and hyphens count inside a word, before a letter or digit.
            let inner = (ch == '\'' || ch == '’' || ch == '-') && self.alnum_at(self.idx + len);
            if (!ch.is_ascii() && ch.is_alphanumeric()) || inner {
                self.idx += len;
            } else {
                break;
            }
        }
        Some((start, &self.s[start..self.idx]))
    }
}

/// Normalises text for duplicate detection: visible text, lower case, letters and digits only,
/// single spaces.
pub fn normalise(s: &str) -> String {
    let visible = strip_html(s);
    if visible.is_ascii() {
        return normalise_ascii(visible.as_bytes());
    }
    let mut out = String::with_capacity(visible.len());
    for (_, w) in words(&visible) {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.is_ascii() {
            out.extend(
                w.bytes()
                    .filter(u8::is_ascii_alphanumeric)
                    .map(|b| b.to_ascii_lowercase() as char),
            );
            continue;
        }
        for ch in w.chars() {
            if ch.is_alphanumeric() {
                out.extend(ch.to_lowercase());
            }
        }
    }
    out
}

/// [`normalise`] of ASCII visible text: the [`words`] of it, letters and digits only, lower-cased,
/// joined by single spaces.
fn normalise_ascii(b: &[u8]) -> String {
    let n = b.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        while i < n && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == n {
            break;
        }
        if !out.is_empty() {
            out.push(b' ');
        }
        loop {
            let start = i;
            while i < n && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.extend(b[start..i].iter().map(u8::to_ascii_lowercase));
            // `'` and `-` join a word when a letter or digit follows; they are dropped.
            if i + 1 < n && (b[i] == b'\'' || b[i] == b'-') && b[i + 1].is_ascii_alphanumeric() {
                i += 1;
            } else {
                break;
            }
        }
    }
    String::from_utf8(out).expect("ASCII in, ASCII out")
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
    stopword_bytes(w.as_bytes())
}

/// [`is_stopword`] of the bytes of a word.
fn stopword_bytes(b: &[u8]) -> bool {
    // Same answer as comparing with every stopword (ASCII case-insensitively), without the scan:
    // stopwords are ASCII and at most 6 bytes long, so a lower-cased word packs into a `u64`
    // that is looked up in a hash table.
    if b.is_empty() || b.len() > 6 {
        return false;
    }
    is_stopword_key(stopword_key(b))
}

/// Whether a key of [`stopword_key`]'s form (a word of 1 to 6 bytes) is a stopword's.
#[inline]
fn is_stopword_key(key: u64) -> bool {
    STOPWORD_SLOTS.1[stopword_slot(key, STOPWORD_SLOTS.0)] == key
}

/// A word of 1 to 6 bytes packed into a `u64`: its bytes lower-cased, its length in the top
/// byte (so no key is 0).
const fn stopword_key(b: &[u8]) -> u64 {
    let mut key = (b.len() as u64) << 56;
    let mut i = 0;
    while i < b.len() {
        key |= (b[i].to_ascii_lowercase() as u64) << (8 * i);
        i += 1;
    }
    key
}

/// The slot of a packed key in [`STOPWORD_SLOTS`]'s table (multiplicative hashing).
const fn stopword_slot(key: u64, multiplier: u64) -> usize {
    (key.wrapping_mul(multiplier) >> 57) as usize
}

/// A multiplier under which every stopword key has a slot of its own among 128, and that table
/// (empty slots hold 0, which no key is): one multiply and one compare per lookup, where a binary
/// search of the sorted keys took six unpredictable branches. Found at compile time.
static STOPWORD_SLOTS: (u64, [u64; 128]) = {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut tries = 0;
    loop {
        assert!(
            tries < 100_000,
            "no collision-free stopword multiplier found"
        );
        tries += 1;
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let m = (z ^ (z >> 31)) | 1;
        let mut table = [0u64; 128];
        let mut ok = true;
        let mut i = 0;
        while i < STOPWORD_KEYS.len() {
            let slot = stopword_slot(STOPWORD_KEYS[i], m);
            if table[slot] != 0 {
                ok = false;
                break;
            }
            table[slot] = STOPWORD_KEYS[i];
            i += 1;
        }
        if ok {
            break (m, table);
        }
    }
};

/// The packed keys of [`STOPWORDS`].
static STOPWORD_KEYS: [u64; STOPWORDS.len()] = {
    let mut keys = [0u64; STOPWORDS.len()];
    let mut i = 0;
    while i < STOPWORDS.len() {
        let w = STOPWORDS[i].as_bytes();
        assert!(!w.is_empty() && w.len() <= 6);
        keys[i] = stopword_key(w);
        i += 1;
    }
    keys
};

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn sentence_shapes_agree_between_ascii_and_unicode_text() {
        // "It's" and "It’s" have the same words ("it", "s"): one shape, whichever path reads it.
        let ascii = "It's rated for 40 hours, Bluetooth 5.3";
        let curly = "It’s rated for 40 hours — Bluetooth 5.3";
        assert!(ascii.is_ascii() && !curly.is_ascii());
        assert_eq!(sentence_shape(ascii), sentence_shape(curly));
        assert_eq!(sentence_shape(ascii), (9, 29));
        // The masks' shape of an ASCII sentence is the same as the Unicode path's: the curly
        // copy after the plain one is found, and the other way round.
        let text = format!("{ascii}! Then more words follow here. {curly}.");
        assert!(repeated_sentence(&text, REPEAT_MIN_WORDS).is_some());
        let text = format!("{curly}! Then more words follow here. {ascii}");
        let (a, b) = repeated_sentence(&text, REPEAT_MIN_WORDS).expect("a repeat");
        assert_eq!(&text[a..b], ascii);
    }

    /// Sentences and their lower-cased words the slow way: what [`repeated_sentence`] must find.
    fn repeated_sentence_reference(text: &str, min_words: usize) -> Option<(usize, usize)> {
        let b = text.as_bytes();
        let mut ends: Vec<usize> = (0..b.len())
            .filter(|&i| match b[i] {
                b'!' | b'?' | b';' | b'\n' => true,
                b'.' | b':' => b.get(i + 1).is_none_or(u8::is_ascii_whitespace),
                _ => false,
            })
            .collect();
        ends.push(b.len());
        let mut seen: Vec<Vec<String>> = Vec::new();
        let mut start = 0;
        for end in ends {
            let sentence = &text[start..end];
            let words: Vec<String> = sentence_words(sentence).map(str::to_lowercase).collect();
            if words.len() >= min_words {
                if seen.contains(&words) {
                    let lead = sentence.len() - sentence.trim_start().len();
                    return Some((start + lead, start + sentence.trim_end().len()));
                }
                seen.push(words);
            }
            start = end + 1;
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn byte_masks_agree_with_the_scalar_ones(block in proptest::collection::vec(proptest::num::u8::ANY, 64)) {
            proptest::prop_assert_eq!(byte_masks(&block), byte_masks_scalar(&block));
        }

        #[test]
        fn repeated_sentences_agree_with_the_reference(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("(Ab|ab|AB|c|5|é|É|’|x9)").unwrap(),
                    proptest::string::string_regex("[ .:;!?\n,\t-]").unwrap(),
                ],
                0..200,
            ),
            min_words in 1usize..4,
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(
                repeated_sentence(&text, min_words),
                repeated_sentence_reference(&text, min_words),
                "{:?}", text
            );
        }
    }

    #[test]
    fn repeated_sentences_are_found_word_for_word() {
        let twice = "The strap is padded for long walks. It folds flat. The strap is padded for long walks.";
        let (a, b) = repeated_sentence(twice, REPEAT_MIN_WORDS).expect("a repeat");
        assert_eq!(&twice[a..b], "The strap is padded for long walks");
        assert!(a > 10, "the second one: {a}");
        // Case, punctuation and spacing aside; a line break ends a sentence too.
        let loose = "Fits most bikes with a quick clip\nfits MOST bikes,  with a quick clip!";
        // A decimal point or a time is no sentence end.
        let decimal =
            "Rated at 5.3 volts for the small motor. Rated at 5.4 volts for the small motor.";
        assert_eq!(repeated_sentence(decimal, REPEAT_MIN_WORDS), None);
        assert!(repeated_sentence(loose, REPEAT_MIN_WORDS).is_some());
        // Different words, short repeats and near repeats are fine.
        for ok in [
            "The strap is padded for long walks. The strap is padded for short walks.",
            "Key details: one. Key details: two.",
            "Easy to clean. Easy to clean.",
            "",
            "No end mark at all and nothing repeated",
        ] {
            assert_eq!(repeated_sentence(ok, REPEAT_MIN_WORDS), None, "{ok}");
        }
        // Non-ASCII words compare case-insensitively too.
        let accents =
            "Élégant et pratique pour tous les jours. élégant et pratique pour tous les jours.";
        assert!(repeated_sentence(accents, REPEAT_MIN_WORDS).is_some());
    }

    use super::*;

    /// The straightforward versions the fast ones must agree with.
    mod reference {
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
                    let b = tail.as_bytes();
                    let end = b
                        .get(1)
                        .filter(|n| n.is_ascii_alphabetic() || **n == b'/' || **n == b'!')
                        .and_then(|_| tail.find('>').map(|i| i + 1));
                    match end {
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
                    match super::decode_entity(tail) {
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

        pub fn word_count(visible: &str) -> usize {
            visible
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .count()
        }

        pub fn words(s: &str) -> Vec<(usize, &str)> {
            let mut out = Vec::new();
            let mut idx = 0;
            loop {
                while idx < s.len() {
                    let ch = s[idx..].chars().next().unwrap();
                    if ch.is_alphanumeric() {
                        break;
                    }
                    idx += ch.len_utf8();
                }
                if idx >= s.len() {
                    return out;
                }
                let start = idx;
                while idx < s.len() {
                    let ch = s[idx..].chars().next().unwrap();
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
                out.push((start, &s[start..idx]));
            }
        }

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

        pub fn is_stopword(w: &str) -> bool {
            super::STOPWORDS.iter().any(|s| s.eq_ignore_ascii_case(w))
        }
    }

    /// Random texts built from pieces that exercise every branch: markup, entities, ASCII and
    /// Unicode whitespace, letters, digits, apostrophes, hyphens, `\x0B`.
    pub(crate) fn random_text(r: &mut crate::rng::Rng) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "9",
            "word",
            "ALL",
            "The",
            "and",
            "it's",
            "all-weather",
            "5-pack",
            "-",
            "'",
            "’",
            "’s",
            " ",
            "  ",
            "\t",
            "\n",
            "\r",
            "\x0B",
            "\x0C",
            "\u{85}",
            "\u{a0}",
            "\u{2009}",
            "\u{3000}",
            "\u{1c}",
            "é",
            "ß",
            "İ",
            "ſ",
            "\u{212A}",
            "中文",
            "٣",
            "½",
            "²",
            "\u{301}",
            "\u{200d}",
            "😀",
            "™",
            "–",
            ".",
            ",",
            "!",
            "<p>",
            "</p>",
            "<br/>",
            "<!-- x -->",
            "<",
            ">",
            "< 3",
            "<a href=x>",
            "&",
            "&amp;",
            "&nbsp;",
            "&#233;",
            "&#x41;",
            "&bogus;",
            "&#99999999;",
            "&#xD800;",
            "&amp",
            ";",
            "&#;",
            "&#x;",
            "_",
        ];
        let n = r.below(24);
        // Half the texts ASCII only, to exercise the ASCII fast paths.
        let ascii = r.below(2) == 0;
        let mut out = String::new();
        while out.chars().count() < n {
            let p = PIECES[r.below(PIECES.len())];
            if !ascii || p.is_ascii() {
                out.push_str(p);
            }
        }
        out
    }

    #[test]
    fn class_masks_agree_with_the_table() {
        let bytes: Vec<u8> = (0u8..128).collect();
        for block in [&bytes[..64], &bytes[64..]] {
            let (ws, an) = class_masks(block);
            for (j, &b) in block.iter().enumerate() {
                let c = ASCII_CLASS[b as usize];
                assert_eq!(ws >> j & 1 == 1, c & WS != 0, "{b}");
                assert_eq!(an >> j & 1 == 1, c & ALNUM != 0, "{b}");
            }
        }
    }

    /// Long ASCII texts take the 64-byte block path of the word count.
    #[test]
    fn block_word_count_agrees_with_the_reference() {
        const PIECES: &[&str] = &[
            "a", "Z", "9", "word", "it's", "5-pack", "-", "'", ".", ",", "!", "--", "...", " ",
            "  ", "\t", "\n", "\r", "\x0B", "\x0C", "\x1c", "_", "(x)", "#1", "\u{7f}",
        ];
        let mut r = crate::rng::Rng::new(17);
        for _ in 0..20_000 {
            let n = r.below(200);
            let s: String = (0..n).map(|_| PIECES[r.below(PIECES.len())]).collect();
            assert_eq!(word_count(&s), reference::word_count(&s), "{s:?}");
            // Split anywhere: the state carries from piece to piece.
            let cut = r.below(s.len() + 1);
            let mut w = WordCounter::default();
            w.feed(&s[..cut]);
            w.feed(&s[cut..]);
            assert_eq!(w.count, reference::word_count(&s), "{s:?} cut at {cut}");
        }
    }

    #[test]
    fn word_counts_of_mostly_ascii_text_agree_with_the_reference() {
        // Long ASCII runs with a non-ASCII character now and then: the mask path hands the
        // character to the decoder and goes on, across 64-byte blocks.
        let mut r = crate::rng::Rng::new(13);
        const ASCII: &[&str] = &[
            "word", "The", "9", " ", "  ", "\n", ".", "-", "'", "\x0B", "x1",
        ];
        const OTHER: &[&str] = &[
            "é", "’", "\u{a0}", "\u{2009}", "中文", "\u{85}", "\u{3000}", "½",
        ];
        for _ in 0..20_000 {
            let n = r.below(150);
            let s: String = (0..n)
                .map(|_| match r.below(25) {
                    0 => OTHER[r.below(OTHER.len())],
                    _ => ASCII[r.below(ASCII.len())],
                })
                .collect();
            assert_eq!(word_count(&s), reference::word_count(&s), "{s:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn stopwords_of_ascii_text_agree_between_masks_and_bytes() {
        let mut r = crate::rng::Rng::new(12);
        const PIECES: &[&str] = &[
            "a",
            "the",
            "The",
            "AND",
            "it",
            "it's",
            "'s",
            "all-weather",
            "up-to",
            "5",
            "for5",
            "x9",
            "before",
            "befores",
            "-",
            "'",
            " ",
            "  ",
            "\n",
            ".",
            ",",
            "word",
            "with-",
        ];
        for _ in 0..100_000 {
            let n = r.below(120);
            let s: String = (0..n).map(|_| PIECES[r.below(PIECES.len())]).collect();
            let limit = if r.below(2) == 0 {
                usize::MAX
            } else {
                r.below(12)
            };
            let bytes = stopwords_ascii(s.as_bytes(), limit);
            assert_eq!(
                stopwords_ascii_masks(s.as_bytes(), limit),
                bytes,
                "{s:?} {limit}"
            );
            let stops = reference::words(&s)
                .iter()
                .filter(|(_, w)| reference::is_stopword(w))
                .count();
            assert_eq!(bytes, stops.min(limit), "{s:?} {limit}");
        }
    }

    #[test]
    fn fast_text_helpers_agree_with_the_straightforward_ones() {
        let mut r = crate::rng::Rng::new(11);
        let mut ascii_texts = 0;
        for _ in 0..200_000 {
            let s = random_text(&mut r);
            assert_eq!(strip_html(&s), reference::strip_html(&s), "{s:?}");
            assert_eq!(word_count(&s), reference::word_count(&s), "{s:?}");
            assert_eq!(
                description_words(&s),
                reference::word_count(&reference::strip_html(&s)),
                "{s:?}"
            );
            assert_eq!(words(&s).collect::<Vec<_>>(), reference::words(&s), "{s:?}");
            if s.is_ascii() {
                let mut ascii = Vec::new();
                for_ascii_words(&s, |i, w| ascii.push((i, w)));
                assert_eq!(ascii, reference::words(&s), "{s:?}");
                ascii_texts += 1;
            }
            assert_eq!(normalise(&s), reference::normalise(&s), "{s:?}");
            for (_, w) in words(&s) {
                assert_eq!(is_stopword(w), reference::is_stopword(w), "{w:?}");
            }
            let stops = reference::words(&s)
                .iter()
                .filter(|(_, w)| reference::is_stopword(w))
                .count();
            assert_eq!(count_stopwords(&s), stops, "{s:?}");
            let limit = r.below(4);
            assert_eq!(count_stopwords_up_to(&s, limit), stops.min(limit), "{s:?}");
        }
        assert!(ascii_texts > 10_000, "{ascii_texts}");
        // Long ASCII texts: words across the 64-byte blocks, joiners at their edges.
        let pieces = [
            "a",
            "word",
            "it's",
            "all-weather",
            "-",
            "'",
            " ",
            "9",
            "x-",
            "'y",
            "--",
        ];
        for _ in 0..20_000 {
            let s: String = (0..r.below(120))
                .map(|_| pieces[r.below(pieces.len())])
                .collect();
            let mut ascii = Vec::new();
            for_ascii_words(&s, |i, w| ascii.push((i, w)));
            assert_eq!(ascii, reference::words(&s), "{s:?}");
        }
        for w in STOPWORDS {
            assert!(is_stopword(w) && is_stopword(&w.to_uppercase()), "{w}");
        }
        for w in ["", "aa", "bef", "beforex", "thé", "ALL", "Ａ"] {
            assert_eq!(is_stopword(w), reference::is_stopword(w), "{w:?}");
        }
    }

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
