//! Pillow's `Image.resize` for 8-bit RGB, reproduced operation for operation
//! (`libImaging/Resample.c` and, for nearest neighbour, the scaling branch of
//! `libImaging/Geometry.c`), so that a spec can ask for the tensors of
//! torchvision's PIL preprocessing byte for byte.
//!
//! Coefficients are computed in `f64` exactly as Pillow does (window bounds
//! truncated after adding 0.5, weights normalised to sum to one), converted to
//! fixed point with 22 fractional bits (rounded half away from zero), and each
//! pass accumulates integers from a half-unit bias, then shifts and clips to
//! 0..=255. A pass runs only when its side changes. The horizontal pass runs
//! first, except when the height loses more than twice as many pixels as the
//! width: then Pillow 13 (and later) runs the vertical pass first. Earlier Pillow
//! releases always ran the horizontal pass first; the two orders differ by one
//! level on some pixels in that case only (never for an aspect-preserving
//! downscale, where the width loses in proportion).

use super::raster::Rgb8;
use super::settings::Filter;

/// Fractional bits of Pillow's fixed-point weights (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's filters, in `f64` as Pillow evaluates them (`image/settings.rs` keeps its own
/// `f32` ones: the default path's bytes must stay as they were).
fn filter(f: Filter, x: f64) -> f64 {
    let x = x.abs();
    match f {
        Filter::Bilinear => {
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        }
        Filter::Bicubic => {
            const A: f64 = -0.5;
            if x < 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * A
            } else {
                0.0
            }
        }
        Filter::Nearest => unreachable!("nearest neighbour does not use weights"),
    }
}

