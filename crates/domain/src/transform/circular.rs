//! `circular`: the centre S x S crop shifted circularly (wrap-around) by
//! `(dx, dy)` over a square grid of offsets: the setting in which
//! shift-equivariant networks can be exactly invariant.

use super::embed::check_whole_grid;
use super::kind::{field, FamilyKind, FieldError, Figures, Shape};
use super::point::{one, GridPoint};
use super::prepared::{paste, Draw, Normalize, Px, View};
use super::{window, Family, Prepared};
use crate::image::{resize_short_side, Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Circular (wrap-around) shifts of the centre crop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circular {
    /// Largest offset in pixels, on each axis.
    pub max_shift: u32,
    /// Grid spacing in pixels; must divide `max_shift`.
    #[serde(default = "one")]
    pub step: u32,
    /// Short side after resizing, before the centre crop; default: input + 32.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

impl FamilyKind for Circular {
    fn name(&self) -> &'static str {
        "circular"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        check_whole_grid(self.max_shift, self.step)
    }

    fn shape(&self) -> Shape {
        Shape::Grid(self.max_shift, self.step.max(1) as f32)
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        window::fits(self.resize.unwrap_or(side + 32), side, 0, self.resample, "resize")?;
        if super::fit::reach(points) >= side {
            return field("max_shift", format!("circular shifts must be smaller than the input ({side})"));
        }
        Ok(())
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        let img = window::single(frames)?;
        let r = resize_short_side(img, self.resize.unwrap_or(side + 32), self.resample);
        Ok(Prepared::new(side, Tiled(tile(&r.center_square_with(side, self.resample.compat).expect("extent covers the input")))))
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Circular(Circular { max_shift: 0, ..self.clone() }))
    }

    fn figures(&self) -> Figures {
        Figures::GRID
    }
}

/// The centre crop, tiled ([`tile`]); points wrap it around.
#[derive(Debug)]
struct Tiled(Rgb8);

/// The centre crop `square` (side x side) with its wrap: a (2 side - 1)-pixel
/// square whose pixel `(x, y)` is the crop's `(x mod side, y mod side)`, so that
/// every circular shift is a plain window of it ([`wrap_origin`]), which a
/// renderer of windows on the model's device draws as it draws any crop.
fn tile(square: &Rgb8) -> Rgb8 {
    let side = square.width as usize;
    let n = (2 * side).saturating_sub(1);
    let mut out = Rgb8::new(n as u32, n as u32);
    for y in 0..n {
        for x in 0..n {
            let (o, i) = ((y * n + x) * 3, ((y % side) * side + x % side) * 3);
            out.data[o..o + 3].copy_from_slice(&square.data[i..i + 3]);
        }
    }
    out
}

/// Top-left, in the tiled crop ([`tile`]), of the window that shows the centre
/// crop shifted with wrap-around by the point's offset.
fn wrap_origin(p: GridPoint, side: usize) -> (i64, i64) {
    ((p.dx as i64).rem_euclid(side as i64), (p.dy as i64).rem_euclid(side as i64))
}

impl Draw for Tiled {
    /// The centre crop shifted with wrap-around by the point's offset: output
    /// pixel `(x, y)` is the crop's `((x + dx) mod side, (y + dy) mod side)`.
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        let (x0, y0) = wrap_origin(p, side);
        paste(&self.0, x0, y0, side, [0.0; 3], px, out);
    }

    fn view(&self, p: GridPoint, side: u32, _norm: &Normalize) -> Option<View<'_>> {
        let (x0, y0) = wrap_origin(p, side as usize);
        Some(View { image: &self.0, x0, y0, background: [0.0; 3] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, NEAREST};

    #[test]
    fn circular_shift_wraps_around() {
        // Input 8, resize 8 (no-op): the centre crop is the image itself.
        let img = numbered(8, 8);
        let f = Family::Circular(Circular { max_shift: 2, step: 1, resize: Some(8), resample: NEAREST });
        let prep = f.prepare(&img, 8).unwrap();
        let out = prep.render(GridPoint::offset(0, 2.0, -1.0));
        assert_eq!(out.pixel(0, 0), [2, 7, 200]);
        assert_eq!(out.pixel(6, 1), [0, 0, 200], "x wraps from 8 to 0, y from -1+1 = 0");
        assert_eq!(f.points().len(), 25);
        assert_eq!(f.reference(), 12);
    }
}
