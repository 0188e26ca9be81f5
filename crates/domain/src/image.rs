//! RGB rasters and the resampler.
//!
//! Resampling follows the separable scheme of Pillow's `resize`: for each output
//! pixel a window of input pixels is weighted by the filter, stretched by the
//! scale factor when antialiasing a downscale, and normalised to sum to one. By
//! default (`compat = "float"`) it runs in `f32` with a fixed evaluation order
//! and rounds once at the end, so it is a pure function of its inputs (every
//! worker produces the same bytes) and close to Pillow's, but not identical:
//! Pillow rounds to 8 bits between its horizontal and vertical passes, so after a
//! bicubic downscale some 10-20% of pixels differ by 1. `compat = "pillow"`
//! reproduces Pillow's `Image.resize` exactly: the same `f64` coefficients,
//! rounded to 22-bit fixed point, integer accumulation, rounding and clipping to
//! 8 bits after each pass, and the horizontal pass only when the width changes
//! (the vertical pass only when the height does); nearest neighbour through
//! Pillow's 16.16 fixed-point affine sampler.

use serde::{Deserialize, Serialize};

/// An 8-bit RGB image stored row-major, three bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major, RGB.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Rgb8 {
        Rgb8 { width, height, data: vec![0; width as usize * height as usize * 3] }
    }

    /// Wraps raw RGB bytes; `None` when the length does not match.
    pub fn from_raw(width: u32, height: u32, data: Vec<u8>) -> Option<Rgb8> {
        (data.len() == width as usize * height as usize * 3).then_some(Rgb8 { width, height, data })
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at (x, y).
    pub fn set_pixel(&mut self, x: u32, y: u32, p: [u8; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&p);
    }

    /// The `w` x `h` window whose top-left corner is (x, y); `None` if it does not fit.
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Option<Rgb8> {
        if x.checked_add(w)? > self.width || y.checked_add(h)? > self.height {
            return None;
        }
        let mut out = Rgb8::new(w, h);
        let row = w as usize * 3;
        for r in 0..h as usize {
            let s = ((y as usize + r) * self.width as usize + x as usize) * 3;
            out.data[r * row..(r + 1) * row].copy_from_slice(&self.data[s..s + row]);
        }
        Some(out)
    }

    /// The centred `side` x `side` square; `None` if the image is smaller.
    pub fn center_square(&self, side: u32) -> Option<Rgb8> {
        self.center_square_with(side, Compat::Float)
    }

    /// The centred `side` x `side` square, centred as `compat` centres it (see
    /// [`centre_offset`]); `None` if the image is smaller.
    pub fn center_square_with(&self, side: u32, compat: Compat) -> Option<Rgb8> {
        if side > self.width || side > self.height {
            return None;
        }
        self.crop(centre_offset(self.width - side, compat), centre_offset(self.height - side, compat), side, side)
    }
}

/// Where a centred window starts when `room` pixels are left over: `room / 2`
/// rounded down, or, with `compat = "torchvision"`, rounded half to even as
/// torchvision's `CenterCrop` does (`int(round(room / 2.0))` in Python).
pub fn centre_offset(room: u32, compat: Compat) -> u32 {
    let k = room / 2;
    if compat == Compat::Torchvision && room % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

impl Rgb8 {}

/// Which JPEG decoder turns files into pixels (other formats have one decoder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum JpegDecoder {
    /// The `image` crate's (zune-jpeg): fast, pure Rust; 1-11% of pixels differ by
    /// a few levels from libjpeg-turbo's.
    #[default]
    #[serde(rename = "builtin")]
    Builtin,
    /// libjpeg-turbo's (the decoder inside Pillow and so torchvision's PIL
    /// pipeline): accurate integer IDCT, fancy upsampling; built from C source.
    #[serde(rename = "libjpeg-turbo")]
    LibjpegTurbo,
}

impl JpegDecoder {
    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            JpegDecoder::Builtin => "builtin",
            JpegDecoder::LibjpegTurbo => "libjpeg-turbo",
        }
    }
}

/// The interpolation filter of a resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Nearest neighbour (no antialiasing possible).
    Nearest,
    /// Triangle filter, support 1.
    Bilinear,
    /// Keys cubic with a = -0.5 (Pillow's and OpenCV's bicubic), support 2.
    #[default]
    Bicubic,
}

/// How images are resampled: filter plus whether downscales are antialiased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resample {
    /// Interpolation filter.
    #[serde(default)]
    pub filter: Filter,
    /// Stretch the filter by the scale factor when downscaling (Pillow does; plain
    /// OpenCV and TF do not).
    #[serde(default = "yes")]
    pub antialias: bool,
    /// Arithmetic of the resize: jagged's single-rounding `f32` or Pillow's.
    #[serde(default, skip_serializing_if = "Compat::is_float")]
    pub compat: Compat,
}

