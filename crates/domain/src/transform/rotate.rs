//! The crop window rotated about its centre, sampled bilinearly.

use super::render::Px;
use super::BLACK;
use crate::image::Rgb8;

/// The sine and cosine of `angle` degrees as the rendering uses them.
pub(super) fn sin_cos(angle: f32) -> (f32, f32) {
    let (sin, cos) = (angle as f64).to_radians().sin_cos();
    (sin as f32, cos as f32)
}

/// Where output pixel `(x, y)` of a `side` x `side` rotated window samples its
/// source: the offsets of its column and row from the window's centre, as the
/// rendering computes them (a renderer elsewhere must start from these).
pub fn rotation_offsets(side: usize) -> Vec<f32> {
    let half = side as f32 / 2.0;
    (0..side).map(|i| i as f32 + 0.5 - half).collect()
}

/// The `side` x `side` window at the centre of `img`, rotated by `angle` degrees
/// counter-clockwise; black outside the image.
pub(super) fn write_rotated(img: &Rgb8, angle: f32, side: usize, px: Px<'_>, out: &mut [f32]) {
    let plane = side * side;
    let (sin, cos) = sin_cos(angle);
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
            let u = offsets[x];
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

#[cfg(test)]
mod tests {
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::Family;

    #[test]
    fn rotation_by_zero_is_the_centre_crop_and_by_90_turns_it() {
        let img = numbered(12, 12);
        let crop = Family::Crop { max_shift: 0, step: 1.0, resize: Some(12), resample: NEAREST };
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
}
