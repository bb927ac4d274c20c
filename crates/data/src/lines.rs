//! The lines of a JSON Lines buffer, cut into numbered blocks that threads can take apart.
//!
//! Reading a large file line by line on one thread leaves the other cores idle while it finds
//! the line ends; [`line_blocks`] cuts a buffer into blocks of whole lines at about a given size,
//! counts the lines of every block on all threads, and numbers each block's first line, so that
//! each thread then walks its own block's lines ([`LineBlock::lines`]) with their true numbers.

use memchr::{memchr, memchr_iter};
use rayon::prelude::*;

/// Blocks of about this many bytes: large enough that a block's overhead vanishes, small enough
/// that a few dozen of them keep every core busy on a buffer of tens of MB.
pub const BLOCK_BYTES: usize = 1 << 20;

/// A run of whole lines of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineBlock<'a> {
    /// The lines, each ended by `\n` but for the buffer's last one.
    pub bytes: &'a [u8],
    /// The 1-based number of the block's first line.
    pub first_line: usize,
}

impl<'a> LineBlock<'a> {
    /// The lines that hold more than whitespace, without their `\n` or `\r\n`, with their
    /// 1-based numbers.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &'a [u8])> + 'a {
        let bytes = self.bytes;
        let first = self.first_line;
        let mut start = 0;
        memchr_iter(b'\n', bytes)
            .chain(std::iter::once(bytes.len()))
            .enumerate()
            .filter_map(move |(i, end)| {
                if start >= bytes.len() {
                    return None;
                }
                let mut line = &bytes[start..end];
                start = end + 1;
                if let Some(l) = line.strip_suffix(b"\r") {
                    line = l;
                }
                (!line.iter().all(u8::is_ascii_whitespace)).then_some((first + i, line))
            })
    }
}

/// Cuts `bytes` into blocks of whole lines of about `block_bytes` (a block ends at the first line
/// end at or after that size) and numbers them, the first line of `bytes` being line
/// `first_line`. Returns the blocks and the number of lines in `bytes` (each `\n` ends one, and
/// a last line without one counts too), so that a caller reading a file in pieces knows where
/// the next piece's numbering starts when every piece but the last ends with a `\n`.
pub fn line_blocks(
    bytes: &[u8],
    first_line: usize,
    block_bytes: usize,
) -> (Vec<LineBlock<'_>>, usize) {
    let mut cuts = Vec::with_capacity(bytes.len() / block_bytes.max(1) + 1);
    let mut start = 0;
    while start < bytes.len() {
        let end = match start.checked_add(block_bytes.max(1)) {
            Some(e) if e < bytes.len() => {
                memchr(b'\n', &bytes[e - 1..]).map_or(bytes.len(), |i| e + i)
            }
            _ => bytes.len(),
        };
        cuts.push(&bytes[start..end]);
        start = end;
    }
    let newlines: Vec<usize> = cuts
        .par_iter()
        .map(|b| memchr_iter(b'\n', b).count())
        .collect();
    let mut blocks = Vec::with_capacity(cuts.len());
    let mut line = first_line;
    for (b, n) in cuts.into_iter().zip(newlines) {
        blocks.push(LineBlock {
            bytes: b,
            first_line: line,
        });
        line += n;
    }
    let lines = line - first_line + usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
    (blocks, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Line by line on one thread: what the blocks must agree with.
    fn reference(bytes: &[u8], first_line: usize) -> (Vec<(usize, Vec<u8>)>, usize) {
        let mut out = Vec::new();
        let mut n = 0;
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if i == bytes.iter().filter(|&&b| b == b'\n').count() && line.is_empty() {
                break; // after the final newline
            }
            n += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push((first_line + i, line.to_vec()));
            }
        }
        (out, n)
    }

    fn via_blocks(bytes: &[u8], first_line: usize, size: usize) -> (Vec<(usize, Vec<u8>)>, usize) {
        let (blocks, n) = line_blocks(bytes, first_line, size);
        assert_eq!(
            blocks.iter().map(|b| b.bytes.len()).sum::<usize>(),
            bytes.len()
        );
        for b in &blocks[..blocks.len().saturating_sub(1)] {
            assert_eq!(b.bytes.last(), Some(&b'\n'), "a block ends at a line end");
        }
        let lines = blocks
            .iter()
            .flat_map(|b| b.lines().map(|(no, l)| (no, l.to_vec())))
            .collect();
        (lines, n)
    }

    #[test]
    fn blocks_number_lines_like_one_pass() {
        let text = b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}";
        for size in [1, 2, 5, 9, 100] {
            let (lines, n) = via_blocks(text, 1, size);
            assert_eq!(n, 5, "size {size}");
            let nos: Vec<usize> = lines.iter().map(|l| l.0).collect();
            assert_eq!(nos, [1, 4, 5], "size {size}");
            assert_eq!(lines[0].1, b"{\"a\":1}");
        }
        assert_eq!(line_blocks(b"", 1, 10), (Vec::new(), 0));
        assert_eq!(line_blocks(b"x\n", 7, 10).1, 1);
    }

    proptest! {
        #[test]
        fn blocks_agree_with_one_pass(
            parts in proptest::collection::vec(prop_oneof!["[ a{}\r]{0,6}", Just(String::new())], 0..40),
            size in 1usize..40,
            first in 0usize..3,
        ) {
            let bytes = parts.join("\n").into_bytes();
            prop_assert_eq!(via_blocks(&bytes, first, size), reference(&bytes, first));
        }
    }
}
