//! Transform families: parameter grids, neighbour relations, and rendering of
//! one grid point straight into a model input tensor.
//!
//! Every family here moves the image content by integer pixel offsets
//! `(dx, dy)` relative to a centred reference placement:
//!
//! - `crop` (Azulay & Weiss "Crop"): the image is resized so its short side is
//!   `resize` (default: input size + 32), and the `S` x `S` window (S = model input
//!   side) is taken at the centre moved by `(dx, dy)`. No blank borders: the grid
//!   must fit inside the resized image.
//! - `embed` (Azulay & Weiss "Black"): the image is resized so its short side is
//!   `size`, centre-cropped to a `size` x `size` square, and pasted on a black
//!   `S` x `S` canvas at the centre moved by `(dx, dy)`.
//! - `diagonal`: the paper's one-pixel diagonal steps: points `(c, c)` for
//!   `c = 0..=steps` on top of a `crop` or `embed` placement; neighbours are
//!   consecutive points.
//!
//! Grids of `crop` and `embed` are the offsets `-max_shift..=max_shift` in steps
//! of `step` on both axes, row-major (dy outer); neighbours are horizontally and
//! vertically adjacent points. The reference point is `(0, 0)`.

use crate::image::{resize_short_side, Resample, Rgb8};
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
    /// A downscaled image pasted on a black canvas at shifted positions.
    Embed {
        /// Side of the embedded square image in pixels.
        size: u32,
        /// Largest offset in pixels, on each axis.
        max_shift: u32,
        /// Grid spacing in pixels; must divide `max_shift`.
        #[serde(default = "one")]
        step: u32,
        /// Canvas background; only `black` here.
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

/// Canvas background for `embed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// Pixel value 0 before normalisation.
    #[default]
    Black,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Position in the family's point list.
    pub index: u32,
    /// Horizontal offset in pixels (positive: content window moves right).
    pub dx: i32,
    /// Vertical offset in pixels (positive: content window moves down).
    pub dy: i32,
}

/// Largest grid a family may have, a guard against specs that would explode.
pub const MAX_POINTS: usize = 100_000;

impl Family {
    /// The family's name as written in specs and result files.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Crop { .. } => "crop",
            Family::Embed { .. } => "embed",
            Family::Diagonal { .. } => "diagonal",
        }
    }

    fn axis(max_shift: u32, step: u32) -> Vec<i32> {
        let (m, s) = (max_shift as i32, step.max(1) as i32);
        (-m..=m).step_by(s as usize).collect()
    }

    /// The grid points in their fixed order.
    pub fn points(&self) -> Vec<GridPoint> {
        let offsets: Vec<(i32, i32)> = match *self {
            Family::Crop { max_shift, step, .. } | Family::Embed { max_shift, step, .. } => {
                let ax = Self::axis(max_shift, step);
                ax.iter().flat_map(|&dy| ax.iter().map(move |&dx| (dx, dy))).collect()
            }
            Family::Diagonal { steps, .. } => (0..=steps as i32).map(|c| (c, c)).collect(),
        };
        offsets
            .into_iter()
            .enumerate()
            .map(|(i, (dx, dy))| GridPoint { index: i as u32, dx, dy })
            .collect()
    }

    /// Neighbour pairs `(a, b)` of point indices; pair metrics take `a` as first.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        match *self {
            Family::Crop { max_shift, step, .. } | Family::Embed { max_shift, step, .. } => {
                let n = Self::axis(max_shift, step).len();
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
            Family::Diagonal { steps, .. } => (0..steps as usize).map(|c| (c, c + 1)).collect(),
        }
    }

    /// Index of the reference (untransformed, centred) point.
    pub fn reference(&self) -> usize {
        self.points().iter().position(|p| p.dx == 0 && p.dy == 0).unwrap_or(0)
    }

    /// Checks the family's own parameters and that its grid fits a model whose input
    /// is `side` x `side`. Errors name the offending field, relative to the family.
    pub fn validate(&self, side: Option<u32>) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        match *self {
            Family::Crop { max_shift, step, .. } | Family::Embed { max_shift, step, .. } => {
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
            Family::Diagonal { steps, .. } => {
                if steps == 0 {
                    return err("steps", "must be at least 1".into());
                }
                if steps as usize >= MAX_POINTS {
                    return err("steps", format!("exceeds the limit of {MAX_POINTS} points"));
                }
            }
        }
        if let Some(side) = side {
            self.placement(side).map(|_| ())?;
        }
        Ok(())
    }

    /// The resolved placement for a model input side, or which field breaks it.
    fn placement(&self, side: u32) -> Result<Placement, (String, String)> {
        let span = |p: &[GridPoint]| {
            let lo = p.iter().map(|g| g.dx.min(g.dy)).min().unwrap_or(0);
            let hi = p.iter().map(|g| g.dx.max(g.dy)).max().unwrap_or(0);
            (lo, hi)
        };
        let (lo, hi) = span(&self.points());
        let need = lo.unsigned_abs().max(hi.unsigned_abs());
        let (kind, extent, field) = match *self {
            Family::Crop { resize, resample, .. } => (Kind::Crop(resample), resize.unwrap_or(side + 32), "resize"),
            Family::Embed { size, resample, .. } => (Kind::Embed(resample), size, "size"),
            Family::Diagonal { base: DiagonalBase::Crop, size, resample, .. } => {
                (Kind::Crop(resample), size.unwrap_or(side + 32), "size")
            }
            Family::Diagonal { base: DiagonalBase::Embed, size, resample, .. } => {
                (Kind::Embed(resample), size.unwrap_or(side / 2), "size")
            }
        };
        if extent == 0 {
            return Err((field.into(), "must be at least 1".into()));
        }
        match kind {
            Kind::Crop(_) => {
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
            }
            Kind::Embed(_) => {
                if extent > side {
                    return Err((field.into(), format!("{extent} exceeds the model input ({side})")));
                }
                let room = (side - extent) / 2;
                if need > room {
                    return Err((
                        "max_shift".into(),
                        format!("shifts up to {need} px do not fit a {extent} px image in a {side} px canvas"),
                    ));
                }
            }
        }
        Ok(Placement { kind, extent, side })
    }

    /// Prepares one decoded image for rendering the grid at model input `side`: the
    /// resize is done once per image and shared by all points.
    pub fn prepare(&self, img: &Rgb8, side: u32) -> Result<Prepared, String> {
        let placement = self.placement(side).map_err(|(f, m)| format!("{f}: {m}"))?;
        let image = match placement.kind {
            Kind::Crop(r) => resize_short_side(img, placement.extent, r),
            Kind::Embed(r) => {
                let small = resize_short_side(img, placement.extent, r);
                small.center_square(placement.extent).expect("short side equals extent")
            }
        };
        Ok(Prepared { placement, image })
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Crop(Resample),
    Embed(Resample),
}

