//! Geometry of the WSQ decomposition: where each of the 20 transform nodes and each of the 64
//! subbands lie in the coefficient plane. The layout is fixed by the specification (it decides the
//! order in which coefficients are stored), including which half gets the extra sample when a
//! length is odd; decoder and encoder must agree on it to the sample.

/// A rectangle of the coefficient plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    pub fn area(&self) -> usize {
        self.w * self.h
    }
}

/// One transform node: a region split into four by a row pass then a column pass. `inv_rows`
/// and `inv_cols` put the high-pass half first (spectral inversion of the split).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Node {
    pub rect: Rect,
    pub inv_rows: bool,
    pub inv_cols: bool,
}

/// Subbands 0..60 are coded; 60..64 exist in the tables but are always empty.
pub(crate) const CODED_SUBBANDS: usize = 60;
pub(crate) const ALL_SUBBANDS: usize = 64;
/// First subband of the second and third coded blocks.
pub(crate) const BLOCK2_START: usize = 19;
pub(crate) const BLOCK3_START: usize = 52;

#[derive(Clone, Debug)]
pub(crate) struct Trees {
    pub nodes: [Node; 20],
    pub bands: [Rect; ALL_SUBBANDS],
}

/// Halves of an odd length: the first half gets the extra sample unless `first_smaller`.
fn halves(len: usize, first_smaller: bool) -> (usize, usize) {
    if len.is_multiple_of(2) {
        (len / 2, len / 2)
    } else if first_smaller {
        (len / 2, len / 2 + 1)
    } else {
        (len / 2 + 1, len / 2)
    }
}

impl Trees {
    pub fn new(width: usize, height: usize) -> Trees {
        let mut nodes = [Node::default(); 20];
        for i in [2, 4, 7, 9, 11, 13, 16, 18] {
            nodes[i].inv_rows = true;
        }
        for i in [3, 5, 8, 9, 12, 13, 17, 18] {
            nodes[i].inv_cols = true;
        }
        let full = Rect {
            x: 0,
            y: 0,
            w: width,
            h: height,
        };
        split_nodes(&mut nodes, 0, 1, full, false);
        let (lw, lw2) = halves(nodes[1].rect.w, false);
        let (lh, lh2) = halves(nodes[1].rect.h, false);
        split_nodes(
            &mut nodes,
            4,
            6,
            Rect {
                x: lw,
                y: 0,
                w: lw2,
                h: lh,
            },
            true,
        );
        split_nodes(
            &mut nodes,
            5,
            10,
            Rect {
                x: 0,
                y: lh,
                w: lw,
                h: lh2,
            },
            true,
        );
        split_nodes(
            &mut nodes,
            14,
            15,
            Rect {
                x: 0,
                y: 0,
                w: lw,
                h: lh,
            },
            true,
        );
        nodes[19].rect = Rect {
            x: 0,
            y: 0,
            w: nodes[15].rect.w.div_ceil(2),
            h: nodes[15].rect.h.div_ceil(2),
        };

        let mut bands = [Rect::default(); ALL_SUBBANDS];
        // The order matters: later calls overwrite bands that earlier ones laid out coarsely.
        bands16(&mut bands, 3, nodes[14].rect, false, false);
        bands16(&mut bands, 19, nodes[4].rect, false, true);
        bands16(&mut bands, 48, nodes[0].rect, false, false);
        bands16(&mut bands, 35, nodes[5].rect, true, false);
        bands4(&mut bands, 0, nodes[19].rect);
        Trees { nodes, bands }
    }

    /// Samples in the coded subbands whose quantiser step is non-zero.
    pub fn coded_len(
        &self,
        q_nonzero: impl Fn(usize) -> bool,
        range: std::ops::Range<usize>,
    ) -> usize {
        range
            .filter(|&b| q_nonzero(b))
            .map(|b| self.bands[b].area())
            .sum()
    }
}

/// Records `rect` as node `at` and its four quadrants as nodes `first..first + 4` (the last one
/// only when `with_last`). Node 4 puts the smaller half first horizontally, node 5 vertically.
fn split_nodes(nodes: &mut [Node; 20], at: usize, first: usize, rect: Rect, with_last: bool) {
    nodes[at].rect = rect;
    let (a, b) = halves(rect.w, at == 4);
    let (c, d) = halves(rect.h, at == 5);
    nodes[first].rect = Rect {
        x: rect.x,
        y: rect.y,
        w: a,
        h: c,
    };
    nodes[first + 1].rect = Rect {
        x: rect.x + a,
        y: rect.y,
        w: b,
        h: c,
    };
    nodes[first + 2].rect = Rect {
        x: rect.x,
        y: rect.y + c,
        w: a,
        h: d,
    };
    if with_last {
        nodes[first + 3].rect = Rect {
            x: rect.x + a,
            y: rect.y + c,
            w: b,
            h: d,
        };
    }
}

/// Four subbands in a 2×2 grid over `(x, y)`, column widths `(a, b)` and row heights `(c, d)`.
fn grid4(
    bands: &mut [Rect],
    at: usize,
    x: usize,
    y: usize,
    (a, b): (usize, usize),
    (c, d): (usize, usize),
) {
    bands[at] = Rect { x, y, w: a, h: c };
    bands[at + 1] = Rect {
        x: x + a,
        y,
        w: b,
        h: c,
    };
    bands[at + 2] = Rect {
        x,
        y: y + c,
        w: a,
        h: d,
    };
    bands[at + 3] = Rect {
        x: x + a,
        y: y + c,
        w: b,
        h: d,
    };
}

fn bands4(bands: &mut [Rect], at: usize, r: Rect) {
    grid4(bands, at, r.x, r.y, halves(r.w, false), halves(r.h, false));
}

/// Sixteen subbands: `r` split in four (odd halves per `inv_rows`/`inv_cols`), each quarter split
/// in four again, the extra sample of the second column/row of quarters going to its far half.
fn bands16(bands: &mut [Rect], at: usize, r: Rect, inv_rows: bool, inv_cols: bool) {
    let (w1, w2) = halves(r.w, inv_cols);
    let (h1, h2) = halves(r.h, inv_rows);
    let cols1 = halves(w1, false);
    let cols2 = halves(w2, true);
    let rows1 = halves(h1, false);
    let rows2 = halves(h2, true);
    grid4(bands, at, r.x, r.y, cols1, rows1);
    grid4(bands, at + 4, r.x + w1, r.y, cols2, rows1);
    grid4(bands, at + 8, r.x, r.y + h1, cols1, rows2);
    grid4(bands, at + 12, r.x + w1, r.y + h1, cols2, rows2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pixel of the plane belongs to exactly one of subbands 0..64.
    #[test]
    fn subbands_tile_the_plane() {
        for (w, h) in [
            (500, 500),
            (320, 400),
            (333, 417),
            (64, 48),
            (545, 622),
            (65, 65),
        ] {
            let t = Trees::new(w, h);
            let mut hits = vec![0u8; w * h];
            for b in &t.bands {
                for y in b.y..b.y + b.h {
                    for x in b.x..b.x + b.w {
                        hits[y * w + x] += 1;
                    }
                }
            }
            assert!(
                hits.iter().all(|&n| n == 1),
                "{w}x{h} not tiled exactly once"
            );
        }
    }
}
