//! `scale`: the image resized to a square of side `round(s * base)` (base
//! default S), centred on the canvas (cropped when larger), for `s` from
//! `from` to `to` in steps of `step` (ImageNet-P: 0.40..1.15 step 0.025).
//! Consecutive scales are neighbours; the reference is the scale nearest 1.

use super::canvas::Canvas;
use super::kind::{field, Axis, FamilyKind, FieldError, Figures, Shape};
use super::point::{Background, GridPoint};
use super::{window, Family, Prepared};
use crate::image::{resize, resize_short_side, Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// The image at a sweep of scales, centred on a canvas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// First scale factor.
    #[serde(default = "scale_from")]
    pub from: f32,
    /// Last scale factor (inclusive).
    #[serde(default = "scale_to")]
    pub to: f32,
    /// Scale step.
    #[serde(default = "scale_step")]
    pub step: f32,
    /// Side that scale 1 maps to; default: model input side.
    #[serde(default)]
    pub base: Option<u32>,
    /// Canvas background where the image does not cover it.
    #[serde(default)]
    pub background: Background,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
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

/// One square per point: the image resized so its short side is
/// `round(scale * base)`, centre-cropped to a square (resized to one when the
/// crop cannot be taken).
fn squares(points: &[GridPoint], img: &Rgb8, base: u32, resample: Resample) -> Vec<Rgb8> {
    points
        .iter()
        .map(|p| {
            let n = ((p.scale as f64 * base as f64).round() as u32).max(1);
            let r = resize_short_side(img, n, resample);
            r.center_square(n).unwrap_or_else(|| resize(&r, n, n, resample))
        })
        .collect()
}

impl FamilyKind for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        super::grid::check_line(self.from, self.to, self.step)?;
        if !(self.from > 0.0 && self.to <= 8.0) {
            return field("from", "scales must lie in (0, 8]");
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        super::grid::line(super::grid::range(self.from, self.to, self.step), |p, s| GridPoint { scale: s, ..p })
    }

    fn fit(&self, side: u32, _points: &[GridPoint]) -> Result<(), FieldError> {
        let base = self.base.unwrap_or(side);
        if base == 0 || base > 8 * side {
            return field("base", format!("must lie in 1..={}", 8 * side));
        }
        Ok(())
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, points: &[GridPoint]) -> Result<Prepared, String> {
        let img = window::single(frames)?;
        Ok(Prepared::new(side, Canvas { images: squares(points, img, self.base.unwrap_or(side), self.resample), background: self.background }))
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Scale(Scale { from: 0.0, to: 0.0, ..self.clone() }))
    }

    fn figures(&self) -> Figures {
        Figures::line(Axis::Scale, "scale")
    }
}

#[cfg(test)]
mod tests {
    use crate::image::Rgb8;
    use crate::transform::Family;

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
}
