//! `crop` (Azulay & Weiss "Crop"): the image is resized so its short side is
//! `resize` (default: S + 32), and the S x S window is taken at the centre
//! moved by `(dx, dy)` over a square grid of offsets. No blank borders: the
//! grid must fit inside the resized image. Fractional steps translate by
//! sub-pixel interpolation (`subpixel.rs`).

use super::kind::{field, FamilyKind, FieldError, Figures, Shape};
use super::point::{one_f, GridPoint};
use super::{window, Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Shifted windows of a resized image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Largest offset in pixels, on each axis.
    pub max_shift: u32,
    /// Grid spacing in pixels; must divide `max_shift`. Fractional steps
    /// (e.g. 0.25) translate by sub-pixel interpolation (see `subpixel`).
    #[serde(default = "one_f")]
    pub step: f32,
    /// Short side after resizing; default: model input side + 32.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

impl FamilyKind for Crop {
    fn name(&self) -> &'static str {
        "crop"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        if !(self.step > 0.0 && self.step.is_finite()) {
            return field("step", "must be a positive number of pixels");
        }
        super::grid::check_square(self.max_shift, self.step)
    }

    fn shape(&self) -> Shape {
        Shape::Grid(self.max_shift, self.step)
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        window::fits(self.resize.unwrap_or(side + 32), side, super::fit::reach(points), self.resample, "resize")
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        window::prepare(frames, side, self.resize.unwrap_or(side + 32), self.resample)
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Crop(Crop { max_shift: 0, ..self.clone() }))
    }

    fn figures(&self) -> Figures {
        Figures::GRID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, ID, NEAREST};

    #[test]
    fn crop_grid_is_row_major_with_centre_reference() {
        let f = Family::Crop(Crop { max_shift: 2, step: 2.0, resize: None, resample: Resample::default() });
        let pts = f.points();
        assert_eq!(pts.len(), 9);
        assert_eq!((pts[0].dx, pts[0].dy), (-2.0, -2.0));
        assert_eq!((pts[1].dx, pts[1].dy), (0.0, -2.0));
        assert_eq!((pts[3].dx, pts[3].dy), (-2.0, 0.0));
        assert_eq!(f.reference(), 4);
        // 3x3 grid: 6 horizontal + 6 vertical neighbour pairs.
        let pairs = f.pairs();
        assert_eq!(pairs.len(), 12);
        assert!(pairs.contains(&(0, 1)) && pairs.contains(&(0, 3)) && pairs.contains(&(7, 8)));
        assert!(!pairs.contains(&(2, 3)), "row ends are not neighbours");
    }

    #[test]
    fn crop_places_pixels_where_the_spec_says() {
        // A 40x40 image, resize 40 (no-op), input 32: centred window at (4, 4).
        let img = numbered(40, 40);
        let f = Family::Crop(Crop { max_shift: 3, step: 1.0, resize: Some(40), resample: NEAREST });
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, 3.0, -2.0);
        let out = prep.render(p);
        assert_eq!(out.pixel(0, 0), [7, 2, 200]);
        assert_eq!(out.pixel(31, 31), [38, 33, 200]);
        let mut t = vec![0f32; 3 * 32 * 32];
        prep.write_chw(p, &ID, &mut t);
        assert_eq!(t[0], 7.0);
        assert_eq!(t[32 * 32], 2.0);
        assert_eq!(t[2 * 32 * 32 + 5], 200.0);
        assert_eq!(t[31 * 32 + 31], 38.0);
    }

    #[test]
    fn fractional_steps_make_sub_pixel_grids_whose_integer_points_are_plain_windows() {
        let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nstep = 0.25\nresize = 48").unwrap();
        f.validate(Some(32)).unwrap();
        let pts = f.points();
        assert_eq!(pts.len(), 81);
        assert_eq!((pts[0].dx, pts[1].dx, pts[4].dx), (-1.0, -0.75, 0.0));
        assert_eq!(pts[f.reference()].dx, 0.0);
        assert_eq!(f.pairs().len(), 2 * 9 * 8, "neighbours are a quarter pixel apart");
        let bad: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nstep = 0.3").unwrap();
        assert_eq!(bad.validate(None).unwrap_err().0, "step");
        let diag: Family = toml::from_str("kind = \"diagonal\"\nfrom = -1\nto = 1\nstep = 0.5").unwrap();
        assert_eq!(diag.points().iter().map(|p| p.dx).collect::<Vec<_>>(), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(diag.reference(), 2);
        let emb: Family = toml::from_str("kind = \"diagonal\"\nbase = \"embed\"\nstep = 0.5").unwrap();
        assert_eq!(emb.validate(None).unwrap_err().0, "step");

        // A smooth image: integer points equal the integer family's, bit for bit;
        // a half-pixel point lies between its neighbours.
        let mut img = Rgb8::new(48, 48);
        for y in 0..48 {
            for x in 0..48 {
                img.set_pixel(x, y, [(x * 5) as u8, (y * 3) as u8, 100]);
            }
        }
        let int: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nresize = 48").unwrap();
        let (a, b) = (f.prepare(&img, 32).unwrap(), int.prepare(&img, 32).unwrap());
        let render = |prep: &Prepared, dx: f32, dy: f32| {
            let mut t = vec![0f32; 3 * 32 * 32];
            prep.write_chw(GridPoint { index: 0, dx, dy, scale: 1.0, angle: 0.0 }, &ID, &mut t);
            t
        };
        for (dx, dy) in [(-1.0, 0.0), (0.0, 0.0), (1.0, -1.0)] {
            let (x, y) = (render(&a, dx, dy), render(&b, dx, dy));
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        let half = render(&a, 0.5, 0.0);
        let (l, r) = (render(&b, 0.0, 0.0), render(&b, 1.0, 0.0));
        // Away from the image edge the red ramp (5 per pixel) is reproduced at +2.5.
        let i = 16 * 32 + 16;
        assert!((half[i] - (l[i] + r[i]) / 2.0).abs() < 0.01, "{} vs {} {}", half[i], l[i], r[i]);
    }
}
