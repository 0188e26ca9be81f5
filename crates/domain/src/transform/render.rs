//! Preparing a decoded image for a family (the resizes, done once per image and
//! shared by all its points) and writing any point, normalised, into a model's
//! CHW input tensor.

use super::placement::Placement;
use super::{crop, embed, rotate, scale, sequence, Background, EmbedCrop, Family, GridPoint, BLACK};
use crate::image::{resize_long_side, resize_short_side, Compat, Rgb8};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub(super) enum Kind {
    /// The resized image; points are windows of it, centred as the compat says.
    Window(Rgb8, Compat),
    /// Images pasted centred (plus offset) on a canvas: one for all points, or
    /// one square per point (scale).
    Embed(Vec<Rgb8>, Background),
    /// The centre crop, tiled ([`crop::tile`]); points wrap it around.
    Circular(Rgb8),
    /// The resized image; points are rotated windows of it.
    Rotate(Rgb8),
    /// One centre crop per frame; point `k` is frame `k`.
    Frames(Vec<Rgb8>),
}

/// An image prepared for one family and model input side, ready to render any point.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(super) side: u32,
    pub(super) kind: Kind,
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

/// A pixel value (0..=255) of channel `c`, normalised.
pub(super) type Px<'a> = &'a dyn Fn(f32, usize) -> f32;

impl Family {
    /// Prepares one item (an image, or a sequence's frames in order) for rendering
    /// the grid at model input `side`.
    pub fn prepare_item(&self, frames: &[Rgb8], side: u32) -> Result<Prepared, String> {
        if let Placement::Frames { extent, resample } = self.placement(side).map_err(|(f, m)| format!("{f}: {m}"))? {
            let crops = sequence::centre_crops(frames, self.frames_needed(), extent, resample, side)?;
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
            Placement::Window { extent, resample } => Kind::Window(resize_short_side(img, extent, resample), resample.compat),
            Placement::Rotate { extent, resample } => Kind::Rotate(resize_short_side(img, extent, resample)),
            Placement::Embed { extent, crop: EmbedCrop::Square, background, resample } => {
                let small = resize_short_side(img, extent, resample);
                Kind::Embed(vec![small.center_square(extent).expect("short side equals extent")], background)
            }
            Placement::Embed { extent, crop: EmbedCrop::None, background, resample } => {
                Kind::Embed(vec![resize_long_side(img, extent, resample)], background)
            }
            Placement::Circular { extent, resample } => {
                let r = resize_short_side(img, extent, resample);
                Kind::Circular(crop::tile(&r.center_square_with(side, resample.compat).expect("extent covers the input")))
            }
            Placement::Scale { base, background, resample } => Kind::Embed(scale::squares(&self.points(), img, base, resample), background),
        };
        Ok(Prepared { side, kind })
    }
}

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
            Kind::Window(img, compat) => crop::write_window(img, *compat, p, side, &px, out),
            Kind::Embed(squares, bg) => {
                let img = if squares.len() == 1 { &squares[0] } else { &squares[p.index as usize] };
                embed::write_embedded(img, *bg, p, side, &px, out);
            }
            Kind::Frames(frames) => paste(&frames[p.index as usize], 0, 0, side, [0.0; 3], &px, out),
            Kind::Circular(img) => crop::write_circular(img, p, side, &px, out),
            Kind::Rotate(img) => rotate::write_rotated(img, p.angle, side, &px, out),
        }
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

impl Prepared {
    /// The point as a plain window of one prepared image (integer offsets, no
    /// interpolation, a uniform background), or `None` where rendering it needs
    /// more (sub-pixel and rotated points, inpainting). A circular shift is a
    /// window of its crop tiled with its own wrap.
    pub fn view(&self, p: GridPoint, norm: &Normalize) -> Option<View<'_>> {
        let side = self.side as i64;
        let black = |c: usize| (BLACK as f32 - norm.mean[c]) * (1.0 / norm.std[c]);
        match &self.kind {
            Kind::Window(img, compat) if !p.is_subpixel() => {
                let cx = crate::image::centre_offset(img.width - self.side, *compat) as i64;
                let cy = crate::image::centre_offset(img.height - self.side, *compat) as i64;
                Some(View { image: img, x0: cx + p.dx as i64, y0: cy + p.dy as i64, background: [0.0; 3] })
            }
            Kind::Embed(squares, bg @ (Background::Black | Background::Mean)) if !p.is_subpixel() => {
                let img = if squares.len() == 1 { &squares[0] } else { squares.get(p.index as usize)? };
                let x0 = -((side - img.width as i64).div_euclid(2) + p.dx as i64);
                let y0 = -((side - img.height as i64).div_euclid(2) + p.dy as i64);
                let background = if *bg == Background::Black { [black(0), black(1), black(2)] } else { [0.0; 3] };
                Some(View { image: img, x0, y0, background })
            }
            Kind::Frames(frames) => Some(View { image: frames.get(p.index as usize)?, x0: 0, y0: 0, background: [0.0; 3] }),
            Kind::Circular(tiled) => {
                let (x0, y0) = crop::wrap_origin(p, self.side as usize);
                Some(View { image: tiled, x0, y0, background: [0.0; 3] })
            }
            _ => None,
        }
    }
}

