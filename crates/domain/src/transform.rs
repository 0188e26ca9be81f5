//! Transform families: parameter grids, neighbour relations, and rendering of
//! one grid point straight into a model input tensor (`S` x `S`, S = the model's
//! input side).
//!
//! - `crop` (Azulay & Weiss "Crop"): the image is resized so its short side is
//!   `resize` (default: S + 32), and the S x S window is taken at the centre moved
//!   by `(dx, dy)`. No blank borders: the grid must fit inside the resized image.
//! - `embed` (Azulay & Weiss "Black"): the image is resized so its short side is
//!   `size`, centre-cropped to a `size` x `size` square, and pasted on an S x S
//!   canvas at the centre moved by `(dx, dy)`. Background `black` (pixel value 0)
//!   or `mean` (the normalisation mean: 0 after normalising, as the paper's
//!   released code did).
//! - `diagonal`: the paper's one-pixel diagonal steps: points `(c, c)` for
//!   `c = 0..=steps` on top of a `crop` or `embed` placement.
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
//! Grids (`crop`, `embed`, `circular`) are the offsets `-max_shift..=max_shift` in
//! steps of `step` on both axes, row-major (dy outer); neighbours are horizontally
//! and vertically adjacent points; the reference is `(0, 0)`. One-dimensional
//! families (`diagonal`, `scale`, `rotate`) pair consecutive points; their
//! reference is `c = 0`, the scale nearest 1, the angle nearest 0.

