//! `radius`: robust radius by adaptive search. The `(2R + 1)^2` crop offsets
//! of L-infinity norm up to `max_radius` = R, in rings: point 0 is the
//! reference, ring `r` (the `8r` offsets of norm `r`, row-major) follows ring
//! `r - 1`. Each point is paired with the reference. Shards run one ring at a
//! time (the reference with it); the next ring's shard holds only the images
//! whose top-1 has not changed.

use super::kind::{field, Extra, FamilyKind, FieldError, Figures, Shape};
use super::point::GridPoint;
use super::{window, Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Largest `max_radius` (a (2R + 1)^2 grid within [`super::MAX_POINTS`]).
pub const MAX_RADIUS: u32 = 150;

/// Robust radius by adaptive search: per image, the smallest L-infinity
/// shift of the crop window at which the top-1 changes, ring by ring up to
/// `max_radius`; each ring after the first runs only for the images whose
/// top-1 has not changed yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Radius {
    /// Largest ring searched, in pixels.
    #[serde(default = "radius_max")]
    pub max_radius: u32,
    /// Short side after resizing; default: model input side + 2 x `max_radius`.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

fn radius_max() -> u32 {
    8
}

/// The offsets of L-infinity norm `r`, row-major (ring 0: the origin).
fn ring_offsets(r: u32) -> Vec<(i32, i32)> {
    let r = r as i32;
    (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dx, dy))).filter(|&(dx, dy)| dx.abs().max(dy.abs()) == r).collect()
}

/// Point indices of ring `r`: `(2r - 1)^2 .. (2r + 1)^2` (ring 0: the
/// reference alone).
pub fn ring_indices(r: u32) -> std::ops::Range<usize> {
    if r == 0 {
        return 0..1;
    }
    let r = r as usize;
    (2 * r - 1).pow(2)..(2 * r + 1).pow(2)
}

impl FamilyKind for Radius {
    fn name(&self) -> &'static str {
        "radius"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.max_radius == 0 || self.max_radius > MAX_RADIUS {
            return field("max_radius", format!("must lie in 1..={MAX_RADIUS}"));
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        let pts: Vec<GridPoint> = (0..=self.max_radius.min(MAX_RADIUS))
            .flat_map(ring_offsets)
            .enumerate()
            .map(|(i, (dx, dy))| GridPoint::offset(i, dx as f32, dy as f32))
            .collect();
        let pairs = (1..pts.len()).map(|p| (p, 0)).collect();
        Shape::Frames(pts, pairs)
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        let need = super::fit::reach(points);
        window::fits(self.resize.unwrap_or(side + 2 * need), side, need, self.resample, "resize")
            .map_err(|(f, m)| (if f == "max_shift" { "max_radius".into() } else { f }, m))
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, points: &[GridPoint]) -> Result<Prepared, String> {
        let need = super::fit::reach(points);
        window::prepare(frames, side, self.resize.unwrap_or(side + 2 * need), self.resample)
    }

    fn without_extent(&self) -> Option<Family> {
        None
    }

    fn max_ring(&self) -> Option<u32> {
        Some(self.max_radius)
    }

    /// Ring `ring` with the reference before it.
    fn ring_points(&self, points: Vec<GridPoint>, ring: u32) -> Vec<GridPoint> {
        std::iter::once(points[0]).chain(points.get(ring_indices(ring)).unwrap_or_default().iter().copied()).collect()
    }

    fn figures(&self) -> Figures {
        Figures::HEATMAP
    }

    fn extra(&self) -> Extra {
        Extra::Radius(self.max_radius)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_points_come_in_rings_around_the_reference() {
        let f: Family = toml::from_str("kind = \"radius\"\nmax_radius = 2").unwrap();
        let p = f.points();
        assert_eq!(p.len(), 25);
        assert_eq!((p[0].dx, p[0].dy), (0.0, 0.0));
        assert_eq!(ring_offsets(1), vec![(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)]);
        for r in 0..=2u32 {
            for i in ring_indices(r) {
                assert_eq!(p[i].dx.abs().max(p[i].dy.abs()), r as f32, "point {i} is on ring {r}");
                assert_eq!(p[i].index as usize, i);
            }
        }
        assert_eq!(ring_indices(2), 9..25);
        assert_eq!(f.pairs().len(), 24);
        assert_eq!(f.pairs()[0], (1, 0), "each point pairs with the reference, counted on the point");
        assert_eq!(f.reference(), 0);
        assert_eq!((f.first_ring(), f.points_per_image(1), f.points_per_image(2)), (Some(1), 9, 17));
        assert_eq!(f.last_ring(), 2);
        let s = f.shard_points(0, 32, 2);
        assert_eq!(s.len(), 17);
        assert_eq!((s[0].index, s[1].index), (0, 9));
        let f: Family = toml::from_str("kind = \"radius\"").unwrap();
        assert_eq!(f.points().len(), 17 * 17, "default max_radius 8");
        assert!(f.validate(Some(224)).is_ok(), "the default resize fits ring 8");
        let f: Family = toml::from_str("kind = \"radius\"\nmax_radius = 0").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "max_radius");
    }
}
