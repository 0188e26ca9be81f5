//! `rotate`: the crop window rotated by `angle` degrees (counter-clockwise)
//! about its centre, bilinear sampling, black outside the image (ImageNet-P:
//! -15..15). Consecutive angles are neighbours; the reference is the angle
//! nearest 0.

use super::kind::{field, Axis, FamilyKind, FieldError, Figures, InGraph, Shape};
use super::point::{one_f, GridPoint};
use super::prepared::{Draw, Px, Turn};
use super::warp::write_warped;
use super::{Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// The crop window rotated about its centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// First angle in degrees.
    #[serde(default = "angle_from")]
    pub from: f32,
    /// Last angle in degrees (inclusive).
    #[serde(default = "angle_to")]
    pub to: f32,
    /// Angle step in degrees.
    #[serde(default = "one_f")]
    pub step: f32,
    /// Short side after resizing; default: model input side + 32.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

fn angle_from() -> f32 {
    -15.0
}
fn angle_to() -> f32 {
    15.0
}

/// The sine and cosine of `angle` degrees as the rendering uses them.
fn sin_cos(angle: f32) -> (f32, f32) {
    let (sin, cos) = (angle as f64).to_radians().sin_cos();
    (sin as f32, cos as f32)
}

impl FamilyKind for Rotate {
    fn name(&self) -> &'static str {
        "rotate"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        super::grid::check_line(self.from, self.to, self.step)?;
        if self.from < -360.0 || self.to > 360.0 {
            return field("from", "angles must lie in -360..=360");
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        super::warp::angles(self.from, self.to, self.step)
    }

    fn fit(&self, side: u32, _points: &[GridPoint]) -> Result<(), FieldError> {
        super::warp::fits(self.resize, side, self.resample)
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        Ok(Prepared::new(side, Rotated(super::warp::resized(frames, side, self.resize, self.resample)?)))
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Rotate(Rotate { from: 0.0, to: 0.0, ..self.clone() }))
    }

    fn in_graph(&self, _points: &[GridPoint]) -> Option<InGraph> {
        Some(InGraph::Turns)
    }

    fn figures(&self) -> Figures {
        Figures::line(Axis::Angle, "angle (degrees)")
    }
}

/// The resized image; points are rotated windows at its centre.
#[derive(Debug)]
struct Rotated(Rgb8);

impl Draw for Rotated {
    /// The `side` x `side` window at the centre of the image, rotated by the
    /// point's angle counter-clockwise; black outside the image.
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        let (sin, cos) = sin_cos(p.angle);
        // Source position (pixel centres at +0.5) of the rotated window (y points
        // down, so this turns the content counter-clockwise on screen).
        write_warped(&self.0, side, px, out, |u, v, cx, cy| (cos * u - sin * v + cx - 0.5, sin * u + cos * v + cy - 0.5));
    }

    fn turn(&self, p: GridPoint) -> Option<Turn<'_>> {
        let (sin, cos) = sin_cos(p.angle);
        Some(Turn { image: &self.0, sin, cos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::Crop;

    #[test]
    fn rotation_by_zero_is_the_centre_crop_and_by_90_turns_it() {
        let img = numbered(12, 12);
        let crop = Family::Crop(Crop { max_shift: 0, step: 1.0, resize: Some(12), resample: NEAREST });
        let rot = |a: f32| Family::Rotate(Rotate { from: a, to: a, step: 1.0, resize: Some(12), resample: NEAREST });
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
