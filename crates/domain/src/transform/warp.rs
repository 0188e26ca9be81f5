//! Windows of an image warped about their centre (rotated, sheared), sampled
//! bilinearly with black outside the image: how `rotate` and `shear` draw.

use super::kind::{FieldError, Shape};
use super::point::{GridPoint, BLACK};
use super::prepared::Px;
use crate::image::{resize_short_side, Resample, Rgb8};

/// Where output pixel `(x, y)` of a `side` x `side` warped window samples its
/// source: the offsets of its column and row from the window's centre, as the
/// rendering computes them (a renderer elsewhere must start from these).
pub fn rotation_offsets(side: usize) -> Vec<f32> {
    let half = side as f32 / 2.0;
    (0..side).map(|i| i as f32 + 0.5 - half).collect()
}

/// Writes the `side` x `side` window at the centre of `img` whose output
/// pixel with centre offsets `(u, v)` samples source position `to(u, v, cx,
/// cy)` (pixel centres at +0.5, `(cx, cy)` the image's centre), bilinearly,
/// each of the four pixels read as black outside the image.
pub(super) fn write_warped(img: &Rgb8, side: usize, px: Px<'_>, out: &mut [f32], to: impl Fn(f32, f32, f32, f32) -> (f32, f32)) {
    let plane = side * side;
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    let offsets = rotation_offsets(side);
    let (w, h) = (img.width as i64, img.height as i64);
    let at = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            BLACK as f32
        } else {
            img.data[((y * w + x) * 3) as usize + c] as f32
        }
    };
    for y in 0..side {
        let v = offsets[y];
        for x in 0..side {
            let (sx, sy) = to(offsets[x], v, cx, cy);
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

/// A line of angles `from..=to` in steps of `step`, each point's `angle`.
pub(super) fn angles(from: f32, to: f32, step: f32) -> Shape {
    super::grid::line(super::grid::range(from, to, step), |p, a| GridPoint { angle: a, ..p })
}

/// Whether the image resized so its short side is `resize` (default: the
/// input side + 32) covers the window a warp turns or shears.
pub(super) fn fits(resize: Option<u32>, side: u32, resample: Resample) -> Result<(), FieldError> {
    super::window::fits(resize.unwrap_or(side + 32), side, 0, resample, "resize")
}

/// The item's image resized so its short side is `resize` (default: the
/// input side + 32), the windows of a warp taken about its centre.
pub(super) fn resized(frames: &[Rgb8], side: u32, resize: Option<u32>, resample: Resample) -> Result<Rgb8, String> {
    Ok(resize_short_side(super::window::single(frames)?, resize.unwrap_or(side + 32), resample))
}
