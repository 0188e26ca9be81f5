//! An image prepared for one family and model input side (the resizes done
//! once per image, shared by all its points), ready to write any point,
//! normalised, into a model's CHW input tensor; and what a renderer on the
//! model's device needs instead ([`View`], [`Turn`], [`Shift`]).

use super::point::GridPoint;
use crate::image::Rgb8;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Per-channel normalisation applied when writing tensors: `(x - mean) / std`
/// on pixel values 0..=255, channels in RGB order.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Per-channel mean in pixel units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation in pixel units.
    pub std: [f32; 3],
}

/// Normalisation that leaves pixel values as they are.
const IDENTITY: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };

/// A pixel value (0..=255) of channel `c`, normalised.
pub(super) type Px<'a> = &'a dyn Fn(f32, usize) -> f32;

/// How one family draws the points of a prepared image.
pub(super) trait Draw: Send + Sync + std::fmt::Debug {
    /// Writes point `p`, through `px` (normalisation), into the CHW tensor
    /// `out` of a `side` x `side` input.
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]);

    /// The point as a plain window (see [`Prepared::view`]).
    fn view(&self, _p: GridPoint, _side: u32, _norm: &Normalize) -> Option<View<'_>> {
        None
    }

    /// The point as a resampled window (see [`Prepared::shift`]).
    fn shift(&self, _p: GridPoint, _side: u32) -> Option<Shift<'_>> {
        None
    }

    /// The point as a turn (see [`Prepared::turn`]).
    fn turn(&self, _p: GridPoint) -> Option<Turn<'_>> {
        None
    }
}

/// An image prepared for one family and model input side, ready to render any point.
#[derive(Clone, Debug)]
pub struct Prepared {
    side: u32,
    draw: Arc<dyn Draw>,
}

impl Prepared {
    /// An image prepared to be drawn by `draw` at input `side`.
    pub(super) fn new(side: u32, draw: impl Draw + 'static) -> Prepared {
        Prepared { side, draw: Arc::new(draw) }
    }

    /// Renders one point as an RGB image of the model input size.
    pub fn render(&self, p: GridPoint) -> Rgb8 {
        let s = self.side as usize;
        let mut t = vec![0f32; 3 * s * s];
        self.write_chw(p, &IDENTITY, &mut t);
        let mut out = Rgb8::new(self.side, self.side);
        for i in 0..s * s {
            for c in 0..3 {
                out.data[i * 3 + c] = t[c * s * s + i].round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    /// Writes one point, normalised, into a CHW `f32` slice of `3 * side * side`.
    pub fn write_chw(&self, p: GridPoint, norm: &Normalize, out: &mut [f32]) {
        let side = self.side as usize;
        assert_eq!(out.len(), 3 * side * side);
        let scale = [1.0 / norm.std[0], 1.0 / norm.std[1], 1.0 / norm.std[2]];
        let px = |v: f32, c: usize| (v - norm.mean[c]) * scale[c];
        self.draw.write(p, side, &px, out);
    }

    /// The point as a plain window of one prepared image (integer offsets, no
    /// interpolation, a uniform background), or `None` where rendering it needs
    /// more (sub-pixel, rotated and sheared points, inpainting). A circular
    /// shift is a window of its crop tiled with its own wrap.
    pub fn view(&self, p: GridPoint, norm: &Normalize) -> Option<View<'_>> {
        self.draw.view(p, self.side, norm)
    }

    /// A crop grid's point, sub-pixel or whole, as a resampled window of its
    /// prepared image (the same tensor the host renders), or `None` for other
    /// families and for a whole-pixel window reaching outside the image (which
    /// the host fills with the background rather than the edge).
    pub fn shift(&self, p: GridPoint) -> Option<Shift<'_>> {
        self.draw.shift(p, self.side)
    }

    /// A rotation grid's point as a turn of its prepared image, or `None` for
    /// other families.
    pub fn turn(&self, p: GridPoint) -> Option<Turn<'_>> {
        self.draw.turn(p)
    }
}

/// One input of a grid as a window of a prepared image: what a renderer on the
/// model's device needs (see [`Prepared::view`]).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The image the window shows.
    pub image: &'a Rgb8,
    /// Image column shown at the input's left edge (may be negative).
    pub x0: i64,
    /// Image row shown at the input's top edge (may be negative).
    pub y0: i64,
    /// Normalised value, per channel, where the window falls outside the image.
    pub background: [f32; 3],
}

/// One input of a rotation grid as a turn of a prepared image: what a renderer
/// on the model's device needs (see [`Prepared::turn`]). Output pixel `(x, y)`
/// samples the image bilinearly at `(cos u - sin v + w/2 - 0.5, sin u + cos v +
/// h/2 - 0.5)`, `u` and `v` its offsets from the window's centre
/// ([`super::rotation_offsets`]), each of the four pixels read as black (0)
/// outside the image, in `f32` in that order; then normalised.
#[derive(Clone, Copy, Debug)]
pub struct Turn<'a> {
    /// The image turned.
    pub image: &'a Rgb8,
    /// Sine of the angle.
    pub sin: f32,
    /// Cosine of the angle.
    pub cos: f32,
}

/// One input of a crop grid as a resampled window of its prepared image: what
/// a renderer on the model's device needs for sub-pixel grids (see
/// [`Prepared::shift`]). Output pixel `(x, y)` is, per channel, `sum_k
/// wy[k] sum_j wx[j] img[clamp(first_y + y + k)][clamp(first_x + x + j)]` in
/// `f64` (indices clamped to the image: its edge repeats), then `f32`, then
/// normalised.
#[derive(Clone, Copy, Debug)]
pub struct Shift<'a> {
    /// The image resampled.
    pub image: &'a Rgb8,
    /// First source column and row.
    pub first: [i64; 2],
    /// Weights along x, then along y ([`super::TAPS`] each).
    pub weights: [[f64; super::TAPS]; 2],
}

impl View<'_> {
    /// The input, as [`Prepared::write_chw`] would write it.
    pub fn write_chw(&self, side: usize, norm: &Normalize, out: &mut [f32]) {
        let scale = [1.0 / norm.std[0], 1.0 / norm.std[1], 1.0 / norm.std[2]];
        let px = |v: f32, c: usize| (v - norm.mean[c]) * scale[c];
        paste(self.image, self.x0, self.y0, side, self.background, &px, out);
    }
}

/// Writes the `side` x `side` view of `img` whose top-left is image pixel
/// `(x0, y0)` (may lie outside), with `bg` (already normalised) where it does.
pub(super) fn paste(img: &Rgb8, x0: i64, y0: i64, side: usize, bg: [f32; 3], px: Px<'_>, out: &mut [f32]) {
    let plane = side * side;
    let (w, h) = (img.width as i64, img.height as i64);
    for y in 0..side {
        let sy = y0 + y as i64;
        for x in 0..side {
            let sx = x0 + x as i64;
            let o = y * side + x;
            if sy >= 0 && sy < h && sx >= 0 && sx < w {
                let i = ((sy * w + sx) * 3) as usize;
                for c in 0..3 {
                    out[c * plane + o] = px(img.data[i + c] as f32, c);
                }
            } else {
                for c in 0..3 {
                    out[c * plane + o] = bg[c];
                }
            }
        }
    }
}