#[derive(Clone, Copy, Debug)]
struct Placement {
    kind: Kind,
    extent: u32,
    side: u32,
}

/// An image resized for one family and model input side, ready to render any point.
#[derive(Clone, Debug)]
pub struct Prepared {
    placement: Placement,
    image: Rgb8,
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

impl Prepared {
    /// The resized (crop) or square (embed) image that points are cut from.
    pub fn image(&self) -> &Rgb8 {
        &self.image
    }

    /// Renders one point as an RGB image of the model input size.
    pub fn render(&self, p: GridPoint) -> Rgb8 {
        let side = self.placement.side;
        let img = &self.image;
        match self.placement.kind {
            Kind::Crop(_) => {
                let x = ((img.width - side) / 2) as i32 + p.dx;
                let y = ((img.height - side) / 2) as i32 + p.dy;
                img.crop(x as u32, y as u32, side, side).expect("validated grid fits")
            }
            Kind::Embed(_) => {
                let mut canvas = Rgb8::new(side, side);
                canvas.data.iter_mut().for_each(|v| *v = BLACK);
                let e = self.placement.extent;
                let x0 = ((side - e) / 2) as i32 + p.dx;
                let y0 = ((side - e) / 2) as i32 + p.dy;
                let row = e as usize * 3;
                for r in 0..e as usize {
                    let d = ((y0 as usize + r) * side as usize + x0 as usize) * 3;
                    canvas.data[d..d + row].copy_from_slice(&img.data[r * row..(r + 1) * row]);
                }
                canvas
            }
        }
    }

    /// Writes one point, normalised, into a CHW `f32` slice of `3 * side * side`.
    pub fn write_chw(&self, p: GridPoint, norm: &Normalize, out: &mut [f32]) {
        let side = self.placement.side as usize;
        assert_eq!(out.len(), 3 * side * side);
        let plane = side * side;
        let scale = [1.0 / norm.std[0], 1.0 / norm.std[1], 1.0 / norm.std[2]];
        let bg = [
            (BLACK as f32 - norm.mean[0]) * scale[0],
            (BLACK as f32 - norm.mean[1]) * scale[1],
            (BLACK as f32 - norm.mean[2]) * scale[2],
        ];
        let img = &self.image;
        let (x0, y0, w, h) = match self.placement.kind {
            Kind::Crop(_) => (
                ((img.width as usize - side) / 2) as i64 + p.dx as i64,
                ((img.height as usize - side) / 2) as i64 + p.dy as i64,
                img.width as usize,
                img.height as usize,
            ),
            Kind::Embed(_) => {
                let e = self.placement.extent as i64;
                // Canvas coordinate of the image's corner, negated: image pixel of canvas (0, 0).
                let cx = (side as i64 - e) / 2 + p.dx as i64;
                let cy = (side as i64 - e) / 2 + p.dy as i64;
                (-cx, -cy, img.width as usize, img.height as usize)
            }
        };
        for y in 0..side {
            let sy = y0 + y as i64;
            for x in 0..side {
                let sx = x0 + x as i64;
                let o = y * side + x;
                if sy >= 0 && (sy as usize) < h && sx >= 0 && (sx as usize) < w {
                    let i = (sy as usize * w + sx as usize) * 3;
                    for c in 0..3 {
                        out[c * plane + o] = (img.data[i + c] as f32 - norm.mean[c]) * scale[c];
                    }
                } else {
                    for c in 0..3 {
                        out[c * plane + o] = bg[c];
                    }
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
        let p = GridPoint { index: 0, dx: 3, dy: -2 };
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
        let p = GridPoint { index: 0, dx: -4, dy: 2 };
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
}