/// Per output index: the first input index, and the fixed-point weights.
fn coefficients(in_size: u32, out_size: u32, f: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = f.support() as f64 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero; negative values are clipped to 0 anyway.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let w: Vec<f64> = (0..xmax).map(|x| filter(f, (x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let ww: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if ww != 0.0 { k / ww } else { k };
                    let v = k * (1u32 << PRECISION_BITS) as f64;
                    (if k < 0.0 { -0.5 + v } else { 0.5 + v }) as i32
                })
                .collect();
            (xmin as usize, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Accumulates one RGB pixel times a fixed-point weight.
fn add(ss: &mut [i64; 3], px: &[u8], k: i32) {
    for (s, &v) in ss.iter_mut().zip(px) {
        *s += v as i64 * k as i64;
    }
}

/// Writes the clipped sums as one RGB pixel.
fn store(out: &mut [u8], ss: [i64; 3]) {
    for (o, s) in out.iter_mut().zip(ss) {
        *o = clip8(s);
    }
}

fn horizontal(img: &Rgb8, width: u32, f: Filter) -> Rgb8 {
    let coeffs = coefficients(img.width, width, f);
    let (sw, dw) = (img.width as usize, width as usize);
    let mut out = Rgb8::new(width, img.height);
    for y in 0..img.height as usize {
        let row = &img.data[y * sw * 3..(y + 1) * sw * 3];
        for (x, (start, k)) in coeffs.iter().enumerate() {
            let mut ss = [1i64 << (PRECISION_BITS - 1); 3];
            for (j, &kj) in k.iter().enumerate() {
                let p = (start + j) * 3;
                add(&mut ss, &row[p..p + 3], kj);
            }
            let o = (y * dw + x) * 3;
            store(&mut out.data[o..o + 3], ss);
        }
    }
    out
}

fn vertical(img: &Rgb8, height: u32, f: Filter) -> Rgb8 {
    let coeffs = coefficients(img.height, height, f);
    let w = img.width as usize;
    let mut out = Rgb8::new(img.width, height);
    for (y, (start, k)) in coeffs.iter().enumerate() {
        for x in 0..w {
            let mut ss = [1i64 << (PRECISION_BITS - 1); 3];
            for (j, &kj) in k.iter().enumerate() {
                let p = ((start + j) * w + x) * 3;
                add(&mut ss, &img.data[p..p + 3], kj);
            }
            let o = (y * w + x) * 3;
            store(&mut out.data[o..o + 3], ss);
        }
    }
    out
}

/// Source index of each output index under Pillow's nearest-neighbour scaling:
/// a running `f64` position starting at half a step, truncated.
fn nearest_table(in_size: u32, out_size: u32) -> Vec<usize> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = step * 0.5;
    (0..out_size)
        .map(|_| {
            let i = (pos as usize).min(in_size as usize - 1);
            pos += step;
            i
        })
        .collect()
}

fn nearest(img: &Rgb8, width: u32, height: u32) -> Rgb8 {
    let (xs, ys) = (nearest_table(img.width, width), nearest_table(img.height, height));
    let mut out = Rgb8::new(width, height);
    for (y, &sy) in ys.iter().enumerate() {
        for (x, &sx) in xs.iter().enumerate() {
            out.set_pixel(x as u32, y as u32, img.pixel(sx as u32, sy as u32));
        }
    }
    out
}

/// `img.resize((width, height), filter)` as Pillow computes it.
pub(crate) fn resize(img: &Rgb8, width: u32, height: u32, f: Filter) -> Rgb8 {
    if f == Filter::Nearest {
        return nearest(img, width, height);
    }
    let (w0, h0) = (img.width as i64, img.height as i64);
    if width != img.width && height < img.height && h0 - height as i64 > 2 * (w0 - width as i64) {
        // Pillow 13 runs the vertical pass first when the height loses more than
        // twice as many pixels as the width.
        return horizontal(&vertical(img, height, f), width, f);
    }
    let h = if width != img.width { horizontal(img, width, f) } else { img.clone() };
    if height != img.height {
        vertical(&h, height, f)
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_weights_round_half_away_from_zero_and_sum_near_one() {
        // Halving with a triangle filter: support 2 around centres 1.0, 3.0, ...:
        // weights of pixels 0, 1, 2 for output 0 are (.75, .75, .25) / 1.75.
        let c = coefficients(8, 4, Filter::Bilinear);
        assert_eq!(c[0].0, 0);
        let one = 1i64 << PRECISION_BITS;
        let expect = |w: f64| (0.5 + w / 1.75 * one as f64) as i32;
        assert_eq!(c[0].1, vec![expect(0.75), expect(0.75), expect(0.25)]);
        for (_, k) in &c {
            let s: i64 = k.iter().map(|&v| v as i64).sum();
            assert!((s - one).abs() <= k.len() as i64, "{s}");
        }
        // Bicubic has negative lobes, rounded away from zero.
        let c = coefficients(10, 3, Filter::Bicubic);
        assert!(c.iter().any(|(_, k)| k.iter().any(|&v| v < 0)));
    }

    #[test]
    fn each_pass_rounds_to_eight_bits() {
        // A 3x1 -> 2x1 bilinear downscale computed by hand: scale 1.5, support 1.5.
        // Output 0, centre .75: pixels 0, 1 (xmax = int(2.75) = 2), weights
        // 1 - |0 + .5 - .75| / 1.5 = .8333, 1 - |1.5 - .75| / 1.5 = .5 -> .625, .375.
        let img = Rgb8::from_raw(3, 1, vec![10, 10, 10, 201, 201, 201, 50, 50, 50]).unwrap();
        let out = resize(&img, 2, 1, Filter::Bilinear);
        // 10 * .625 + 201 * .375 = 81.625 -> 82 (with the half-unit bias, floor).
        assert_eq!(out.pixel(0, 0), [82; 3]);
        // Width unchanged: no horizontal pass, the vertical pass alone.
        let col = Rgb8::from_raw(1, 3, vec![10, 10, 10, 201, 201, 201, 50, 50, 50]).unwrap();
        assert_eq!(resize(&col, 1, 2, Filter::Bilinear).pixel(0, 0), [82; 3]);
    }

    #[test]
    fn nearest_follows_the_running_position() {
        assert_eq!(nearest_table(4, 2), vec![1, 3]);
        assert_eq!(nearest_table(2, 4), vec![0, 0, 1, 1]);
        assert_eq!(nearest_table(3, 3), vec![0, 1, 2]);
    }
}
