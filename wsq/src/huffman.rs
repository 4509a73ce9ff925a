//! Huffman coding of the quantised coefficients: the symbol alphabet of the specification, code
//! lengths from symbol counts (limited to 16 bits, no all-ones code, as in JPEG), canonical codes,
//! and the bit-level reader and writer with `0xFF 0x00` byte stuffing.

use crate::WsqError;

/// Zero runs of 1..=100 have their own symbols.
pub(crate) const MAX_ZERO_RUN: u32 = 100;
/// Coefficients in -73..=74 have their own symbols (value + 180).
pub(crate) const MAX_COEFF: i32 = 74;
pub(crate) const MIN_COEFF: i32 = 1 - MAX_COEFF;
pub(crate) const SYM_POS8: u8 = 101;
pub(crate) const SYM_NEG8: u8 = 102;
pub(crate) const SYM_POS16: u8 = 103;
pub(crate) const SYM_NEG16: u8 = 104;
pub(crate) const SYM_RUN8: u8 = 105;
pub(crate) const SYM_RUN16: u8 = 106;
pub(crate) const COEFF_OFFSET: i32 = 180;
const MAX_CODE_LEN: usize = 16;

/// A symbol and the extra bits that follow its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub symbol: u8,
    pub extra: u16,
    pub extra_bits: u8,
}

fn run_token(run: u32) -> Token {
    if run <= MAX_ZERO_RUN {
        Token {
            symbol: run as u8,
            extra: 0,
            extra_bits: 0,
        }
    } else if run <= 0xFF {
        Token {
            symbol: SYM_RUN8,
            extra: run as u16,
            extra_bits: 8,
        }
    } else {
        Token {
            symbol: SYM_RUN16,
            extra: run as u16,
            extra_bits: 16,
        }
    }
}

fn coeff_token(v: i32) -> Token {
    if (MIN_COEFF..=MAX_COEFF).contains(&v) {
        Token {
            symbol: (v + COEFF_OFFSET) as u8,
            extra: 0,
            extra_bits: 0,
        }
    } else if v > 0 {
        if v > 0xFF {
            Token {
                symbol: SYM_POS16,
                extra: v.min(0xFFFF) as u16,
                extra_bits: 16,
            }
        } else {
            Token {
                symbol: SYM_POS8,
                extra: v as u16,
                extra_bits: 8,
            }
        }
    } else if v < -0xFF {
        Token {
            symbol: SYM_NEG16,
            extra: (-v).min(0xFFFF) as u16,
            extra_bits: 16,
        }
    } else {
        Token {
            symbol: SYM_NEG8,
            extra: (-v) as u16,
            extra_bits: 8,
        }
    }
}

/// The symbols of one block of coefficients: zero runs (at most 65535 long) and values.
pub(crate) fn tokenize(coeffs: &[i32]) -> Vec<Token> {
    let mut out = Vec::with_capacity(coeffs.len() / 4);
    let mut run = 0u32;
    for &c in coeffs {
        if c == 0 {
            run += 1;
            if run == 0xFFFF {
                out.push(run_token(run));
                run = 0;
            }
            continue;
        }
        if run > 0 {
            out.push(run_token(run));
            run = 0;
        }
        out.push(coeff_token(c));
    }
    if run > 0 {
        out.push(run_token(run));
    }
    out
}

/// A table as stored in a DHT segment: counts of codes per length 1..=16, then the symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    pub counts: [u8; MAX_CODE_LEN],
    pub symbols: Vec<u8>,
}

