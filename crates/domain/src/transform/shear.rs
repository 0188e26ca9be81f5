//! `shear` (ImageNet-P's shear): the crop window sheared horizontally by
//! `angle` degrees about its centre, for angles `from..=to` in steps of
//! `step` (ImageNet-P: -15..15), sampled bilinearly with black outside the
//! image. Output pixel `(u, v)`, its offsets from the window's centre, shows
//! the resized image at `(u + tan(angle) v, v)` from its centre: rows below
//! the centre move left for a positive angle, as torchvision's
//! `affine(img, shear=angle)` moves them. Consecutive angles are neighbours;
//! the reference is the angle nearest 0. Rows record the angle in `angle`.

use super::kind::{field, Axis, FamilyKind, FieldError, Figures, InGraph, Shape};
use super::point::{one_f, GridPoint};
use super::prepared::{Draw, Px};
use super::warp::write_warped;
use super::{Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Largest shear angle in degrees, either way (a steeper shear shows mostly
/// background).
pub const MAX_SHEAR: f32 = 75.0;

/// The crop window sheared horizontally about its centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shear {
    /// First angle in degrees.
    #[serde(default = "shear_from")]
    pub from: f32,
    /// Last angle in degrees (inclusive).
    #[serde(default = "shear_to")]
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

fn shear_from() -> f32 {
    -15.0
}
fn shear_to() -> f32 {
    15.0
}

impl FamilyKind for Shear {
    fn name(&self) -> &'static str {
        "shear"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        super::grid::check_line(self.from, self.to, self.step)?;
        if self.from < -MAX_SHEAR || self.to > MAX_SHEAR {
            return field("from", format!("shear angles must lie in -{MAX_SHEAR}..={MAX_SHEAR}"));
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
        Ok(Prepared::new(side, Sheared(super::warp::resized(frames, side, self.resize, self.resample)?)))
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Shear(Shear { from: 0.0, to: 0.0, ..self.clone() }))
    }

    /// Only the host draws shears.
    fn in_graph(&self, _points: &[GridPoint]) -> Option<InGraph> {
        None
    }

    fn figures(&self) -> Figures {
        Figures::line(Axis::Angle, "shear angle (degrees)")
    }
}

/// The resized image; points are sheared windows at its centre.
#[derive(Debug)]
struct Sheared(Rgb8);

impl Draw for Sheared {
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        let t = (p.angle as f64).to_radians().tan() as f32;
        write_warped(&self.0, side, px, out, |u, v, cx, cy| (u + t * v + cx - 0.5, v + cy - 0.5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, ID, NEAREST};
    use crate::transform::Crop;

    fn shear(from: f32, to: f32, step: f32) -> Family {
        Family::Shear(Shear { from, to, step, resize: Some(12), resample: NEAREST })
    }

    #[test]
    fn shear_angles_form_a_line_around_zero() {
        let f: Family = toml::from_str("kind = \"shear\"").unwrap();
        let pts = f.points();
        assert_eq!(pts.len(), 31, "ImageNet-P: -15..15, 31 frames");
        assert_eq!((pts[0].angle, pts[30].angle), (-15.0, 15.0));
        assert_eq!(pts[f.reference()].angle, 0.0);
        assert!(pts.iter().all(|p| (p.dx, p.dy, p.scale) == (0.0, 0.0, 1.0)));
        assert_eq!(f.pairs().len(), 30);
        assert_eq!(f.pairs()[4], (4, 5), "neighbours are consecutive angles");
        assert_eq!(f.in_graph(), None, "only the host draws shears");
        assert_eq!(f.figures().line, Some((Axis::Angle, "shear angle (degrees)")));
        assert!(f.validate(Some(224)).is_ok());
    }

    #[test]
    fn shear_angles_and_ranges_are_checked() {
        assert_eq!(shear(-80.0, 0.0, 1.0).validate(None).unwrap_err().0, "from");
        assert_eq!(shear(5.0, -5.0, 1.0).validate(None).unwrap_err().0, "to");
        assert_eq!(shear(-5.0, 5.0, 0.0).validate(None).unwrap_err().0, "step");
        let small = Family::Shear(Shear { from: -1.0, to: 1.0, step: 1.0, resize: Some(20), resample: NEAREST });
        assert_eq!(small.validate(Some(32)).unwrap_err().0, "resize");
        assert!(toml::from_str::<Family>("kind = \"shear\"\nangle = 3").is_err(), "unknown fields are refused");
    }

    #[test]
    fn shear_by_zero_is_the_centre_crop() {
        let img = numbered(12, 12);
        let crop = Family::Crop(Crop { max_shift: 0, step: 1.0, resize: Some(12), resample: NEAREST });
        let c = crop.prepare(&img, 8).unwrap().render(crop.points()[0]);
        let s0 = shear(0.0, 0.0, 1.0);
        assert_eq!(s0.prepare(&img, 8).unwrap().render(s0.points()[0]), c);
    }

    /// At 45 degrees each row moves by its offset from the centre: output
    /// pixel (x, y) of an 8 x 8 window of a 12 x 12 image, at offsets
    /// (x - 3.5, y - 3.5) from the window's centre, samples the image at column
    /// x + y - 1.5 and row y + 2 (pixel centres at +0.5, the image's centre at
    /// 6); the numbered image's red channel (its column) and green channel (its
    /// row) give that position back wherever both columns sampled lie inside.
    #[test]
    fn a_shear_moves_each_row_by_its_offset_from_the_centre() {
        let img = numbered(12, 12);
        let f = shear(45.0, 45.0, 1.0);
        let mut t = vec![0f32; 3 * 64];
        f.prepare(&img, 8).unwrap().write_chw(f.points()[0], &ID, &mut t);
        let mut inside = 0;
        for y in 0..8usize {
            for x in 0..8usize {
                let (sx, sy) = (x as f32 + y as f32 - 1.5, y as f32 + 2.0);
                if (0.0..11.0).contains(&sx) {
                    assert_eq!((t[y * 8 + x], t[64 + y * 8 + x], t[128 + y * 8 + x]), (sx, sy, 200.0), "({x}, {y})");
                    inside += 1;
                }
            }
        }
        assert_eq!(inside, 8 * 8 - 3 - 3, "the corners that sample past the left and right edges");
        // Top-left samples columns -2 and -1: past the image's left edge, black.
        assert_eq!((t[0], t[64], t[128]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_longer_shear_line_takes_the_shared_points() {
        let (wide, narrow) = (shear(-4.0, 4.0, 1.0), shear(-2.0, 2.0, 1.0));
        let w = wide.widening_of(&narrow).unwrap();
        assert_eq!(w.reused, vec![None, None, Some(0), Some(1), Some(2), Some(3), None, None, None]);
        // Shared points render the same whatever the line around them.
        let img = numbered(20, 20);
        let (a, b) = (wide.prepare(&img, 8).unwrap(), narrow.prepare(&img, 8).unwrap());
        assert_eq!(a.render(wide.points()[3]).data, b.render(narrow.points()[1]).data);
    }
}
