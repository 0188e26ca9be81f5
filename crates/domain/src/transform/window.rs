//! Windows of a resized image, centred and moved by a point's offset, at
//! whole pixels or (sub-pixel grids) resampled: how `crop`, `diagonal` on a
//! crop, `random_pairs`, `layers` and `radius` draw their points.

use super::kind::FieldError;
use super::point::GridPoint;
use super::prepared::{paste, Draw, Normalize, Prepared, Px, Shift, View};
use super::subpixel::sample_plane;
use crate::image::{centre_offset, resize_short_side, Compat, Resample, Rgb8};

/// The image resized so its short side is the window extent; points are
/// windows of it, centred as its compat says.
#[derive(Debug)]
pub(super) struct Window {
    img: Rgb8,
    compat: Compat,
}

/// Prepares `frames` (one image) for windows at input `side` from an image
/// resized so its short side is `extent`.
pub(super) fn prepare(frames: &[Rgb8], side: u32, extent: u32, resample: Resample) -> Result<Prepared, String> {
    let img = single(frames)?;
    Ok(Prepared::new(side, Window { img: resize_short_side(img, extent, resample), compat: resample.compat }))
}

/// The one image of an item (a family that is not a sequence's).
pub(super) fn single(frames: &[Rgb8]) -> Result<&Rgb8, String> {
    match frames {
        [img] => Ok(img),
        _ => Err(format!("expected one image, got {}", frames.len())),
    }
}

/// The fit of a window family: the window `extent` (field `field`, default
/// `default`) leaves room for shifts up to `need` on each side.
pub(super) fn fits(extent: u32, side: u32, need: u32, resample: Resample, field: &str) -> Result<(), FieldError> {
    super::fit::window(extent, side, need, resample.compat, field)
}

impl Window {
    /// Top-left of the centred window.
    fn centre(&self, side: u32) -> (u32, u32) {
        (centre_offset(self.img.width - side, self.compat), centre_offset(self.img.height - side, self.compat))
    }
}

impl Draw for Window {
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        let (cx, cy) = self.centre(side as u32);
        if p.is_subpixel() {
            return write_resampled(&self.img, cx as f64 + p.dx as f64, cy as f64 + p.dy as f64, side, px, out);
        }
        let (x0, y0) = (cx as i64 + p.dx as i64, cy as i64 + p.dy as i64);
        paste(&self.img, x0, y0, side, [0.0; 3], px, out);
    }

    fn view(&self, p: GridPoint, side: u32, _norm: &Normalize) -> Option<View<'_>> {
        if p.is_subpixel() {
            return None;
        }
        let (cx, cy) = self.centre(side);
        Some(View { image: &self.img, x0: cx as i64 + p.dx as i64, y0: cy as i64 + p.dy as i64, background: [0.0; 3] })
    }

    fn shift(&self, p: GridPoint, side: u32) -> Option<Shift<'_>> {
        let img = &self.img;
        let (cx, cy) = self.centre(side);
        let (fx, wx) = super::padded_taps(cx as f64 + p.dx as f64);
        let (fy, wy) = super::padded_taps(cy as f64 + p.dy as f64);
        let outside = |first: i64, n: u32| first < 0 || first + side as i64 > n as i64;
        if !p.is_subpixel() && (outside(fx, img.width) || outside(fy, img.height)) {
            return None;
        }
        Some(Shift { image: img, first: [fx, fy], weights: [wx, wy] })
    }
}

/// The window of `img` at fractional top-left `(x0, y0)`, per channel, in
/// pixel units, through `px` (normalisation) into the CHW tensor `out`.
fn write_resampled(img: &Rgb8, x0: f64, y0: f64, side: usize, px: Px<'_>, out: &mut [f32]) {
    let plane = side * side;
    let (w, h) = (img.width as usize, img.height as usize);
    for c in 0..3 {
        let get = |x: usize, y: usize| img.data[(y * w + x) * 3 + c] as f32;
        let dst = &mut out[c * plane..(c + 1) * plane];
        sample_plane(&get, w, h, x0, y0, side, dst);
        dst.iter_mut().for_each(|v| *v = px(*v, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_beyond_the_image_repeat_its_edge() {
        // A constant image stays constant at any offset, edges included.
        let img = Rgb8::from_raw(10, 10, vec![77; 300]).unwrap();
        let id = |v: f32, _c: usize| v;
        let mut out = vec![0f32; 3 * 36];
        write_resampled(&img, -0.5, 4.25, 6, &id, &mut out);
        assert!(out.iter().all(|v| (v - 77.0).abs() < 1e-4), "{out:?}");
    }
}
