//! Equivariance and invariance errors of inner feature maps (the paper's
//! sampling argument measured layer by layer).
//!
//! With `x_d` the input whose window is moved by `d` pixels, content moves by
//! `-d`; a node that subsamples by a cumulative factor `k` is equivariant when
//! `F(x_k)[.., y, x] = F(x_0)[.., y + cy, x + cx]` for the one-cell shift
//! `(cx, cy)` that `k` pixels make. The error is the relative L2 distance over
//! the cells both maps hold, less `margin` cells at every border (those zero
//! padding reaches):
//!
//! `E = ||F(x_k)[.., m..H-cy-m, m..W-cx-m] - F(x_0)[.., m+cy..H-m, m+cx..W-m]||_2
//!      / ||F(x_0)[.., m+cy..H-m, m+cx..W-m]||_2`
//!
//! A shift by fewer pixels than one cell compares at zero cells. The invariance
//! error of pooled features `g` is `||g(x_1) - g(x_0)|| / ||g(x_0)||`.

use serde::{Deserialize, Serialize};

/// A node whose output a `layers` sweep measures: the input and output of every
/// subsampling op, and the global pooling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The tensor exposed as a graph output.
    pub tensor: String,
    /// The node producing it (its output's name when unnamed).
    pub node: String,
    /// Its operator type.
    pub op: String,
    /// Cumulative subsampling factor at the tensor; 0 for pooled features
    /// (measured by the invariance error).
    pub factor: u32,
    /// Whether the tensor is a subsampling op's output with a low-pass filter
    /// before (or in) it.
    pub blurred: bool,
    /// How far, in input pixels, zero padding has reached into the map along
    /// the way (the sum over padded ops of pad x the factor at their input).
    pub reach: u32,
}

/// One probe's error at one point of a `layers` sweep, as result files hold it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerError {
    /// The node ([`Probe::node`]).
    pub node: String,
    /// Its operator type.
    pub op: String,
    /// Cumulative factor; 0 for pooled features.
    pub factor: u32,
    /// Whether a low-pass filter precedes this subsampling output.
    pub blurred: bool,
    /// The error ([`probe_error`]); `None` at the reference point and where
    /// undefined.
    pub error: Option<f64>,
}

/// The cells left out at each border of a `height` x `width` map of factor `k`
/// compared at a `(cx, cy)` cell shift: those padding reaches
/// (`ceil(reach / k)`), but never more than a quarter of what the shift leaves,
/// so deep maps whose every cell padding touches are still compared.
pub fn margin(reach: u32, k: u32, (height, width): (usize, usize), (cx, cy): (usize, usize)) -> usize {
    let reached = reach.div_ceil(k.max(1)) as usize;
    let room = height.saturating_sub(cy).min(width.saturating_sub(cx));
    reached.min(room / 4)
}

/// The error of one probe for an input moved by `(dx, dy)` pixels: the
/// invariance error of pooled features (`factor` 0), else the equivariance
/// error at the whole-cell shift `(dx / k, dy / k)` over the interior less
/// [`margin`]. `shape` is the tensor's shape for one image (`[C, H, W]`, or any
/// shape for pooled features); `None` where undefined.
pub fn probe_error(probe: &Probe, shape: &[usize], shifted: &[f32], reference: &[f32], (dx, dy): (u32, u32)) -> Option<f64> {
    if probe.factor == 0 {
        return relative_l2(shifted, reference);
    }
    let &[channels, height, width] = shape else { return None };
    let (cx, cy) = (cells(dx, probe.factor), cells(dy, probe.factor));
    let m = margin(probe.reach, probe.factor, (height, width), (cx, cy));
    let map = |data| Map { data, channels, height, width };
    equivariance_error(map(shifted), map(reference), (cx, cy), m)
}

/// A `channels` x `height` x `width` map, row-major within each channel.
#[derive(Clone, Copy, Debug)]
pub struct Map<'a> {
    /// Values, `channels * height * width` of them.
    pub data: &'a [f32],
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// The equivariance error of `shifted` = F(x_d) against `reference` = F(x_0)
/// for a shift of `(cx, cy)` cells, over the interior less `margin` cells per
/// border; `None` when the maps differ in shape, nothing is left to compare,
/// or the reference is zero there.
pub fn equivariance_error(shifted: Map<'_>, reference: Map<'_>, (cx, cy): (usize, usize), margin: usize) -> Option<f64> {
    let (c, h, w) = (reference.channels, reference.height, reference.width);
    if (shifted.channels, shifted.height, shifted.width) != (c, h, w) || shifted.data.len() != c * h * w || reference.data.len() != c * h * w {
        return None;
    }
    let (rows, cols) = (h.checked_sub(cy + 2 * margin)?, w.checked_sub(cx + 2 * margin)?);
    if rows == 0 || cols == 0 {
        return None;
    }
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for ch in 0..c {
        for y in margin..margin + rows {
            for x in margin..margin + cols {
                let s = shifted.data[(ch * h + y) * w + x] as f64;
                let r = reference.data[(ch * h + y + cy) * w + x + cx] as f64;
                diff += (s - r) * (s - r);
                norm += r * r;
            }
        }
    }
    (norm > 0.0).then(|| (diff / norm).sqrt())
}

/// `||a - b|| / ||b||`: the invariance error of pooled features `a` = g(x_1)
/// against `b` = g(x_0); `None` for different lengths or a zero `b`.
pub fn relative_l2(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (norm > 0.0).then(|| (diff / norm).sqrt())
}

