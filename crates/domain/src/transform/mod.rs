//! Transform families: parameter grids, neighbour relations, and rendering of
//! one grid point straight into a model input tensor (`S` x `S`, S = the model's
//! input side).
//!
//! - `crop` (Azulay & Weiss "Crop"): the image is resized so its short side is
//!   `resize` (default: S + 32), and the S x S window is taken at the centre moved
//!   by `(dx, dy)`. No blank borders: the grid must fit inside the resized image.
//! - `embed` (Azulay & Weiss "Black"): the image is resized so its short side is
//!   `size` and centre-cropped to a `size` x `size` square (`crop = "square"`,
//!   the default), or resized whole so its long side is `size` (`crop = "none"`),
//!   and pasted on an S x S canvas at the centre moved by `(dx, dy)`. Background
//!   `black` (pixel value 0), `mean` (the normalisation mean: 0 after
//!   normalising, as the paper's released code did) or `inpaint`.
//! - `diagonal`: the paper's one-pixel diagonal steps: points `(c, c)` for
//!   `c = from..=to` (default `0..=steps`; `from = -8, to = 8` centres the line on
//!   the reference window, as many scripts do) on top of a `crop` placement
//!   (`resize`, as in `crop`) or an `embed` one (`size`, `crop`, `background`, as
//!   in `embed`).
//!
//! Each parameter name means one thing in every family: `resize` is the short
//! side of the resized image that windows are cut from, `size` the side (or long
//! side) of an image embedded in the canvas.
//! - `circular`: the centre S x S crop shifted circularly (wrap-around) by
//!   `(dx, dy)`: the setting in which shift-equivariant networks can be exactly
//!   invariant.
//! - `scale`: the image resized to a square of side `round(s * base)` (base
//!   default S), centred on the canvas (cropped when larger), for `s` from `from`
//!   to `to` in steps of `step` (ImageNet-P: 0.40..1.15 step 0.025).
//! - `rotate`: the crop window rotated by `angle` degrees (counter-clockwise)
//!   about its centre, bilinear sampling, black outside the image (ImageNet-P:
//!   -15..15).
//! - `sequence`: user-provided frame sequences (folders of consecutive frames, as
//!   in ImageNet-P): point `k` is frame `k`, resized so its short side is `resize`
//!   (default S) and centre-cropped. Neighbours are frames `k` and `k + stride`
//!   (`compare = "previous"`), or the first frame and every other frame
//!   (`compare = "first"`, ImageNet-P's noise sequences). The reference is frame 0.
//!
//! - `layers`: the reference crop window (as `crop`, resized so every shift
//!   fits) and its copies moved by each of `shifts` pixels along x, then along
//!   y; points are `(0, 0), (s1, 0), (0, s1), (s2, 0), ...`, each paired with the
//!   reference. Workers run these with the model's subsampling nodes exposed and
//!   record each node's equivariance error (`metrics::equivariance`).
//! - `radius`: the `(2R + 1)^2` crop offsets of L-infinity norm up to
//!   `max_radius` = R, in rings: point 0 is the reference, ring `r` (the `8r`
//!   offsets of norm `r`, row-major) follows ring `r - 1`. Each point is paired
//!   with the reference. Shards run one ring at a time (the reference with it);
//!   the next ring's shard holds only the images whose top-1 has not changed.
//!
//! Sub-pixel offsets: `crop` and `diagonal` (crop base) take fractional steps;
//! those points are windows at fractional positions of the resized image, by
//! separable Kaiser-windowed sinc interpolation (16 taps, edge pixels repeated;
//! see `subpixel.rs`), and integer points of the same grid are the plain windows.
//!
//! Grids (`crop`, `embed`, `circular`) are the offsets `-max_shift..=max_shift` in
//! steps of `step` on both axes, row-major (dy outer); neighbours are horizontally
//! and vertically adjacent points; the reference is `(0, 0)`. One-dimensional
//! families (`diagonal`, `scale`, `rotate`) pair consecutive points; their
//! reference is `c = 0`, the scale nearest 1, the angle nearest 0.
//!
//! One file per concern: grid points, pairs and references (`grid.rs`),
//! validation and placement (`placement.rs`), preparation and rendering
//! (`render.rs`), and one file per placement kind
//! (`crop.rs`: windows and circular shifts, `embed.rs`, `scale.rs`, `rotate.rs`,
//! `sequence.rs`), plus the paper's inpainting (`inpaint.rs`).

mod crop;
mod embed;
mod grid;
mod inpaint;
mod placement;
mod render;
mod rotate;
mod scale;
mod sequence;
mod subpixel;
mod widen;

pub use grid::MAX_POINTS;
pub use inpaint::{inpaint, INPAINT_ITERATIONS, INPAINT_MAX_UNFILLED};
pub use render::{Normalize, Prepared, Shift, Turn, View};
pub use rotate::rotation_offsets;
pub use subpixel::{padded_taps, sample_plane, KAISER_BETA, SINC_HALF_WIDTH, TAPS};
pub use widen::Widening;