use crate::image::{resize, resize_short_side, Resample, Rgb8};
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
        /// Grid spacing in pixels; must divide `max_shift`.
        #[serde(default = "one")]
        step: u32,
        /// Short side after resizing; default: model input side + 32.
        #[serde(default)]
        resize: Option<u32>,
        /// Resampling of the resize.
        #[serde(default)]
        resample: Resample,
    },
    /// A downscaled image pasted on a canvas at shifted positions.
    Embed {
        /// Side of the embedded square image in pixels.
        size: u32,
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
    /// One-pixel diagonal steps `(c, c)`, `c = 0..=steps`.
    Diagonal {
        /// Number of steps (points = steps + 1).
        #[serde(default = "eight")]
        steps: u32,
        /// The placement that is shifted.
        #[serde(default)]
        base: DiagonalBase,
        /// Short side of the resize (`crop` base) or embedded side (`embed` base).
        #[serde(default)]
        size: Option<u32>,
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
fn eight() -> u32 {
    8
}
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

/// Iterations after which inpainting stops.
pub const INPAINT_ITERATIONS: usize = 80;
/// Inpainting stops once at most this many pixels are unfilled.
pub const INPAINT_MAX_UNFILLED: usize = 200;

/// Fills the unknown pixels of a `side` x `side` CHW canvas (pixel units) by
/// repeated normalised convolution with the binomial kernel
/// `[.25, .5, .25]` x `[.25, .5, .25]` (from `[.5, .5]` convolved with itself): each
/// pass gives every unknown pixel with a known neighbour the kernel-weighted mean
/// of its known neighbours, computed from the previous pass. It stops after
/// [`INPAINT_ITERATIONS`] passes or when at most [`INPAINT_MAX_UNFILLED`] pixels are
/// unfilled; those stay black.
pub fn inpaint(canvas: &mut [f32], known: &mut [bool], side: usize) {
    const K: [f32; 3] = [0.25, 0.5, 0.25];
    let plane = side * side;
    let mut unfilled = known.iter().filter(|k| !**k).count();
    let mut updates: Vec<(usize, [f32; 3])> = Vec::new();
    for _ in 0..INPAINT_ITERATIONS {
        if unfilled <= INPAINT_MAX_UNFILLED {
            break;
        }
        updates.clear();
        for y in 0..side {
            for x in 0..side {
                let i = y * side + x;
                if known[i] {
                    continue;
                }
                let (mut num, mut den) = ([0f32; 3], 0f32);
                for (ky, wy) in K.iter().enumerate() {
                    let yy = y as i64 + ky as i64 - 1;
                    if yy < 0 || yy >= side as i64 {
                        continue;
                    }
                    for (kx, wx) in K.iter().enumerate() {
                        let xx = x as i64 + kx as i64 - 1;
                        if xx < 0 || xx >= side as i64 {
                            continue;
                        }
                        let j = yy as usize * side + xx as usize;
                        if known[j] {
                            let w = wy * wx;
                            den += w;
                            for c in 0..3 {
                                num[c] += w * canvas[c * plane + j];
                            }
                        }
                    }
                }
                if den > 0.0 {
                    updates.push((i, [num[0] / den, num[1] / den, num[2] / den]));
                }
            }
        }
        if updates.is_empty() {
            break;
        }
        for &(i, v) in &updates {
            for c in 0..3 {
                canvas[c * plane + i] = v[c];
            }
            known[i] = true;
        }
        unfilled -= updates.len();
    }
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

/// One point of a family's grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Position in the family's point list.
    pub index: u32,
    /// Horizontal offset in pixels (positive: content window moves right).
    pub dx: i32,
    /// Vertical offset in pixels (positive: content window moves down).
    pub dy: i32,
    /// Scale factor (1 for families that do not scale).
    pub scale: f32,
    /// Rotation in degrees, counter-clockwise (0 for families that do not rotate).
    pub angle: f32,
}

impl GridPoint {
    fn offset(index: usize, dx: i32, dy: i32) -> GridPoint {
        GridPoint { index: index as u32, dx, dy, scale: 1.0, angle: 0.0 }
    }
}

/// Largest grid a family may have, a guard against specs that would explode.
pub const MAX_POINTS: usize = 100_000;

/// Values `from, from + step, ..., <= to` (with a small tolerance for rounding).
fn range(from: f32, to: f32, step: f32) -> Vec<f32> {
    if step.is_nan() || step <= 0.0 || !from.is_finite() || !to.is_finite() || to < from {
        return vec![];
    }
    let n = (((to - from) / step) as f64 + 1e-4).floor() as usize + 1;
    (0..n.min(MAX_POINTS + 1)).map(|i| (from as f64 + i as f64 * step as f64) as f32).collect()
}

/// The shape of a family's grid.
enum Shape {
    Grid(u32, u32),
    Line(Vec<GridPoint>),
    /// A centre point then `n` independent pairs.
    Pairs(u32),
    /// Frames with explicit neighbour pairs.
    Frames(Vec<GridPoint>, Vec<(usize, usize)>),
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
        }
    }

    fn axis(max_shift: u32, step: u32) -> Vec<i32> {
        let (m, s) = (max_shift as i32, step.max(1) as i32);
        (-m..=m).step_by(s as usize).collect()
    }

    fn shape(&self) -> Shape {
        match *self {
            Family::Crop { max_shift, step, .. } | Family::Embed { max_shift, step, .. } | Family::Circular { max_shift, step, .. } => {
                Shape::Grid(max_shift, step)
            }
            Family::Diagonal { steps, .. } => Shape::Line((0..=steps as i32).enumerate().map(|(i, c)| GridPoint::offset(i, c, c)).collect()),
            Family::Scale { from, to, step, .. } => Shape::Line(
                range(from, to, step).into_iter().enumerate().map(|(i, s)| GridPoint { scale: s, ..GridPoint::offset(i, 0, 0) }).collect(),
            ),
            Family::RandomPairs { pairs, .. } => Shape::Pairs(pairs),
            Family::Sequence { frames, stride, compare, .. } => {
                let n = frames.unwrap_or(0);
                let pts = (0..n as usize).map(|i| GridPoint::offset(i, 0, 0)).collect();
                let pairs = match compare {
                    Compare::Previous => (0..n.saturating_sub(stride) as usize).map(|k| (k, k + stride as usize)).collect(),
                    Compare::First => (1..n as usize).map(|k| (0, k)).collect(),
                };
                Shape::Frames(pts, pairs)
            }
            Family::Rotate { from, to, step, .. } => Shape::Line(
                range(from, to, step).into_iter().enumerate().map(|(i, a)| GridPoint { angle: a, ..GridPoint::offset(i, 0, 0) }).collect(),
            ),
        }
    }

    /// The grid points in their fixed order.
    pub fn points(&self) -> Vec<GridPoint> {
        match self.shape() {
            Shape::Grid(m, s) => {
                let ax = Self::axis(m, s);
                ax.iter().flat_map(|&dy| ax.iter().map(move |&dx| (dx, dy))).enumerate().map(|(i, (dx, dy))| GridPoint::offset(i, dx, dy)).collect()
            }
            Shape::Line(p) | Shape::Frames(p, _) => p,
            Shape::Pairs(n) => (0..=2 * n as usize).map(|i| GridPoint::offset(i, 0, 0)).collect(),
        }
    }

    /// The points of one image: as [`Family::points`], except that `random_pairs`
    /// draws its offsets from the family's seed and the image index, so they are
    /// the same on every worker and every attempt, for a given room
    /// (`resize - input`) of the resized image's short side.
    pub fn image_points(&self, image_index: u32, side: u32) -> Vec<GridPoint> {
        let mut pts = self.points();
        if let Family::RandomPairs { max_offset, seed, resize, .. } = *self {
            let room = resize.unwrap_or(side + 32).saturating_sub(side);
            let max = max_offset.unwrap_or(room).min(room) as u64;
            let mut rng = crate::rng::SplitMix(seed ^ (image_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let centre = (room / 2) as i32;
            for p in pts.iter_mut().skip(1) {
                p.dx = (rng.next_u64() % (max + 1)) as i32 - centre;
                p.dy = (rng.next_u64() % (max + 1)) as i32 - centre;
            }
        }
        pts
    }

    /// Neighbour pairs `(a, b)` of point indices; pair metrics take `a` as first.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        match self.shape() {
            Shape::Grid(m, s) => {
                let n = Self::axis(m, s).len();
                let mut pairs = Vec::with_capacity(2 * n * n.saturating_sub(1));
                for r in 0..n {
                    for c in 0..n {
                        let i = r * n + c;
                        if c + 1 < n {
                            pairs.push((i, i + 1));
                        }
                        if r + 1 < n {
                            pairs.push((i, i + n));
                        }
                    }
                }
                pairs
            }
            Shape::Line(p) => (0..p.len().saturating_sub(1)).map(|c| (c, c + 1)).collect(),
            Shape::Pairs(n) => (0..n as usize).map(|i| (1 + 2 * i, 2 + 2 * i)).collect(),
            Shape::Frames(_, pairs) => pairs,
        }
    }

    /// Index of the reference (untransformed, centred) point.
    pub fn reference(&self) -> usize {
        if let Family::RandomPairs { .. } | Family::Sequence { .. } = self {
            return 0;
        }
        let pts = self.points();
        let key = |p: &GridPoint| (p.dx.unsigned_abs() + p.dy.unsigned_abs()) as f64 + (p.scale as f64 - 1.0).abs() + (p.angle as f64).abs();
        (0..pts.len()).min_by(|&a, &b| key(&pts[a]).total_cmp(&key(&pts[b])).then(a.cmp(&b))).unwrap_or(0)
    }

    /// Checks the family's own parameters and that its grid fits a model whose input
    /// is `side` x `side`. Errors name the offending field, relative to the family.
    pub fn validate(&self, side: Option<u32>) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        match *self {
            Family::Crop { max_shift, step, .. } | Family::Embed { max_shift, step, .. } | Family::Circular { max_shift, step, .. } => {
                if step == 0 {
                    return err("step", "must be at least 1".into());
                }
                if max_shift % step != 0 {
                    return err("step", format!("must divide max_shift ({max_shift}) so the grid holds (0, 0)"));
                }
                let n = (2 * max_shift / step + 1) as usize;
                if n.saturating_mul(n) > MAX_POINTS {
                    return err("max_shift", format!("grid of {n}x{n} points exceeds the limit of {MAX_POINTS}"));
                }
            }
            Family::RandomPairs { pairs, .. } => {
                if pairs == 0 || pairs as usize > MAX_POINTS / 2 {
                    return err("pairs", format!("must be between 1 and {}", MAX_POINTS / 2));
                }
            }
            Family::Sequence { ref path, frames, stride, compare, limit, .. } => {
                if path.trim().is_empty() {
                    return err("path", "must not be empty".into());
                }
                match frames {
                    Some(n) if n < 2 => return err("frames", "must be at least 2".into()),
                    Some(n) if n as usize > MAX_POINTS => return err("frames", format!("exceeds the limit of {MAX_POINTS} points")),
                    _ => {}
                }
                if stride == 0 {
                    return err("stride", "must be at least 1".into());
                }
                if let (Some(n), Compare::Previous) = (frames, compare) {
                    if stride >= n {
                        return err("stride", format!("must be smaller than frames ({n})"));
                    }
                }
                if limit == Some(0) {
                    return err("limit", "must be at least 1".into());
                }
            }
            Family::Diagonal { steps, .. } => {
                if steps == 0 {
                    return err("steps", "must be at least 1".into());
                }
                if steps as usize >= MAX_POINTS {
                    return err("steps", format!("exceeds the limit of {MAX_POINTS} points"));
                }
            }
            Family::Scale { from, to, step, .. } | Family::Rotate { from, to, step, .. } => {
                if !(step > 0.0 && step.is_finite()) {
                    return err("step", "must be a positive number".into());
                }
                if !(from.is_finite() && to.is_finite()) || to < from {
                    return err("to", format!("must be a number no smaller than from ({from})"));
                }
                if range(from, to, step).len() > MAX_POINTS {
                    return err("step", format!("gives more than {MAX_POINTS} points"));
                }
                if matches!(self, Family::Scale { .. }) && !(from > 0.0 && to <= 8.0) {
                    return err("from", "scales must lie in (0, 8]".into());
                }
                if matches!(self, Family::Rotate { .. }) && (from < -360.0 || to > 360.0) {
                    return err("from", "angles must lie in -360..=360".into());
                }
            }
        }
        if let Some(side) = side {
            self.placement(side)?;
        }
        Ok(())
    }

    /// The resolved placement for a model input side, or which field breaks it.
    fn placement(&self, side: u32) -> Result<Placement, (String, String)> {
        let pts = self.points();
        let need = pts.iter().map(|g| g.dx.unsigned_abs().max(g.dy.unsigned_abs())).max().unwrap_or(0);
        let window = |extent: u32, field: &str, need: u32| -> Result<(), (String, String)> {
            if extent < side {
                return Err((field.into(), format!("{extent} is smaller than the model input ({side})")));
            }
            // The centred window sits at floor((extent - side) / 2) on the short side.
            let room_lo = (extent - side) / 2;
            let room_hi = extent - side - room_lo;
            if need > room_lo.min(room_hi) {
                return Err((
                    "max_shift".into(),
                    format!("shifts up to {need} px need a resize of at least {} for input {side}", side + 2 * need + 1),
                ));
            }
            Ok(())
        };
        let embed = |extent: u32, field: &str| -> Result<(), (String, String)> {
            if extent == 0 {
                return Err((field.into(), "must be at least 1".into()));
            }
            if extent > side {
                return Err((field.into(), format!("{extent} exceeds the model input ({side})")));
            }
            if need > (side - extent) / 2 {
                return Err(("max_shift".into(), format!("shifts up to {need} px do not fit a {extent} px image in a {side} px canvas")));
            }
            Ok(())
        };
        Ok(match *self {
            Family::Crop { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", need)?;
                Placement::Window { extent, resample }
            }
            Family::RandomPairs { resize, max_offset, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                if let Some(m) = max_offset {
                    if m > extent - side {
                        return Err(("max_offset".into(), format!("{m} exceeds the room of the resize ({})", extent - side)));
                    }
                }
                Placement::Window { extent, resample }
            }
            Family::Diagonal { base: DiagonalBase::Crop, size, resample, .. } => {
                let extent = size.unwrap_or(side + 32);
                window(extent, "size", need)?;
                Placement::Window { extent, resample }
            }
            Family::Embed { size, background, resample, .. } => {
                embed(size, "size")?;
                Placement::Embed { extent: size, background, resample }
            }
            Family::Diagonal { base: DiagonalBase::Embed, size, background, resample, .. } => {
                let extent = size.unwrap_or(side / 2);
                embed(extent, "size")?;
                Placement::Embed { extent, background, resample }
            }
            Family::Circular { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                if need >= side {
                    return Err(("max_shift".into(), format!("circular shifts must be smaller than the input ({side})")));
                }
                Placement::Circular { extent, resample }
            }
            Family::Scale { base, background, resample, .. } => {
                let base = base.unwrap_or(side);
                if base == 0 || base > 8 * side {
                    return Err(("base".into(), format!("must lie in 1..={}", 8 * side)));
                }
                Placement::Scale { base, background, resample }
            }
            Family::Rotate { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                Placement::Rotate { extent, resample }
            }
            Family::Sequence { resize, resample, .. } => {
                let extent = resize.unwrap_or(side);
                window(extent, "resize", 0)?;
                Placement::Frames { extent, resample }
            }
        })
    }

    /// Frames one item needs: the family's `frames` for `sequence`, else 1.
    pub fn frames_needed(&self) -> usize {
        match *self {
            Family::Sequence { frames, .. } => frames.unwrap_or(0) as usize,
            _ => 1,
        }
    }

    /// Prepares one item (an image, or a sequence's frames in order) for rendering
    /// the grid at model input `side`.
    pub fn prepare_item(&self, frames: &[Rgb8], side: u32) -> Result<Prepared, String> {
        if let Placement::Frames { extent, resample } = self.placement(side).map_err(|(f, m)| format!("{f}: {m}"))? {
            let need = self.frames_needed();
            if frames.len() < need {
                return Err(format!("the sequence has {} frames; the family needs {need}", frames.len()));
            }
            let crops =
                frames[..need].iter().map(|f| resize_short_side(f, extent, resample).center_square(side).expect("extent covers the input")).collect();
            return Ok(Prepared { side, kind: Kind::Frames(crops) });
        }
        match frames {
            [img] => self.prepare(img, side),
            _ => Err(format!("expected one image, got {}", frames.len())),
        }
    }

    /// Prepares one decoded image for rendering the grid at model input `side`: the
    /// resizes are done once per image and shared by all points.
    pub fn prepare(&self, img: &Rgb8, side: u32) -> Result<Prepared, String> {
        let placement = self.placement(side).map_err(|(f, m)| format!("{f}: {m}"))?;
        let kind = match placement {
            Placement::Frames { .. } => return self.prepare_item(std::slice::from_ref(img), side),
            Placement::Window { extent, resample } => Kind::Window(resize_short_side(img, extent, resample)),
            Placement::Rotate { extent, resample } => Kind::Rotate(resize_short_side(img, extent, resample)),
            Placement::Embed { extent, background, resample } => {
                let small = resize_short_side(img, extent, resample);
                Kind::Embed(vec![small.center_square(extent).expect("short side equals extent")], background)
            }
            Placement::Circular { extent, resample } => {
                let r = resize_short_side(img, extent, resample);
                Kind::Circular(r.center_square(side).expect("extent covers the input"))
            }
            Placement::Scale { base, background, resample } => {
                let squares = self
                    .points()
                    .iter()
                    .map(|p| {
                        let n = ((p.scale as f64 * base as f64).round() as u32).max(1);
                        let r = resize_short_side(img, n, resample);
                        r.center_square(n).unwrap_or_else(|| resize(&r, n, n, resample))
                    })
                    .collect();
                Kind::Embed(squares, background)
            }
        };
        Ok(Prepared { side, kind })
    }
}

