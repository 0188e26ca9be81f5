//! `layers`: per-layer equivariance. The reference crop window (as `crop`,
//! resized so every shift fits) and its copies moved by each of `shifts`
//! pixels along x, then along y; points are `(0, 0), (s1, 0), (0, s1), (s2,
//! 0), ...`, each paired with the reference. Workers run these with the
//! model's subsampling nodes exposed and record each node's equivariance
//! error (`metrics::equivariance`).

use super::kind::{field, Extra, FamilyKind, FieldError, Figures, Shape};
use super::point::GridPoint;
use super::{window, Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Per-layer equivariance: the reference window and copies shifted by each
/// of `shifts` pixels along x and along y, run with every subsampling
/// node's output exposed (see `metrics::equivariance`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layers {
    /// Shifts in pixels, each applied along x and along y; default
    /// 1, 2, 4, 8, 16, 32 (every cumulative factor of common CNNs).
    #[serde(default = "layer_shifts")]
    pub shifts: Vec<u32>,
    /// Short side after resizing; default: model input side + 2 x the
    /// largest shift.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

/// Shifts of a `layers` family that names none.
pub fn layer_shifts() -> Vec<u32> {
    vec![1, 2, 4, 8, 16, 32]
}

impl FamilyKind for Layers {
    fn name(&self) -> &'static str {
        "layers"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.shifts.is_empty() {
            return field("shifts", "must name at least one shift");
        }
        if let Some(s) = self.shifts.iter().find(|&&s| s == 0 || s > 512) {
            return field("shifts", format!("{s} is not a shift in 1..=512 pixels"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(s) = self.shifts.iter().find(|&&s| !seen.insert(s)) {
            return field("shifts", format!("{s} is named twice"));
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        let mut pts = vec![GridPoint::offset(0, 0.0, 0.0)];
        for &s in &self.shifts {
            pts.push(GridPoint::offset(pts.len(), s as f32, 0.0));
            pts.push(GridPoint::offset(pts.len(), 0.0, s as f32));
        }
        let pairs = (1..pts.len()).map(|p| (0, p)).collect();
        Shape::Frames(pts, pairs)
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        let need = super::fit::reach(points);
        window::fits(self.resize.unwrap_or(side + 2 * need), side, need, self.resample, "resize")
            .map_err(|(f, m)| (if f == "max_shift" { "shifts".into() } else { f }, m))
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, points: &[GridPoint]) -> Result<Prepared, String> {
        let need = super::fit::reach(points);
        window::prepare(frames, side, self.resize.unwrap_or(side + 2 * need), self.resample)
    }

    fn without_extent(&self) -> Option<Family> {
        None
    }

    fn probes(&self) -> bool {
        true
    }

    fn figures(&self) -> Figures {
        Figures::HEATMAP
    }

    fn extra(&self) -> Extra {
        Extra::Layers
    }
}

#[cfg(test)]
mod tests {
    use crate::transform::Family;

    #[test]
    fn layers_points_move_along_each_axis_and_pair_with_the_reference() {
        let f: Family = toml::from_str("kind = \"layers\"\nshifts = [1, 4]").unwrap();
        let p: Vec<(f32, f32)> = f.points().iter().map(|g| (g.dx, g.dy)).collect();
        assert_eq!(p, vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (4.0, 0.0), (0.0, 4.0)]);
        assert_eq!(f.pairs(), vec![(0, 1), (0, 2), (0, 3), (0, 4)]);
        assert_eq!(f.reference(), 0);
        let f: Family = toml::from_str("kind = \"layers\"").unwrap();
        assert_eq!(f.points().len(), 13, "default shifts 1, 2, 4, 8, 16, 32");
        // The default resize fits the largest shift on both sides of the centre.
        assert!(f.validate(Some(224)).is_ok());
        let f: Family = toml::from_str("kind = \"layers\"\nresize = 250").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "shifts");
        for bad in ["shifts = []", "shifts = [0, 1]", "shifts = [2, 2]"] {
            let f: Family = toml::from_str(&format!("kind = \"layers\"\n{bad}")).unwrap();
            assert_eq!(f.validate(None).unwrap_err().0, "shifts", "{bad}");
        }
    }
}