impl Table {
    /// An optimal length-limited table for the symbol counts of `tokens`.
    pub fn for_tokens<'a>(tokens: impl Iterator<Item = &'a Token>) -> Table {
        // Index 256 is a reserved symbol with the smallest count: it takes the longest code,
        // which is then dropped so no code is all ones.
        let mut freq = [0u64; 257];
        for t in tokens {
            freq[usize::from(t.symbol)] += 1;
        }
        if freq.iter().all(|&f| f == 0) {
            // An empty block still needs a well-formed table.
            freq[1] = 1;
        }
        freq[256] = 1;
        let mut size = [0usize; 257];
        let mut next: [Option<usize>; 257] = [None; 257];
        let mut f = freq;
        loop {
            // The two smallest non-zero counts; ties go to the higher symbol.
            let mut v1: Option<usize> = None;
            for i in 0..257 {
                if f[i] > 0 && v1.is_none_or(|v| f[i] <= f[v]) {
                    v1 = Some(i);
                }
            }
            let mut v2: Option<usize> = None;
            for i in 0..257 {
                if f[i] > 0 && Some(i) != v1 && v2.is_none_or(|v| f[i] <= f[v]) {
                    v2 = Some(i);
                }
            }
            let (Some(mut a), Some(mut b)) = (v1, v2) else {
                break;
            };
            f[a] += f[b];
            f[b] = 0;
            size[a] += 1;
            while let Some(n) = next[a] {
                a = n;
                size[a] += 1;
            }
            next[a] = Some(b);
            size[b] += 1;
            while let Some(n) = next[b] {
                b = n;
                size[b] += 1;
            }
        }
        let mut bits = [0usize; 300];
        for &s in size.iter().filter(|&&s| s > 0) {
            bits[s] += 1;
        }
        // Limit lengths to 16 bits (JPEG Annex K.3).
        for i in (MAX_CODE_LEN + 1..300).rev() {
            while bits[i] > 0 {
                let mut j = i - 2;
                while bits[j] == 0 {
                    j -= 1;
                }
                bits[i] -= 2;
                bits[i - 1] += 1;
                bits[j + 1] += 2;
                bits[j] -= 1;
            }
        }
        let mut longest = MAX_CODE_LEN;
        while bits[longest] == 0 {
            longest -= 1;
        }
        bits[longest] -= 1;
        let mut order: Vec<usize> = (0..256).filter(|&i| size[i] > 0).collect();
        order.sort_by_key(|&i| (size[i], i));
        let mut counts = [0u8; MAX_CODE_LEN];
        for (len, c) in counts.iter_mut().enumerate() {
            *c = bits[len + 1] as u8;
        }
        Table {
            counts,
            symbols: order.into_iter().map(|i| i as u8).collect(),
        }
    }

    /// Canonical codes `(code, length)` per symbol.
    fn codes(&self) -> Result<Vec<(u8, u16, u8)>, WsqError> {
        let total: usize = self.counts.iter().map(|&c| usize::from(c)).sum();
        if total != self.symbols.len() || total == 0 {
            return Err(WsqError::Malformed(
                "Huffman table code counts do not match its symbols",
            ));
        }
        let mut out = Vec::with_capacity(total);
        let mut code: u32 = 0;
        let mut k = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            let len = i + 1;
            for _ in 0..count {
                if code >= 1 << len {
                    return Err(WsqError::Malformed(
                        "Huffman table has more codes than fit their lengths",
                    ));
                }
                out.push((self.symbols[k], code as u16, len as u8));
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        Ok(out)
    }
}

/// Writes MSB-first bits, stuffing a zero byte after every 0xFF.
pub(crate) struct BitWriter {
    pub out: Vec<u8>,
    acc: u32,
    nbits: u32,
}

impl BitWriter {
    pub fn new() -> BitWriter {
        BitWriter {
            out: Vec::new(),
            acc: 0,
            nbits: 0,
        }
    }

