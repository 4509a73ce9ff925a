//! The 9/7 biorthogonal filter bank of the specification, applied separably over the 20 nodes of
//! the decomposition tree, with whole-sample symmetric extension at both ends of every line.
//!
//! Analysis puts low-pass output `j` on input sample `2j` and high-pass output `j` on `2j + 1`,
//! so a line of `n` samples gives `ceil(n/2)` low and `floor(n/2)` high coefficients. Because both
//! filters are symmetric and the extension is symmetric, the coefficients of the extended line are
//! the symmetric extension of the coefficients, which is what synthesis relies on.

use crate::tree::{Node, Trees};

/// Right halves (centre first) of the analysis filters: 9-tap low-pass, 7-tap high-pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Filters {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

impl Filters {
    /// The filters of the specification (normalised so the low-pass gain at DC is √2).
    pub fn standard() -> Filters {
        Filters {
            lo: vec![
                0.852_698_679_008_894,
                0.377_402_855_612_831,
                -0.110_624_404_418_437,
                -0.023_849_465_019_557,
                0.037_828_455_507_264,
            ],
            hi: vec![
                0.788_485_616_405_583,
                -0.418_092_273_221_617,
                -0.040_689_417_609_164,
                0.064_538_882_628_697,
            ],
        }
    }
}

/// Whole-sample symmetric reflection of index `i` into `0..n` (`n >= 1`).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut m = i.rem_euclid(period);
    if m >= n as isize {
        m = period - m;
    }
    m as usize
}

/// Precomputed kernels for one filter pair.
pub(crate) struct Bank {
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// Synthesis kernels for output samples at even and odd positions, indexed by offset + reach.
    syn_even: Vec<f64>,
    syn_odd: Vec<f64>,
    reach: usize,
}

impl Bank {
    pub fn new(f: &Filters) -> Bank {
        // Synthesis low-pass g0[k] = (-1)^k h1[k]; synthesis high-pass g1[k] = (-1)^k h0[k].
        let sign = |k: usize| if k.is_multiple_of(2) { 1.0 } else { -1.0 };
        let g0 = |k: usize| f.hi.get(k).map_or(0.0, |v| sign(k) * v);
        let g1 = |k: usize| f.lo.get(k).map_or(0.0, |v| sign(k) * v);
        let reach = f.lo.len().max(f.hi.len());
        let mut syn_even = Vec::with_capacity(2 * reach + 1);
        let mut syn_odd = Vec::with_capacity(2 * reach + 1);
        for d in -(reach as isize)..=reach as isize {
            let k = d.unsigned_abs();
            // An even output sample takes low-pass terms from even neighbours (d even), high-pass
            // terms from odd ones; an odd output sample the other way round.
            if d % 2 == 0 {
                syn_even.push(g0(k));
                syn_odd.push(g1(k));
            } else {
                syn_even.push(g1(k));
                syn_odd.push(g0(k));
            }
        }
        Bank {
            lo: f.lo.clone(),
            hi: f.hi.clone(),
            syn_even,
            syn_odd,
            reach,
        }
    }

    /// One line: `input` (n samples) to `out` (low then high, or high then low when `inv`).
    fn analyse(&self, input: &[f64], out: &mut [f64], ext: &mut Vec<f64>, inv: bool) {
        let n = input.len();
        if n < 2 {
            out.copy_from_slice(input);
            return;
        }
        let r = self.reach;
        ext.clear();
        ext.extend((0..n + 2 * r).map(|k| input[reflect(k as isize - r as isize, n)]));
        let low_len = n.div_ceil(2);
        let high_len = n / 2;
        let (low_at, high_at) = if inv { (high_len, 0) } else { (0, low_len) };
        for j in 0..low_len {
            let c = 2 * j + r;
            let mut acc = self.lo[0] * ext[c];
            for (k, h) in self.lo.iter().enumerate().skip(1) {
                acc += h * (ext[c - k] + ext[c + k]);
            }
            out[low_at + j] = acc;
        }
        for j in 0..high_len {
            let c = 2 * j + 1 + r;
            let mut acc = self.hi[0] * ext[c];
            for (k, h) in self.hi.iter().enumerate().skip(1) {
                acc += h * (ext[c - k] + ext[c + k]);
            }
            out[high_at + j] = acc;
        }
    }

