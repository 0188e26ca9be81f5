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

//!
//! `raster.rs` holds the image type, `settings.rs` the resampling settings,
//! this file the `f32` resampler and `pillow.rs` Pillow's.

mod pillow;
mod raster;
mod settings;

pub use raster::{centre_offset, Rgb8};
pub use settings::{Compat, Filter, JpegDecoder, Resample};

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
        return pillow::resize(img, width, height, r.filter);
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