    fn put(&mut self, value: u32, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.nbits += 1;
            if self.nbits == 8 {
                self.byte();
            }
        }
    }

    fn byte(&mut self) {
        let b = self.acc as u8;
        self.out.push(b);
        if b == 0xFF {
            self.out.push(0);
        }
        self.acc = 0;
        self.nbits = 0;
    }

    /// Pads the last byte with one bits.
    pub fn finish(mut self) -> Vec<u8> {
        if self.nbits > 0 {
            let pad = 8 - self.nbits;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

pub(crate) struct Encoder {
    codes: Vec<(u16, u8)>,
}

impl Encoder {
    pub fn new(table: &Table) -> Result<Encoder, WsqError> {
        let mut codes = vec![(0u16, 0u8); 256];
        for (sym, code, len) in table.codes()? {
            codes[usize::from(sym)] = (code, len);
        }
        Ok(Encoder { codes })
    }

    pub fn write(&self, w: &mut BitWriter, t: &Token) -> Result<(), WsqError> {
        let (code, len) = self.codes[usize::from(t.symbol)];
        if len == 0 {
            return Err(WsqError::Internal("symbol missing from its Huffman table"));
        }
        w.put(u32::from(code), u32::from(len));
        w.put(u32::from(t.extra), u32::from(t.extra_bits));
        Ok(())
    }
}

/// Reads MSB-first bits from an unstuffed entropy-coded segment.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() * 8 - self.pos
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
}

pub(crate) struct Decoder {
    /// Per length 1..=16: first code, number of codes, index of its first symbol.
    first: [u32; MAX_CODE_LEN],
    count: [u32; MAX_CODE_LEN],
    index: [usize; MAX_CODE_LEN],
    symbols: Vec<u8>,
}

impl Decoder {
    pub fn new(table: &Table) -> Result<Decoder, WsqError> {
        table.codes()?;
        let mut d = Decoder {
            first: [0; MAX_CODE_LEN],
            count: [0; MAX_CODE_LEN],
            index: [0; MAX_CODE_LEN],
            symbols: table.symbols.clone(),
        };
        let mut code = 0u32;
        let mut k = 0usize;
        for i in 0..MAX_CODE_LEN {
            d.first[i] = code;
            d.count[i] = u32::from(table.counts[i]);
            d.index[i] = k;
            code = (code + d.count[i]) << 1;
            k += table.counts[i] as usize;
        }
        Ok(d)
    }

    /// The next symbol, or `None` when the bits run out inside a code (the block's padding).
    pub fn symbol(&self, r: &mut BitReader<'_>) -> Result<Option<u8>, WsqError> {
        let mut code = 0u32;
        for i in 0..MAX_CODE_LEN {
            let Some(b) = r.bit() else { return Ok(None) };
            code = (code << 1) | b;
            if code >= self.first[i] && code - self.first[i] < self.count[i] {
                let at = self.index[i] + (code - self.first[i]) as usize;
                return self
                    .symbols
                    .get(at)
                    .copied()
                    .map(Some)
                    .ok_or(WsqError::Malformed("bad Huffman code"));
            }
        }
        Err(WsqError::Malformed(
            "bit sequence is not a code of the block's Huffman table",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_codes() {
        let coeffs: Vec<i32> = (0..5000)
            .map(|i: i32| match i % 13 {
                0 => (i % 300) - 150,
                1 => 4000 - i,
                2..=7 => 0,
                _ => (i % 5) - 2,
            })
            .chain(std::iter::repeat_n(0, 70_000))
            .collect();
        let tokens = tokenize(&coeffs);
        let table = Table::for_tokens(tokens.iter());
        assert!(table.counts.iter().map(|&c| usize::from(c)).sum::<usize>() == table.symbols.len());
        let enc = Encoder::new(&table).unwrap();
        let mut w = BitWriter::new();
        for t in &tokens {
            enc.write(&mut w, t).unwrap();
        }
        let stuffed = w.finish();
        let mut raw = Vec::new();
        let mut i = 0;
        while i < stuffed.len() {
            raw.push(stuffed[i]);
            i += if stuffed[i] == 0xFF { 2 } else { 1 };
        }
        let dec = Decoder::new(&table).unwrap();
        let mut r = BitReader::new(&raw);
        let mut back = Vec::new();
        while let Some(s) = dec.symbol(&mut r).unwrap() {
            let extra = tokens[back.len()].extra_bits;
            let v = r.bits(u32::from(extra)).unwrap();
            back.push(Token {
                symbol: s,
                extra: v as u16,
                extra_bits: extra,
            });
        }
        assert_eq!(back, tokens);
    }

    #[test]
    fn skewed_counts_stay_within_sixteen_bits() {
        // Fibonacci-like counts force very long optimal codes.
        let mut tokens = Vec::new();
        let (mut a, mut b) = (1u64, 1u64);
        for s in 1..=40u8 {
            for _ in 0..a {
                tokens.push(Token {
                    symbol: s,
                    extra: 0,
                    extra_bits: 0,
                });
            }
            (a, b) = (b, (a + b).min(200_000));
        }
        let table = Table::for_tokens(tokens.iter());
        assert_eq!(table.symbols.len(), 40);
        assert!(Decoder::new(&table).is_ok());
    }
}