    /// Inverse of [`Bank::analyse`].
    fn synthesise(&self, input: &[f64], out: &mut [f64], ext: &mut Vec<f64>, inv: bool) {
        let n = input.len();
        if n < 2 {
            out.copy_from_slice(input);
            return;
        }
        let r = self.reach;
        let low_len = n.div_ceil(2);
        let high_len = n / 2;
        let (low, high) = if inv {
            (&input[high_len..], &input[..high_len])
        } else {
            (&input[..low_len], &input[low_len..])
        };
        // Interleave the coefficients back onto their sample positions, extended symmetrically.
        ext.clear();
        ext.extend((0..n + 2 * r).map(|k| {
            let p = reflect(k as isize - r as isize, n);
            if p.is_multiple_of(2) {
                low[p / 2]
            } else {
                high[p / 2]
            }
        }));
        for (i, o) in out.iter_mut().enumerate() {
            let kernel = if i % 2 == 0 {
                &self.syn_even
            } else {
                &self.syn_odd
            };
            *o = kernel
                .iter()
                .zip(&ext[i..i + 2 * r + 1])
                .map(|(g, v)| g * v)
                .sum();
        }
    }
}

/// Applies `line_op` to every row then every column of each node, in the given node order.
fn for_nodes(
    data: &mut [f64],
    width: usize,
    nodes: impl Iterator<Item = Node>,
    rows_first: bool,
    mut line_op: impl FnMut(&[f64], &mut [f64], &mut Vec<f64>, bool),
) {
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut ext = Vec::new();
    for node in nodes {
        let r = node.rect;
        let mut pass = |rows: bool| {
            let (count, len, inv) = if rows {
                (r.h, r.w, node.inv_rows)
            } else {
                (r.w, r.h, node.inv_cols)
            };
            for i in 0..count {
                let index = |k: usize| {
                    if rows {
                        (r.y + i) * width + r.x + k
                    } else {
                        (r.y + k) * width + r.x + i
                    }
                };
                line.clear();
                line.extend((0..len).map(|k| data[index(k)]));
                out.clear();
                out.resize(len, 0.0);
                line_op(&line, &mut out, &mut ext, inv);
                for (k, v) in out.iter().enumerate() {
                    data[index(k)] = *v;
                }
            }
        };
        if rows_first {
            pass(true);
            pass(false);
        } else {
            pass(false);
            pass(true);
        }
    }
}

pub(crate) fn decompose(data: &mut [f64], width: usize, trees: &Trees, bank: &Bank) {
    for_nodes(
        data,
        width,
        trees.nodes.iter().copied(),
        true,
        |i, o, e, inv| bank.analyse(i, o, e, inv),
    );
}

pub(crate) fn reconstruct(data: &mut [f64], width: usize, trees: &Trees, bank: &Bank) {
    for_nodes(
        data,
        width,
        trees.nodes.iter().rev().copied(),
        false,
        |i, o, e, inv| bank.synthesise(i, o, e, inv),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_reconstructs_exactly() {
        let bank = Bank::new(&Filters::standard());
        for n in 2..40 {
            for inv in [false, true] {
                let x: Vec<f64> = (0..n).map(|i| ((i * 37 + 11) % 23) as f64 - 9.5).collect();
                let mut c = vec![0.0; n];
                let mut y = vec![0.0; n];
                let mut ext = Vec::new();
                bank.analyse(&x, &mut c, &mut ext, inv);
                bank.synthesise(&c, &mut y, &mut ext, inv);
                for (a, b) in x.iter().zip(&y) {
                    assert!((a - b).abs() < 1e-9, "n={n} inv={inv}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn constant_line_has_no_high_pass_energy() {
        let bank = Bank::new(&Filters::standard());
        let x = vec![3.0; 17];
        let mut c = vec![0.0; 17];
        bank.analyse(&x, &mut c, &mut Vec::new(), false);
        assert!(c[..9]
            .iter()
            .all(|v| (v - 3.0 * std::f64::consts::SQRT_2).abs() < 1e-6));
        assert!(c[9..].iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn image_reconstructs_exactly() {
        for (w, h) in [(64, 48), (101, 77), (320, 400)] {
            let trees = Trees::new(w, h);
            let bank = Bank::new(&Filters::standard());
            let orig: Vec<f64> = (0..w * h)
                .map(|i| ((i * 7919) % 255) as f64 - 127.0)
                .collect();
            let mut d = orig.clone();
            decompose(&mut d, w, &trees, &bank);
            reconstruct(&mut d, w, &trees, &bank);
            let worst = orig
                .iter()
                .zip(&d)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-8, "{w}x{h}: worst error {worst}");
        }
    }
}