use crate::image::Resample;
use serde::{Deserialize, Serialize};

/// Pixel value of the `black` background, before normalisation.
pub const BLACK: u8 = 0;

/// One transform family with its grid, as written in the sweep spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Family {
    /// Shifted windows of a resized image.
    Crop {
        /// Largest offset in pixels, on each axis.
        max_shift: u32,
        /// Grid spacing in pixels; must divide `max_shift`. Fractional steps
        /// (e.g. 0.25) translate by sub-pixel interpolation (see `subpixel`).
        #[serde(default = "one_f")]
        step: f32,
        /// Short side after resizing; default: model input side + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// A downscaled image pasted on a canvas at shifted positions.
    Embed {
        /// Side of the embedded image in pixels (its long side with `crop = "none"`).
        size: u32,
        /// Whether the image is centre-cropped to a square before embedding.
        #[serde(default)]
        crop: EmbedCrop,
        /// Largest offset in pixels, on each axis.
        max_shift: u32,
        /// Grid spacing in pixels; must divide `max_shift`.
        #[serde(default = "one")]
        step: u32,
        /// Canvas background.
        #[serde(default)]
        background: Background,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// One-pixel diagonal steps `(c, c)`, `c = from..=to`.
    Diagonal {
        /// Number of steps after `from` (points = steps + 1); default 8. Give
        /// `steps` or `to`, not both.
        #[serde(default)]
        steps: Option<u32>,
        /// Offset between consecutive points, in pixels (default 1); fractional
        /// steps (crop base only) translate by sub-pixel interpolation.
        #[serde(default = "one_f")]
        step: f32,
        /// First diagonal offset; default 0.
        #[serde(default)]
        from: Option<i32>,
        /// Last diagonal offset (inclusive); default `from + steps`.
        #[serde(default)]
        to: Option<i32>,
        /// The placement that is shifted.
        #[serde(default)]
        base: DiagonalBase,
        /// Short side after resizing (`crop` base); default: model input side + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Side of the embedded image (`embed` base); default: half the model input.
        #[serde(default)]
        size: Option<u32>,
        /// Whether the embedded image is centre-cropped to a square (`embed` base).
        #[serde(default)]
        crop: EmbedCrop,
        /// Canvas background of the `embed` base.
        #[serde(default)]
        background: Background,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// Circular (wrap-around) shifts of the centre crop.
    Circular {
        /// Largest offset in pixels, on each axis.
        max_shift: u32,
        /// Grid spacing in pixels; must divide `max_shift`.
        #[serde(default = "one")]
        step: u32,
        /// Short side after resizing, before the centre crop; default: input + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// The image at a sweep of scales, centred on a canvas.
    Scale {
        /// First scale factor.
        #[serde(default = "scale_from")]
        from: f32,
        /// Last scale factor (inclusive).
        #[serde(default = "scale_to")]
        to: f32,
        /// Scale step.
        #[serde(default = "scale_step")]
        step: f32,
        /// Side that scale 1 maps to; default: model input side.
        #[serde(default)]
        base: Option<u32>,
        /// Canvas background where the image does not cover it.
        #[serde(default)]
        background: Background,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// Zhang's consistency protocol: per image, pairs of crop windows at offsets
    /// drawn from U{0..=max_offset}^2 (from the resized image's top-left), with a
    /// recorded seed; point 0 is the centre crop (the accuracy reference).
    RandomPairs {
        /// Pairs per image.
        #[serde(default = "one")]
        pairs: u32,
        /// Largest offset from the top-left corner; default: resize - input (32).
        #[serde(default)]
        max_offset: Option<u32>,
        /// Seed of the draws (each image's draws depend on it and the image index).
        #[serde(default)]
        seed: u64,
        /// Short side after resizing; default: model input side + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// Frames of user-provided sequences (one item = one folder of frames).
    Sequence {
        /// Folder of sequences, relative to the spec file: `<sequence>/<frames>` with
        /// an optional `labels.csv` (`sequence,label`), or `<class>/<sequence>/<frames>`.
        path: String,
        /// Frames used per sequence (the first ones, in natural name order);
        /// default: the length of the shortest sequence, filled in at submit.
        #[serde(default)]
        frames: Option<u32>,
        /// Neighbours are frames `k` and `k + stride` (with `compare = "previous"`).
        #[serde(default = "one")]
        stride: u32,
        /// What each frame is compared with.
        #[serde(default)]
        compare: Compare,
        /// Short side after resizing, before the centre crop; default: model input side.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
        /// CSV of `sequence,label` inside `path`; default `labels.csv` when present.
        #[serde(default)]
        labels: Option<String>,
        /// Use only the first N sequences (in sorted order).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Per-layer equivariance: the reference window and copies shifted by each
    /// of `shifts` pixels along x and along y, run with every subsampling
    /// node's output exposed (see `metrics::equivariance`).
    Layers {
        /// Shifts in pixels, each applied along x and along y; default
        /// 1, 2, 4, 8, 16, 32 (every cumulative factor of common CNNs).
        #[serde(default = "layer_shifts")]
        shifts: Vec<u32>,
        /// Short side after resizing; default: model input side + 2 x the
        /// largest shift.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// Robust radius by adaptive search: per image, the smallest L-infinity
    /// shift of the crop window at which the top-1 changes, ring by ring up to
    /// `max_radius`; each ring after the first runs only for the images whose
    /// top-1 has not changed yet.
    Radius {
        /// Largest ring searched, in pixels.
        #[serde(default = "radius_max")]
        max_radius: u32,
        /// Short side after resizing; default: model input side + 2 x `max_radius`.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// The crop window rotated about its centre.
    Rotate {
        /// First angle in degrees.
        #[serde(default = "angle_from")]
        from: f32,
        /// Last angle in degrees (inclusive).
        #[serde(default = "angle_to")]
        to: f32,
        /// Angle step in degrees.
        #[serde(default = "one_f")]
        step: f32,
        /// Short side after resizing; default: model input side + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
}

fn one() -> u32 {
    1
}
fn radius_max() -> u32 {
    8
}
/// Shifts of a `layers` family that names none.
pub fn layer_shifts() -> Vec<u32> {
    vec![1, 2, 4, 8, 16, 32]
}
/// Steps of a `diagonal` that names neither `steps` nor `to`.
pub const DIAGONAL_STEPS: u32 = 8;
fn one_f() -> f32 {
    1.0
}
fn scale_from() -> f32 {
    0.4
}
fn scale_to() -> f32 {
    1.15
}
fn scale_step() -> f32 {
    0.025
}
fn angle_from() -> f32 {
    -15.0
}
fn angle_to() -> f32 {
    15.0
}

/// What a `sequence` frame is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The frame `stride` before it (ImageNet-P's translate, rotate, scale, tilt...).
    #[default]
    Previous,
    /// The first frame (ImageNet-P's noise sequences).
    First,
}

/// Canvas background for `embed` and `scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// Pixel value 0 before normalisation.
    #[default]
    Black,
    /// The normalisation mean: 0 after normalisation.
    Mean,
    /// Filled from the image's edges by repeated normalised convolution (see
    /// [`inpaint`]), as the paper's released `InpaintingFunction` does.
    Inpaint,
}

/// Which placement `diagonal` shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiagonalBase {
    /// Windows of the resized image.
    #[default]
    Crop,
    /// The image embedded in a black canvas.
    Embed,
}

/// How `embed` (and `diagonal` on an embed) fits the image into `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmbedCrop {
    /// Short side resized to `size`, then the centred `size` x `size` square.
    #[default]
    Square,
    /// The whole image, aspect kept, resized so its long side is `size`.
    None,
}

/// One point of a family's grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Position in the family's point list.
    pub index: u32,
    /// Horizontal offset in pixels (positive: content window moves right);
    /// fractional for sub-pixel grids.
    pub dx: f32,
    /// Vertical offset in pixels (positive: content window moves down).
    pub dy: f32,
    /// Scale factor (1 for families that do not scale).
    pub scale: f32,
    /// Rotation in degrees, counter-clockwise (0 for families that do not rotate).
    pub angle: f32,
}

impl GridPoint {
    pub(crate) fn offset(index: usize, dx: f32, dy: f32) -> GridPoint {
        GridPoint { index: index as u32, dx, dy, scale: 1.0, angle: 0.0 }
    }

    /// Whether the offset has a fractional part (rendered by interpolation).
    pub fn is_subpixel(&self) -> bool {
        self.dx.fract() != 0.0 || self.dy.fract() != 0.0
    }
}

impl Family {
    /// The family's name as written in specs and result files.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Crop { .. } => "crop",
            Family::Embed { .. } => "embed",
            Family::Diagonal { .. } => "diagonal",
            Family::Circular { .. } => "circular",
            Family::Scale { .. } => "scale",
            Family::Rotate { .. } => "rotate",
            Family::RandomPairs { .. } => "random_pairs",
            Family::Sequence { .. } => "sequence",
            Family::Layers { .. } => "layers",
            Family::Radius { .. } => "radius",
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Normalize;
    use crate::image::{Filter, Resample, Rgb8};

    /// An image whose pixel (x, y) is (x, y, 200).
    pub fn numbered(w: u32, h: u32) -> Rgb8 {
        let mut img = Rgb8::new(w, h);
        for y in 0..h {
            for x in 0..w {
                img.set_pixel(x, y, [x as u8, y as u8, 200]);
            }
        }
        img
    }

    pub const NEAREST: Resample = Resample { filter: Filter::Nearest, antialias: false, compat: crate::image::Compat::Float };
    pub const ID: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };
}