#[derive(Clone, Copy, Debug)]
enum Placement {
    Window { extent: u32, resample: Resample },
    Embed { extent: u32, background: Background, resample: Resample },
    Circular { extent: u32, resample: Resample },
    Scale { base: u32, background: Background, resample: Resample },
    Rotate { extent: u32, resample: Resample },
    Frames { extent: u32, resample: Resample },
}

#[derive(Clone, Debug)]
enum Kind {
    /// The resized image; points are windows of it.
    Window(Rgb8),
    /// Squares pasted centred (plus offset) on a canvas: one for all points, or
    /// one per point (scale).
    Embed(Vec<Rgb8>, Background),
    /// The centre crop; points wrap it around.
    Circular(Rgb8),
    /// The resized image; points are rotated windows of it.
    Rotate(Rgb8),
    /// One centre crop per frame; point `k` is frame `k`.
    Frames(Vec<Rgb8>),
}

/// An image prepared for one family and model input side, ready to render any point.
#[derive(Clone, Debug)]
pub struct Prepared {
    side: u32,
    kind: Kind,
}

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

impl Prepared {
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
        match &self.kind {
            Kind::Window(img) => {
                let x0 = ((img.width as usize - side) / 2) as i64 + p.dx as i64;
                let y0 = ((img.height as usize - side) / 2) as i64 + p.dy as i64;
                paste(img, x0, y0, side, [0.0; 3], &px, out);
            }
            Kind::Embed(squares, bg) => {
                let img = if squares.len() == 1 { &squares[0] } else { &squares[p.index as usize] };
                let e = img.width as i64;
                // Image pixel shown at canvas (0, 0): minus the canvas position of its corner.
                let x0 = -((side as i64 - e).div_euclid(2) + p.dx as i64);
                let y0 = -((side as i64 - e).div_euclid(2) + p.dy as i64);
                match bg {
                    Background::Black => paste(img, x0, y0, side, [px(BLACK as f32, 0), px(BLACK as f32, 1), px(BLACK as f32, 2)], &px, out),
                    Background::Mean => paste(img, x0, y0, side, [0.0; 3], &px, out),
                    Background::Inpaint => {
                        // Paste in pixel units on black, inpaint, then normalise.
                        let ident = |v: f32, _c: usize| v;
                        paste(img, x0, y0, side, [BLACK as f32; 3], &ident, out);
                        let (w, h) = (img.width as i64, img.height as i64);
                        let mut known: Vec<bool> = (0..side * side)
                            .map(|i| {
                                let (sx, sy) = (x0 + (i % side) as i64, y0 + (i / side) as i64);
                                sx >= 0 && sy >= 0 && sx < w && sy < h
                            })
                            .collect();
                        inpaint(out, &mut known, side);
                        let plane = side * side;
                        for c in 0..3 {
                            out[c * plane..(c + 1) * plane].iter_mut().for_each(|v| *v = px(*v, c));
                        }
                    }
                }
            }
            Kind::Frames(frames) => paste(&frames[p.index as usize], 0, 0, side, [0.0; 3], &px, out),
            Kind::Circular(img) => {
                let plane = side * side;
                for y in 0..side {
                    let sy = (y as i64 + p.dy as i64).rem_euclid(side as i64) as usize;
                    for x in 0..side {
                        let sx = (x as i64 + p.dx as i64).rem_euclid(side as i64) as usize;
                        let i = (sy * side + sx) * 3;
                        for c in 0..3 {
                            out[c * plane + y * side + x] = px(img.data[i + c] as f32, c);
                        }
                    }
                }
            }
            Kind::Rotate(img) => {
                let plane = side * side;
                let (sin, cos) = (p.angle as f64).to_radians().sin_cos();
                let (sin, cos) = (sin as f32, cos as f32);
                let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
                let half = side as f32 / 2.0;
                let (w, h) = (img.width as i64, img.height as i64);
                let at = |x: i64, y: i64, c: usize| -> f32 {
                    if x < 0 || y < 0 || x >= w || y >= h {
                        BLACK as f32
                    } else {
                        img.data[((y * w + x) * 3) as usize + c] as f32
                    }
                };
                for y in 0..side {
                    let v = y as f32 + 0.5 - half;
                    for x in 0..side {
                        let u = x as f32 + 0.5 - half;
                        // Source position (pixel centres at +0.5) of the rotated window.
                        // (y points down, so this turns the content counter-clockwise on screen).
                        let sx = cos * u - sin * v + cx - 0.5;
                        let sy = sin * u + cos * v + cy - 0.5;
                        let (fx, fy) = (sx.floor(), sy.floor());
                        let (ax, ay) = (sx - fx, sy - fy);
                        let (ix, iy) = (fx as i64, fy as i64);
                        for c in 0..3 {
                            let top = at(ix, iy, c) * (1.0 - ax) + at(ix + 1, iy, c) * ax;
                            let bot = at(ix, iy + 1, c) * (1.0 - ax) + at(ix + 1, iy + 1, c) * ax;
                            out[c * plane + y * side + x] = px(top * (1.0 - ay) + bot * ay, c);
                        }
                    }
                }
            }
        }
    }
}

