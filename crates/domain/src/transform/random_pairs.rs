//! `random_pairs` (Zhang's consistency protocol): per image, pairs of crop
//! windows at offsets drawn from U{0..=max_offset}^2 (from the resized
//! image's top-left) with a recorded seed; point 0 is the centre crop (the
//! accuracy reference), and each drawn pair is a pair of neighbours.

use super::kind::{field, FamilyKind, FieldError, Figures, Shape};
use super::point::{one, GridPoint};
use super::{window, Family, Prepared, MAX_POINTS};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Zhang's consistency protocol: pairs of random crop windows per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPairs {
    /// Pairs per image.
    #[serde(default = "one")]
    pub pairs: u32,
    /// Largest offset from the top-left corner; default: resize - input (32).
    #[serde(default)]
    pub max_offset: Option<u32>,
    /// Seed of the draws (each image's draws depend on it and the image index).
    #[serde(default)]
    pub seed: u64,
    /// Short side after resizing; default: model input side + 32.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

impl FamilyKind for RandomPairs {
    fn name(&self) -> &'static str {
        "random_pairs"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.pairs == 0 || self.pairs as usize > MAX_POINTS / 2 {
            return field("pairs", format!("must be between 1 and {}", MAX_POINTS / 2));
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        Shape::Pairs(self.pairs)
    }

    fn reference(&self, _points: &[GridPoint]) -> usize {
        0
    }

    /// The offsets drawn from the family's seed and the image index, so they
    /// are the same on every worker and every attempt, for a given room
    /// (`resize - input`) of the resized image's short side.
    fn image_points(&self, mut points: Vec<GridPoint>, image_index: u32, side: u32) -> Vec<GridPoint> {
        let room = self.resize.unwrap_or(side + 32).saturating_sub(side);
        let max = self.max_offset.unwrap_or(room).min(room) as u64;
        let mut rng = crate::rng::SplitMix(self.seed ^ (image_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let centre = crate::image::centre_offset(room, self.resample.compat) as i32;
        for p in points.iter_mut().skip(1) {
            p.dx = ((rng.next_u64() % (max + 1)) as i32 - centre) as f32;
            p.dy = ((rng.next_u64() % (max + 1)) as i32 - centre) as f32;
        }
        points
    }

    fn fit(&self, side: u32, _points: &[GridPoint]) -> Result<(), FieldError> {
        let extent = self.resize.unwrap_or(side + 32);
        window::fits(extent, side, 0, self.resample, "resize")?;
        if let Some(m) = self.max_offset {
            if m > extent - side {
                return field("max_offset", format!("{m} exceeds the room of the resize ({})", extent - side));
            }
        }
        Ok(())
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        window::prepare(frames, side, self.resize.unwrap_or(side + 32), self.resample)
    }

    fn without_extent(&self) -> Option<Family> {
        None
    }

    fn figures(&self) -> Figures {
        Figures::NONE
    }

    fn normalised_by_default(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_pairs_replay_per_image_and_stay_inside() {
        let f: Family = toml::from_str("kind = \"random_pairs\"\npairs = 3\nseed = 11").unwrap();
        assert_eq!(f.points().len(), 7);
        assert_eq!(f.pairs(), vec![(1, 2), (3, 4), (5, 6)]);
        assert_eq!(f.reference(), 0);
        let a = f.image_points(5, 32);
        assert_eq!(a, f.image_points(5, 32), "same image, same draws");
        assert_ne!(a, f.image_points(6, 32), "other image, other draws");
        assert_eq!((a[0].dx, a[0].dy), (0.0, 0.0), "point 0 is the centre crop");
        // Room 32 (resize 64, input 32): offsets from the corner 0..=32, centred at 16.
        for i in 0..500 {
            for p in f.image_points(i, 32) {
                assert!((-16.0..=16.0).contains(&p.dx) && (-16.0..=16.0).contains(&p.dy));
            }
        }
        let img = Rgb8::new(80, 64);
        let prep = f.prepare(&img, 32).unwrap();
        for p in f.image_points(3, 32) {
            prep.render(p);
        }
    }
}