impl Prepared {
    /// A crop grid's point, sub-pixel or whole, as a resampled window of its
    /// prepared image (the same tensor the host renders), or `None` for other
    /// families and for a whole-pixel window reaching outside the image (which
    /// the host fills with the background rather than the edge).
    pub fn shift(&self, p: GridPoint) -> Option<Shift<'_>> {
        let Kind::Window(img, compat) = &self.kind else { return None };
        let side = self.side as i64;
        let cx = crate::image::centre_offset(img.width - self.side, *compat) as f64;
        let cy = crate::image::centre_offset(img.height - self.side, *compat) as f64;
        let (fx, wx) = super::padded_taps(cx + p.dx as f64);
        let (fy, wy) = super::padded_taps(cy + p.dy as f64);
        let outside = |first: i64, n: u32| first < 0 || first + side > n as i64;
        if !p.is_subpixel() && (outside(fx, img.width) || outside(fy, img.height)) {
            return None;
        }
        Some(Shift { image: img, first: [fx, fy], weights: [wx, wy] })
    }

    /// A rotation grid's point as a turn of its prepared image, or `None` for
    /// other families.
    pub fn turn(&self, p: GridPoint) -> Option<Turn<'_>> {
        match &self.kind {
            Kind::Rotate(img) => {
                let (sin, cos) = rotate::sin_cos(p.angle);
                Some(Turn { image: img, sin, cos })
            }
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Resample;
    use crate::transform::testutil::{numbered, ID};

    #[test]
    fn rendering_is_bit_identical_across_runs() {
        let img = numbered(123, 77);
        let f = Family::Crop { max_shift: 4, step: 1.0, resize: None, resample: Resample::default() };
        let a = f.prepare(&img, 64).unwrap();
        let b = f.prepare(&img, 64).unwrap();
        for p in f.points() {
            let (mut ta, mut tb) = (vec![0f32; 3 * 64 * 64], vec![0f32; 3 * 64 * 64]);
            a.write_chw(p, &ID, &mut ta);
            b.write_chw(p, &ID, &mut tb);
            assert!(ta.iter().zip(&tb).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    /// Every family's points, as views where they are plain windows: the
    /// view's tensor equals the host rendering bit for bit; the rest are named.
    #[test]
    fn plain_windows_are_views_that_render_bit_identically() {
        let img = numbered(90, 61);
        let norm = Normalize { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
        let cases = [
            ("kind = \"crop\"\nmax_shift = 3", true),
            ("kind = \"crop\"\nmax_shift = 1\nstep = 0.5\nresize = 40", false),
            ("kind = \"embed\"\nsize = 20\nmax_shift = 6\nstep = 2", true),
            ("kind = \"embed\"\nsize = 20\nmax_shift = 6\nbackground = \"mean\"\ncrop = \"none\"", true),
            ("kind = \"embed\"\nsize = 20\nmax_shift = 2\nbackground = \"inpaint\"", false),
            ("kind = \"diagonal\"\nfrom = -3\nto = 3", true),
            ("kind = \"scale\"\nfrom = 0.5\nto = 1.0\nstep = 0.25", true),
            ("kind = \"circular\"\nmax_shift = 2", true),
            ("kind = \"circular\"\nmax_shift = 28\nstep = 7", true),
            ("kind = \"rotate\"\nfrom = -5.0\nto = 5.0\nstep = 5.0", false),
        ];
        let side = 32usize;
        for (toml_text, plain) in cases {
            let f: Family = toml::from_str(toml_text).unwrap();
            f.validate(Some(side as u32)).unwrap();
            let prep = f.prepare(&img, side as u32).unwrap();
            let mut viewed = 0;
            for p in f.points() {
                let Some(v) = prep.view(p, &norm) else { continue };
                viewed += 1;
                let (mut host, mut view) = (vec![0f32; 3 * side * side], vec![1f32; 3 * side * side]);
                prep.write_chw(p, &norm, &mut host);
                v.write_chw(side, &norm, &mut view);
                assert!(host.iter().zip(&view).all(|(a, b)| a.to_bits() == b.to_bits()), "{toml_text}: point {p:?}");
            }
            let integer = f.points().iter().filter(|p| !p.is_subpixel()).count();
            if plain {
                assert_eq!(viewed, f.points().len(), "{toml_text}");
            } else {
                assert!(viewed == 0 || viewed == integer, "{toml_text}: only integer points of a sub-pixel grid are views");
            }
        }
    }
}