/// The cell shift `d` input pixels make at a node of cumulative factor `k`:
/// whole cells only (`d / k`, rounded down).
pub fn cells(d: u32, k: u32) -> usize {
    (d / k.max(1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(data: &[f32], c: usize, h: usize, w: usize) -> Map<'_> {
        Map { data, channels: c, height: h, width: w }
    }

    #[test]
    fn an_exact_one_cell_shift_has_zero_error_and_a_perturbation_counts_by_hand() {
        // F(x_0) = [[1, 2, 3], [4, 5, 6]]; an equivariant F(x_k) is it moved left
        // by one cell (the last column is whatever enters from the right).
        let r = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let s = [2.0, 3.0, 9.0, 5.0, 6.0, 9.0];
        assert_eq!(equivariance_error(map(&s, 1, 2, 3), map(&r, 1, 2, 3), (1, 0), 0), Some(0.0));
        // One cell off by 3: E = 3 / sqrt(2^2 + 3^2 + 5^2 + 6^2) = 3 / sqrt(74).
        let s2 = [5.0, 3.0, 9.0, 5.0, 6.0, 9.0];
        let e = equivariance_error(map(&s2, 1, 2, 3), map(&r, 1, 2, 3), (1, 0), 0).unwrap();
        assert!((e - 3.0 / 74f64.sqrt()).abs() < 1e-12, "{e}");
        // A margin of one cell leaves nothing of a 2x3 map to compare.
        assert_eq!(equivariance_error(map(&s, 1, 2, 3), map(&r, 1, 2, 3), (1, 0), 1), None);
        // Shapes must agree.
        assert_eq!(equivariance_error(map(&s, 1, 3, 2), map(&r, 1, 2, 3), (1, 0), 0), None);
    }

    #[test]
    fn diagonal_shifts_and_margins_select_the_interior() {
        // 2 channels of 4x4, reference value = 10 * channel + 4 * y + x.
        let r: Vec<f32> = (0..32).map(|i| (10 * (i / 16) + i % 16) as f32).collect();
        // Shifted by (1, 1) cells, with garbage where nothing corresponds.
        let s: Vec<f32> = (0..32)
            .map(|i| {
                let (ch, y, x) = (i / 16, (i % 16) / 4, i % 4);
                if y < 3 && x < 3 {
                    r[ch * 16 + (y + 1) * 4 + x + 1]
                } else {
                    -100.0
                }
            })
            .collect();
        assert_eq!(equivariance_error(map(&s, 2, 4, 4), map(&r, 2, 4, 4), (1, 1), 0), Some(0.0));
        assert_eq!(equivariance_error(map(&s, 2, 4, 4), map(&r, 2, 4, 4), (1, 1), 1), Some(0.0));
        // Without the shift the comparison is off everywhere.
        assert!(equivariance_error(map(&s, 2, 4, 4), map(&r, 2, 4, 4), (0, 0), 0).unwrap() > 1.0);
    }

    #[test]
    fn probes_pick_cells_margins_and_pooling_by_hand() {
        let p = Probe { tensor: "t".into(), node: "n".into(), op: "Conv".into(), factor: 2, blurred: false, reach: 3 };
        // ceil(3 / 2) = 2 cells, but at most a quarter of an 8-cell axis.
        assert_eq!(margin(3, 2, (16, 16), (1, 0)), 2);
        assert_eq!(margin(3, 2, (8, 9), (1, 0)), 2);
        assert_eq!(margin(64, 32, (7, 7), (1, 0)), 1, "quarter of 6 cells");
        assert_eq!(margin(0, 4, (7, 7), (0, 0)), 0);
        // A 1x1x6 map; a 2-px shift at factor 2 is one cell: equivariant, error 0
        // (margin: min(ceil(3/2), (6-1)/4 = 1) = 1 on a one-row map leaves no
        // rows, so use a taller map).
        let r: Vec<f32> = (0..24).map(|i| (i % 6 + 1) as f32).collect();
        let s: Vec<f32> = (0..24).map(|i| if i % 6 < 5 { (i % 6 + 2) as f32 } else { 0.0 }).collect();
        assert_eq!(probe_error(&p, &[1, 4, 6], &s, &r, (2, 0)), Some(0.0));
        // A 1-px shift at factor 2 compares at zero cells: the interior (margin
        // min(2, 4/4=1) = 1: rows 1..3, columns 1..5) differs by 1 everywhere:
        // sqrt(8 * 1) / sqrt(2 * (2^2 + 3^2 + 4^2 + 5^2)).
        let e = probe_error(&p, &[1, 4, 6], &s, &r, (1, 0)).unwrap();
        assert!((e - (8f64 / 108.0).sqrt()).abs() < 1e-12, "{e}");
        let pooled = Probe { factor: 0, ..p.clone() };
        assert_eq!(probe_error(&pooled, &[2], &[3.0, 4.0], &[0.0, 4.0], (1, 0)), Some(0.75));
        assert_eq!(probe_error(&p, &[6], &s, &r, (2, 0)), None, "a map needs C x H x W");
    }

    #[test]
    fn invariance_error_and_cells_by_hand() {
        assert_eq!(relative_l2(&[3.0, 4.0], &[0.0, 0.0]), None);
        assert_eq!(relative_l2(&[1.0, 1.0], &[1.0, 1.0]), Some(0.0));
        // ||(3, 4) - (0, 4)|| / ||(0, 4)|| = 3 / 4.
        assert_eq!(relative_l2(&[3.0, 4.0], &[0.0, 4.0]), Some(0.75));
        assert_eq!((cells(32, 32), cells(1, 32), cells(4, 2), cells(1, 1)), (1, 0, 2, 1));
    }
}