/// Writes the `side` x `side` view of `img` whose top-left is image pixel
/// `(x0, y0)` (may lie outside), with `bg` (already normalised) where it does.
fn paste(img: &Rgb8, x0: i64, y0: i64, side: usize, bg: [f32; 3], px: &dyn Fn(f32, usize) -> f32, out: &mut [f32]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Filter;

    fn numbered(w: u32, h: u32) -> Rgb8 {
        let mut img = Rgb8::new(w, h);
        for y in 0..h {
            for x in 0..w {
                img.set_pixel(x, y, [x as u8, y as u8, 200]);
            }
        }
        img
    }

    const NEAREST: Resample = Resample { filter: Filter::Nearest, antialias: false };
    const ID: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };

    #[test]
    fn crop_grid_is_row_major_with_centre_reference() {
        let f = Family::Crop { max_shift: 2, step: 2, resize: None, resample: Resample::default() };
        let pts = f.points();
        assert_eq!(pts.len(), 9);
        assert_eq!((pts[0].dx, pts[0].dy), (-2, -2));
        assert_eq!((pts[1].dx, pts[1].dy), (0, -2));
        assert_eq!((pts[3].dx, pts[3].dy), (-2, 0));
        assert_eq!(f.reference(), 4);
        // 3x3 grid: 6 horizontal + 6 vertical neighbour pairs.
        let pairs = f.pairs();
        assert_eq!(pairs.len(), 12);
        assert!(pairs.contains(&(0, 1)) && pairs.contains(&(0, 3)) && pairs.contains(&(7, 8)));
        assert!(!pairs.contains(&(2, 3)), "row ends are not neighbours");
    }

    #[test]
    fn crop_places_pixels_where_the_spec_says() {
        // A 40x40 image, resize 40 (no-op), input 32: centred window at (4, 4).
        let img = numbered(40, 40);
        let f = Family::Crop { max_shift: 3, step: 1, resize: Some(40), resample: NEAREST };
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, 3, -2);
        let out = prep.render(p);
        assert_eq!(out.pixel(0, 0), [7, 2, 200]);
        assert_eq!(out.pixel(31, 31), [38, 33, 200]);
        let mut t = vec![0f32; 3 * 32 * 32];
        prep.write_chw(p, &ID, &mut t);
        assert_eq!(t[0], 7.0);
        assert_eq!(t[32 * 32], 2.0);
        assert_eq!(t[2 * 32 * 32 + 5], 200.0);
        assert_eq!(t[31 * 32 + 31], 38.0);
    }

    #[test]
    fn embed_pastes_on_black_at_the_offset() {
        // 10x10 image embedded (size 10) in a 32 canvas: centred corner at 11.
        let img = numbered(10, 10);
        let f = Family::Embed { size: 10, max_shift: 4, step: 2, background: Background::Black, resample: NEAREST };
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, -4, 2);
        let out = prep.render(p);
        assert_eq!(out.pixel(7, 13), [0, 0, 200]);
        assert_eq!(out.pixel(16, 22), [9, 9, 200]);
        assert_eq!(out.pixel(6, 13), [0, 0, 0]);
        assert_eq!(out.pixel(17, 13), [0, 0, 0]);
        let norm = Normalize { mean: [127.0; 3], std: [128.0; 3] };
        let mut t = vec![0f32; 3 * 32 * 32];
        prep.write_chw(p, &norm, &mut t);
        // Every tensor value equals the rendered image, normalised.
        for y in 0..32u32 {
            for x in 0..32u32 {
                let px = out.pixel(x, y);
                for c in 0..3 {
                    let v = t[c * 1024 + (y * 32 + x) as usize];
                    assert_eq!(v, (px[c] as f32 - 127.0) * (1.0 / 128.0));
                }
            }
        }
    }

    #[test]
    fn diagonal_pairs_are_consecutive_steps() {
        let f: Family = toml::from_str("kind = \"diagonal\"\nsteps = 3").unwrap();
        let p = f.points();
        assert_eq!(p.iter().map(|g| (g.dx, g.dy)).collect::<Vec<_>>(), vec![(0, 0), (1, 1), (2, 2), (3, 3)]);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(f.reference(), 0);
    }

    #[test]
    fn grids_that_do_not_fit_are_refused_naming_the_field() {
        let f = Family::Crop { max_shift: 17, step: 1, resize: None, resample: Resample::default() };
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "max_shift");
        let f = Family::Crop { max_shift: 16, step: 1, resize: None, resample: Resample::default() };
        assert!(f.validate(Some(224)).is_ok());
        let f = Family::Crop { max_shift: 3, step: 2, resize: None, resample: Resample::default() };
        assert_eq!(f.validate(None).unwrap_err().0, "step");
        let f = Family::Embed { size: 300, max_shift: 0, step: 1, background: Background::Black, resample: NEAREST };
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "size");
    }

    #[test]
    fn rendering_is_bit_identical_across_runs() {
        let img = numbered(123, 77);
        let f = Family::Crop { max_shift: 4, step: 1, resize: None, resample: Resample::default() };
        let a = f.prepare(&img, 64).unwrap();
        let b = f.prepare(&img, 64).unwrap();
        for p in f.points() {
            let (mut ta, mut tb) = (vec![0f32; 3 * 64 * 64], vec![0f32; 3 * 64 * 64]);
            a.write_chw(p, &ID, &mut ta);
            b.write_chw(p, &ID, &mut tb);
            assert!(ta.iter().zip(&tb).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn circular_shift_wraps_around() {
        // Input 8, resize 8 (no-op): the centre crop is the image itself.
        let img = numbered(8, 8);
        let f = Family::Circular { max_shift: 2, step: 1, resize: Some(8), resample: NEAREST };
        let prep = f.prepare(&img, 8).unwrap();
        let out = prep.render(GridPoint::offset(0, 2, -1));
        assert_eq!(out.pixel(0, 0), [2, 7, 200]);
        assert_eq!(out.pixel(6, 1), [0, 0, 200], "x wraps from 8 to 0, y from -1+1 = 0");
        assert_eq!(f.points().len(), 25);
        assert_eq!(f.reference(), 12);
    }

    #[test]
    fn scale_points_resize_and_centre() {
        let f: Family = toml::from_str("kind = \"scale\"\nfrom = 0.5\nto = 1.5\nstep = 0.25").unwrap();
        let pts = f.points();
        assert_eq!(pts.iter().map(|p| p.scale).collect::<Vec<_>>(), vec![0.5, 0.75, 1.0, 1.25, 1.5]);
        assert_eq!(f.reference(), 2);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        let mut img = Rgb8::new(40, 40);
        img.data.iter_mut().for_each(|v| *v = 100);
        let prep = f.prepare(&img, 16).unwrap();
        // scale 0.5 of base 16: an 8x8 square centred at 4..12, black around.
        let half = prep.render(pts[0]);
        assert_eq!(half.pixel(4, 4), [100; 3]);
        assert_eq!(half.pixel(11, 11), [100; 3]);
        assert_eq!(half.pixel(3, 4), [0; 3]);
        assert_eq!(half.pixel(12, 11), [0; 3]);
        // scale 1.5: 24 px, larger than the canvas: covers it all.
        assert!(prep.render(pts[4]).data.iter().all(|&v| v == 100));
    }

    #[test]
    fn mean_background_is_zero_after_normalising() {
        let img = numbered(10, 10);
        let f = Family::Embed { size: 10, max_shift: 0, step: 1, background: Background::Mean, resample: NEAREST };
        let prep = f.prepare(&img, 16).unwrap();
        let norm = Normalize { mean: [120.0, 110.0, 100.0], std: [50.0; 3] };
        let mut t = vec![1f32; 3 * 256];
        prep.write_chw(GridPoint::offset(0, 0, 0), &norm, &mut t);
        assert_eq!((t[0], t[256], t[512]), (0.0, 0.0, 0.0));
        assert_eq!(t[3 * 16 + 3], (0.0 - 120.0) * (1.0 / 50.0), "image pixel (0,0) at canvas (3,3)");
    }

    #[test]
    fn rotation_by_zero_is_the_centre_crop_and_by_90_turns_it() {
        let img = numbered(12, 12);
        let crop = Family::Crop { max_shift: 0, step: 1, resize: Some(12), resample: NEAREST };
        let rot = |a: f32| Family::Rotate { from: a, to: a, step: 1.0, resize: Some(12), resample: NEAREST };
        let c = crop.prepare(&img, 8).unwrap().render(crop.points()[0]);
        let r0 = rot(0.0);
        assert_eq!(r0.prepare(&img, 8).unwrap().render(r0.points()[0]), c);
        let r90 = rot(90.0);
        let t = r90.prepare(&img, 8).unwrap().render(r90.points()[0]);
        // Counter-clockwise by 90 degrees: output (x, y) shows input (7 - y, x) of the crop.
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(t.pixel(x, y), c.pixel(7 - y, x), "({x},{y})");
            }
        }
    }

    #[test]
    fn one_dimensional_families_validate_their_ranges() {
        let f: Family = toml::from_str("kind = \"rotate\"\nfrom = 5.0\nto = -5.0").unwrap();
        assert_eq!(f.validate(Some(32)).unwrap_err().0, "to");
        let f: Family = toml::from_str("kind = \"scale\"\nstep = 0.0").unwrap();
        assert_eq!(f.validate(Some(32)).unwrap_err().0, "step");
        let f: Family = toml::from_str("kind = \"rotate\"").unwrap();
        assert_eq!(f.points().len(), 31, "ImageNet-P: -15..15, 31 frames");
        assert_eq!(f.points()[f.reference()].angle, 0.0);
        let f: Family = toml::from_str("kind = \"scale\"").unwrap();
        assert_eq!(f.points().len(), 31, "ImageNet-P: 0.40..1.15 step 0.025");
    }

    #[test]
    fn random_pairs_replay_per_image_and_stay_inside() {
        let f: Family = toml::from_str("kind = \"random_pairs\"\npairs = 3\nseed = 11").unwrap();
        assert_eq!(f.points().len(), 7);
        assert_eq!(f.pairs(), vec![(1, 2), (3, 4), (5, 6)]);
        assert_eq!(f.reference(), 0);
        let a = f.image_points(5, 32);
        assert_eq!(a, f.image_points(5, 32), "same image, same draws");
        assert_ne!(a, f.image_points(6, 32), "other image, other draws");
        assert_eq!((a[0].dx, a[0].dy), (0, 0), "point 0 is the centre crop");
        // Room 32 (resize 64, input 32): offsets from the corner 0..=32, centred at 16.
        for i in 0..500 {
            for p in f.image_points(i, 32) {
                assert!((-16..=16).contains(&p.dx) && (-16..=16).contains(&p.dy));
            }
        }
        let img = Rgb8::new(80, 64);
        let prep = f.prepare(&img, 32).unwrap();
        for p in f.image_points(3, 32) {
            prep.render(p);
        }
    }

    #[test]
    fn inpainting_by_hand() {
        // 3x3 canvas, only the centre known (value 8): one pass fills all eight
        // neighbours with 8 (a weighted mean of one known pixel).
        let mut canvas = vec![0f32; 27];
        let mut known = vec![false; 9];
        for c in 0..3 {
            canvas[c * 9 + 4] = 8.0;
        }
        known[4] = true;
        // Stop rule: at most 200 unfilled already holds, so nothing happens.
        let mut c2 = canvas.clone();
        let mut k2 = known.clone();
        inpaint(&mut c2, &mut k2, 3);
        assert_eq!(k2.iter().filter(|k| **k).count(), 1);
        // A 20x20 canvas (400 pixels) with a known 2x2 block at the top-left:
        // (0,0)=4, (1,0)=8, (0,1)=12, (1,1)=16. Pixel (2,0) in the first pass
        // sees (1,0) with weight .5*.25 and (1,1) with .25*.25:
        // (8*.125 + 16*.0625) / .1875 = 10.666..
        let side = 20;
        let mut canvas = vec![0f32; 3 * side * side];
        let mut known = vec![false; side * side];
        for (x, y, v) in [(0, 0, 4.0), (1, 0, 8.0), (0, 1, 12.0), (1, 1, 16.0)] {
            known[y * side + x] = true;
            for c in 0..3 {
                canvas[c * side * side + y * side + x] = v;
            }
        }
        inpaint(&mut canvas, &mut known, side);
        assert!((canvas[2] - 32.0 / 3.0).abs() < 1e-5, "{}", canvas[2]);
        assert!(known.iter().filter(|k| !**k).count() <= INPAINT_MAX_UNFILLED);
        // Filled values stay within the range of the known ones.
        assert!(canvas.iter().zip(known.iter().cycle()).all(|(v, k)| !*k || (4.0..=16.0).contains(v)));
        drop((canvas, known));
    }

    #[test]
    fn inpainted_embed_keeps_the_image_and_fills_around_it() {
        let mut img = Rgb8::new(10, 10);
        img.data.iter_mut().for_each(|v| *v = 90);
        let f = Family::Embed { size: 10, max_shift: 0, step: 1, background: Background::Inpaint, resample: NEAREST };
        let out = f.prepare(&img, 32).unwrap().render(GridPoint::offset(0, 0, 0));
        // A constant image inpaints to the same constant wherever it reached.
        assert_eq!(out.pixel(11, 11), [90; 3]);
        assert_eq!(out.pixel(5, 5), [90; 3]);
        let filled = (0..32 * 32).filter(|i| out.data[i * 3] == 90).count();
        assert!(filled >= 32 * 32 - INPAINT_MAX_UNFILLED, "{filled}");
    }

    fn sequence(frames: u32, stride: u32, compare: Compare) -> Family {
        Family::Sequence { path: "s".into(), frames: Some(frames), stride, compare, resize: None, resample: NEAREST, labels: None, limit: None }
    }

    #[test]
    fn sequence_pairs_follow_compare_and_stride() {
        let f = sequence(5, 1, Compare::Previous);
        assert_eq!(f.points().len(), 5);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(f.reference(), 0);
        // ImageNet-P with difficulty 2: frames k and k + 2.
        assert_eq!(sequence(5, 2, Compare::Previous).pairs(), vec![(0, 2), (1, 3), (2, 4)]);
        // Noise sequences: every frame against the first.
        assert_eq!(sequence(4, 1, Compare::First).pairs(), vec![(0, 1), (0, 2), (0, 3)]);
        assert!(sequence(3, 3, Compare::Previous).validate(None).is_err());
        assert!(sequence(1, 1, Compare::Previous).validate(None).is_err());
        assert_eq!(sequence(3, 0, Compare::Previous).validate(None).unwrap_err().0, "stride");
    }

    #[test]
    fn sequence_points_are_centre_crops_of_their_frames() {
        // Three 12x10 frames, each a different constant plus a position code; input 8:
        // resize to short side 8 (nearest) gives 10x8 (rounded), centre crop at x=1.
        let frames: Vec<Rgb8> = (0..3u8)
            .map(|k| {
                let mut img = numbered(12, 10);
                img.data.chunks_mut(3).for_each(|p| p[2] = 10 * k);
                img
            })
            .collect();
        let f = sequence(3, 1, Compare::Previous);
        let prep = f.prepare_item(&frames, 8).unwrap();
        for k in 0..3u32 {
            let out = prep.render(GridPoint::offset(k as usize, 0, 0));
            assert_eq!(out.width, 8);
            assert!(out.data.chunks(3).all(|p| p[2] == 10 * k as u8), "frame {k}");
            let resized = resize_short_side(&frames[k as usize], 8, NEAREST);
            assert_eq!(out, resized.center_square(8).unwrap());
        }
        // Too few frames is the item's error, named.
        let e = f.prepare_item(&frames[..2], 8).unwrap_err();
        assert!(e.contains("2 frames") && e.contains("needs 3"), "{e}");
        // Frames are what `prepare` of a single image cannot give.
        assert!(f.prepare(&frames[0], 8).is_err());
    }
}