/// Whose arithmetic a resize follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// `f32` throughout, one rounding at the end.
    #[default]
    Float,
    /// Bit-identical to Pillow's `Image.resize`: fixed-point weights, 8-bit
    /// rounding after each pass. Pillow always antialiases downscales.
    Pillow,
    /// Pillow's arithmetic with torchvision's geometry (`Resize(n)` then
    /// `CenterCrop` on PIL images): the long side of a short-side resize is
    /// truncated (`int(n * long / short)`) rather than rounded, and centred
    /// windows start at `room / 2` rounded half to even.
    Torchvision,
}

impl Compat {
    fn is_float(&self) -> bool {
        *self == Compat::Float
    }
}

fn yes() -> bool {
    true
}

impl Default for Resample {
    fn default() -> Self {
        Resample { filter: Filter::Bicubic, antialias: true, compat: Compat::Float }
    }
}

impl Resample {
    /// Checks that the settings can be honoured; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.compat != Compat::Float && !self.antialias {
            return Err((
                "resample.antialias".into(),
                "must be true with compat = \"pillow\" or \"torchvision\" (Pillow always antialiases downscales)".into(),
            ));
        }
        Ok(())
    }
}

impl Filter {
    pub(crate) fn support(self) -> f32 {
        match self {
            Filter::Nearest => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Filter::Nearest => {
                if x < 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f32 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// For each output index: the first input index and the normalised weights.
struct AxisWeights {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn axis_weights(src: u32, dst: u32, r: Resample) -> AxisWeights {
    let scale = src as f32 / dst as f32;
    let mut start = Vec::with_capacity(dst as usize);
    let mut weights = Vec::with_capacity(dst as usize);
    if r.filter == Filter::Nearest {
        for i in 0..dst {
            let s = (((i as f32 + 0.5) * scale) as usize).min(src as usize - 1);
            start.push(s);
            weights.push(vec![1.0]);
        }
        return AxisWeights { start, weights };
    }
    let stretch = if r.antialias && scale > 1.0 { scale } else { 1.0 };
    let support = r.filter.support() * stretch;
    for i in 0..dst {
        let center = (i as f32 + 0.5) * scale;
        let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
        let hi = ((center + support + 0.5).floor() as usize).min(src as usize);
        let mut w: Vec<f32> = (lo..hi).map(|j| r.filter.weight((j as f32 - center + 0.5) / stretch)).collect();
        let sum: f32 = w.iter().sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v /= sum);
        }
        start.push(lo);
        weights.push(w);
    }
    AxisWeights { start, weights }
}

/// Resizes to exactly `width` x `height`.
pub fn resize(img: &Rgb8, width: u32, height: u32, r: Resample) -> Rgb8 {
    assert!(width > 0 && height > 0 && img.width > 0 && img.height > 0);
    if width == img.width && height == img.height {
        return img.clone();
    }
    if r.compat != Compat::Float {
        return crate::pillow::resize(img, width, height, r.filter);
    }
    let hw = axis_weights(img.width, width, r);
    let vw = axis_weights(img.height, height, r);
    // Horizontal pass into f32, then vertical pass with a single rounding.
    let (sw, sh) = (img.width as usize, img.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    let mut tmp = vec![0f32; dw * sh * 3];
    for y in 0..sh {
        let row = &img.data[y * sw * 3..(y + 1) * sw * 3];
        for x in 0..dw {
            let (s, w) = (hw.start[x], &hw.weights[x]);
            let mut acc = [0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let p = (s + k) * 3;
                acc[0] += row[p] as f32 * wk;
                acc[1] += row[p + 1] as f32 * wk;
                acc[2] += row[p + 2] as f32 * wk;
            }
            tmp[(y * dw + x) * 3..(y * dw + x) * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = Rgb8::new(width, height);
    for y in 0..dh {
        let (s, w) = (vw.start[y], &vw.weights[y]);
        for x in 0..dw {
            let mut acc = [0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let p = ((s + k) * dw + x) * 3;
                acc[0] += tmp[p] * wk;
                acc[1] += tmp[p + 1] * wk;
                acc[2] += tmp[p + 2] * wk;
            }
            let o = (y * dw + x) * 3;
            for (c, a) in acc.iter().enumerate() {
                out.data[o + c] = a.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Resizes so the shorter side becomes `short`, keeping the aspect ratio (the long
/// side is rounded to the nearest pixel; truncated with `compat = "torchvision"`).
pub fn resize_short_side(img: &Rgb8, short: u32, r: Resample) -> Rgb8 {
    let (w, h) = (img.width as u64, img.height as u64);
    if r.compat == Compat::Torchvision {
        // torchvision: `int(requested * long / short)`, a correctly rounded float division.
        let long = ((short as u64 * w.max(h)) as f64 / w.min(h) as f64) as u32;
        let (nw, nh) = if w <= h { (short, long.max(1)) } else { (long.max(1), short) };
        return resize(img, nw, nh, r);
    }
    let (nw, nh) = if w <= h {
        (short as u64, ((h * short as u64 * 2 + w) / (2 * w)).max(1))
    } else {
        (((w * short as u64 * 2 + h) / (2 * h)).max(1), short as u64)
    };
    resize(img, nw as u32, nh as u32, r)
}

/// Resizes so the longer side becomes `long`, keeping the aspect ratio (the short
/// side is rounded to the nearest pixel, at least 1).
pub fn resize_long_side(img: &Rgb8, long: u32, r: Resample) -> Rgb8 {
    let (w, h) = (img.width as u64, img.height as u64);
    let (nw, nh) = if w >= h {
        (long as u64, ((h * long as u64 * 2 + w) / (2 * w)).max(1))
    } else {
        (((w * long as u64 * 2 + h) / (2 * h)).max(1), long as u64)
    };
    resize(img, nw as u32, nh as u32, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Rgb8 {
        let mut img = Rgb8::new(w, h);
        for y in 0..h {
            for x in 0..w {
                img.set_pixel(x, y, [(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]);
            }
        }
        img
    }

    #[test]
    fn crop_takes_the_exact_window() {
        let img = gradient(10, 8);
        let c = img.crop(3, 2, 4, 5).unwrap();
        for y in 0..5 {
            for x in 0..4 {
                assert_eq!(c.pixel(x, y), img.pixel(x + 3, y + 2));
            }
        }
        assert!(img.crop(7, 0, 4, 1).is_none());
    }

    #[test]
    fn constant_image_stays_constant_under_every_filter() {
        let mut img = Rgb8::new(13, 9);
        img.data.iter_mut().for_each(|v| *v = 77);
        for filter in [Filter::Nearest, Filter::Bilinear, Filter::Bicubic] {
            for antialias in [true, false] {
                let r = resize(&img, 5, 21, Resample { filter, antialias, compat: Compat::Float });
                assert!(r.data.iter().all(|&v| v == 77), "{filter:?} {antialias}");
            }
        }
    }

    #[test]
    fn bilinear_halving_averages_pixel_pairs() {
        // Width 4 -> 2 with antialias: triangle stretched to support 2 around
        // centres 1.0 and 3.0; weights for pixels 0..3 are (.25,.75,.75,.25)/2.
        let img = Rgb8::from_raw(4, 1, vec![0, 0, 0, 100, 100, 100, 200, 200, 200, 40, 40, 40]).unwrap();
        let r = resize(&img, 2, 1, Resample { filter: Filter::Bilinear, antialias: true, compat: Compat::Float });
        // out0 = (0*.5 + 100*.5 + 200*.25/.. ) computed by hand:
        // centre 1.0, stretch 2: w(j) = 1 - |j + .5 - 1| / 2 for j = 0,1,2 -> .75,.75,.25
        // normalised: .42857, .42857, .14286 -> 0 + 42.857 + 28.571 = 71.43 -> 71
        assert_eq!(r.pixel(0, 0), [71, 71, 71]);
        // centre 3.0: j = 1,2,3 -> .25,.75,.75 -> (25 + 150 + 30) / 1.75 = 117.14 -> 117
        assert_eq!(r.pixel(1, 0), [117, 117, 117]);
    }

    #[test]
    fn nearest_upscale_repeats_pixels() {
        let img = Rgb8::from_raw(2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let r = resize(&img, 4, 1, Resample { filter: Filter::Nearest, antialias: false, compat: Compat::Float });
        assert_eq!(r.data, vec![1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    }

    #[test]
    fn torchvision_geometry_truncates_the_long_side_and_centres_half_to_even() {
        let img = gradient(451, 300);
        let tv = Resample { compat: Compat::Torchvision, ..Resample::default() };
        // 256 * 451 / 300 = 384.85: torchvision truncates, jagged rounds.
        let a = resize_short_side(&img, 256, tv);
        assert_eq!((a.width, a.height), (384, 256));
        assert_eq!(resize_short_side(&img, 256, Resample::default()).width, 385);
        // Python's round(57.5) = 58, round(58.5) = 58.
        assert_eq!(centre_offset(115, Compat::Torchvision), 58);
        assert_eq!(centre_offset(117, Compat::Torchvision), 58);
        assert_eq!(centre_offset(116, Compat::Torchvision), 58);
        assert_eq!(centre_offset(115, Compat::Float), 57);
        assert_eq!(centre_offset(115, Compat::Pillow), 57);
        let sq = a.center_square_with(224, Compat::Torchvision).unwrap();
        assert_eq!(sq.pixel(0, 0), a.pixel(80, 16));
    }

    #[test]
    fn resize_is_bit_identical_across_runs() {
        let img = gradient(301, 177);
        let a = resize_short_side(&img, 100, Resample::default());
        let b = resize_short_side(&img, 100, Resample::default());
        assert_eq!(a, b);
        assert_eq!((a.width, a.height), (170, 100));
    }
}
