//! Bit masks of byte classes, 64 bytes at a time (SSE2 on x86_64, which every x86_64 CPU has):
//! bit `j` of a mask for byte `j`. The text scans (word counts, sentence ends, the rubric's
//! contact and commerce cues, phrase starts) classify bytes with these instead of one by one.

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

/// The offset of the first byte of `b` that is not ASCII, eight bytes at a time: where the
/// ASCII fast paths of mostly-ASCII text (a curly quote, a dash or a no-break space in English
/// prose) hand one character to the slow path.
pub(crate) fn first_non_ascii(b: &[u8]) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for (k, w) in (&mut words).enumerate() {
        let high = u64::from_le_bytes(w.try_into().expect("8 bytes")) & HIGH;
        if high != 0 {
            return Some(8 * k + high.trailing_zeros() as usize / 8);
        }
    }
    let done = b.len() - words.remainder().len();
    words
        .remainder()
        .iter()
        .position(|c| !c.is_ascii())
        .map(|i| done + i)
}

/// Block `k` of `b`, bytes `64k..64k + 64`, as 64 bytes: a last block shorter than that is
/// copied into the start of `pad` and followed by the bytes `pad` held, which stand for the end
/// of the text (zero bytes, in none of the classes, for most scans; spaces where the end counts
/// as whitespace). Past the end of `b`, `pad` as it is.
pub(crate) fn block64<'a>(b: &'a [u8], k: usize, pad: &'a mut [u8; 64]) -> &'a [u8] {
    let rest = &b[(64 * k).min(b.len())..];
    if rest.len() >= 64 {
        &rest[..64]
    } else {
        pad[..rest.len()].copy_from_slice(rest);
        &pad[..]
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Sixteen bytes, and a class of them (`0xFF` for a byte in the class, `0` otherwise).
    pub(crate) type Lane = __m128i;

    /// The `N` class masks of `block[..64]`: `classes` makes the `N` class lanes of each 16 bytes.
    #[inline(always)]
    pub(crate) fn masks64<const N: usize>(
        block: &[u8],
        classes: impl Fn(Lane) -> [Lane; N],
    ) -> [u64; N] {
        let block = &block[..64];
        let mut out = [0u64; N];
        for k in 0..4 {
            // SAFETY: the 16-byte unaligned load stays within the 64 bytes of `block`.
            let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * k).cast()) };
            for (o, c) in out.iter_mut().zip(classes(v)) {
                // SAFETY: SSE2 is part of every x86_64 CPU; no memory is read.
                *o |= u64::from(unsafe { _mm_movemask_epi8(c) } as u16) << (16 * k);
            }
        }
        out
    }

    /// Bytes equal to `b`.
    #[inline(always)]
    pub(crate) fn eq(v: Lane, b: u8) -> Lane {
        // SAFETY: SSE2 is part of every x86_64 CPU; no memory is read.
        unsafe { _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)) }
    }

    /// Bytes from `lo` to `lo + span`, unsigned: `min(x - lo, span) == x - lo`.
    #[inline(always)]
    pub(crate) fn in_range(v: Lane, lo: u8, span: u8) -> Lane {
        // SAFETY: SSE2 is part of every x86_64 CPU; no memory is read.
        unsafe {
            let d = _mm_sub_epi8(v, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span as i8)), d)
        }
    }

    #[inline(always)]
    pub(crate) fn or(a: Lane, b: Lane) -> Lane {
        // SAFETY: SSE2 is part of every x86_64 CPU; no memory is read.
        unsafe { _mm_or_si128(a, b) }
    }

    /// ASCII letters of either case, by folding to lower case first (`x | 0x20`).
    #[inline(always)]
    pub(crate) fn ascii_letter(v: Lane) -> Lane {
        in_range(lower(v), b'a', 25)
    }

    /// `x | 0x20`: ASCII letters in lower case (and other bytes moved along with them).
    #[inline(always)]
    pub(crate) fn lower(v: Lane) -> Lane {
        // SAFETY: SSE2 is part of every x86_64 CPU; no memory is read.
        unsafe { _mm_or_si128(v, _mm_set1_epi8(0x20)) }
    }

    /// ASCII letters and digits.
    #[inline(always)]
    pub(crate) fn ascii_alnum(v: Lane) -> Lane {
        or(in_range(v, b'0', 9), ascii_letter(v))
    }

    /// Bytes of 0x80 and up: `movemask` reads the top bit, so the bytes themselves.
    #[inline(always)]
    pub(crate) fn high(v: Lane) -> Lane {
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_non_ascii_is_the_first_high_byte() {
        let mut r = crate::rng::Rng::new(3);
        for _ in 0..20_000 {
            let n = r.below(40);
            let b: Vec<u8> = (0..n)
                .map(|_| {
                    if r.below(12) == 0 {
                        0x80 + r.below(128) as u8
                    } else {
                        r.below(128) as u8
                    }
                })
                .collect();
            assert_eq!(
                super::first_non_ascii(&b),
                b.iter().position(|c| !c.is_ascii()),
                "{b:?}"
            );
        }
    }
}
