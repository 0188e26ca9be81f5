//! `diagonal`: the paper's one-pixel diagonal steps, points `(c, c)` for
//! `c = from..=to` (default `0..=steps`; `from = -8, to = 8` centres the line
//! on the reference window, as many scripts do) on top of a `crop` placement
//! (`resize`, as in `crop`) or an `embed` one (`size`, `crop`, `background`,
//! as in `embed`). Consecutive points are neighbours; the reference is `c = 0`.

use super::canvas::{fitted, Canvas};
use super::grid::{divides, steps_in, MAX_POINTS};
use super::kind::{field, Axis, FamilyKind, FieldError, Figures, Shape};
use super::point::{one_f, Background, EmbedCrop, GridPoint};
use super::{window, Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Steps of a `diagonal` that names neither `steps` nor `to`.
pub const DIAGONAL_STEPS: u32 = 8;

/// Which placement `diagonal` shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiagonalBase {
    /// Windows of the resized image.
    #[default]
    Crop,
    /// The image embedded in a black canvas.
    Embed,
}

/// One-pixel diagonal steps `(c, c)`, `c = from..=to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagonal {
    /// Number of steps after `from` (points = steps + 1); default 8. Give
    /// `steps` or `to`, not both.
    #[serde(default)]
    pub steps: Option<u32>,
    /// Offset between consecutive points, in pixels (default 1); fractional
    /// steps (crop base only) translate by sub-pixel interpolation.
    #[serde(default = "one_f")]
    pub step: f32,
    /// First diagonal offset; default 0.
    #[serde(default)]
    pub from: Option<i32>,
    /// Last diagonal offset (inclusive); default `from + steps`.
    #[serde(default)]
    pub to: Option<i32>,
    /// The placement that is shifted.
    #[serde(default)]
    pub base: DiagonalBase,
    /// Short side after resizing (`crop` base); default: model input side + 32.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Side of the embedded image (`embed` base); default: half the model input.
    #[serde(default)]
    pub size: Option<u32>,
    /// Whether the embedded image is centre-cropped to a square (`embed` base).
    #[serde(default)]
    pub crop: EmbedCrop,
    /// Canvas background of the `embed` base.
    #[serde(default)]
    pub background: Background,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

impl Diagonal {
    /// The first offset, step and number of steps: `steps` (default 8) after
    /// `from` (default 0), or as many as reach `to`.
    pub fn line(&self) -> (f64, f32, usize) {
        let from = self.from.unwrap_or(0) as f64;
        let n = match self.to {
            Some(to) => steps_in(to as f64 - from, self.step).max(0) as usize,
            None => self.steps.unwrap_or(DIAGONAL_STEPS) as usize,
        };
        (from, self.step, n)
    }

    /// The field that sets how far the line reaches: `from` when it reaches
    /// further below 0 than `to` (or `steps`) above.
    fn reach_field(&self) -> &'static str {
        let (from, step, n) = self.line();
        let last = from + step as f64 * n as f64;
        match (from.abs() > last.abs(), self.to.is_some()) {
            (true, _) => "from",
            (false, true) => "to",
            (false, false) => "steps",
        }
    }

    /// The checks of the line itself: `steps` or `to`, a positive step that
    /// divides `to - from`, within the limit of points.
    fn check_line(&self) -> Result<(), FieldError> {
        if self.steps.is_some() && self.to.is_some() {
            return field("to", "give `steps` or `to`, not both");
        }
        if self.steps == Some(0) {
            return field("steps", "must be at least 1");
        }
        if !(self.step > 0.0 && self.step.is_finite()) {
            return field("step", "must be a positive number of pixels");
        }
        if self.from.is_some() && self.to.is_none() && self.steps.is_none() {
            return field("from", "give `to` (or `steps`) with `from`: the line runs from `from` to `to`");
        }
        if let Some(to) = self.to {
            let from = self.from.unwrap_or(0);
            if to <= from {
                return field("to", format!("must be larger than from ({from})"));
            }

            if !divides(to as f64 - from as f64, self.step) {
                return field("step", format!("must divide to - from ({})", to as i64 - from as i64));
            }
        }
        // Accuracy and the pairs' reference are measured at offset 0.
        let (first, step, n) = self.line();
        let last = first + step as f64 * n as f64;
        if first > 0.0 || last < 0.0 {
            let name = if first > 0.0 {
                "from"
            } else if self.to.is_some() {
                "to"
            } else {
                "steps"
            };
            return field(name, format!("the line {first}..={last} must contain 0, where the reference (accuracy) point of a 1-D family lies"));
        }
        if self.line().2 >= MAX_POINTS {
            return field(if self.steps.is_some() { "steps" } else { "to" }, format!("exceeds the limit of {MAX_POINTS} points"));
        }
        Ok(())
    }
}

impl FamilyKind for Diagonal {
    fn name(&self) -> &'static str {
        "diagonal"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        self.check_line()?;
        if self.base == DiagonalBase::Embed && self.step.fract() != 0.0 {
            return field("step", "fractional steps need base = \"crop\" (sub-pixel windows of the resized image)");
        }
        match self.base {
            DiagonalBase::Crop if self.size.is_some() => field(
                "size",
                "with base = \"crop\" the short side after resizing is `resize`, as in crop; `size` is the embedded side of base = \"embed\"",
            ),
            DiagonalBase::Crop if self.crop != EmbedCrop::Square => field("crop", "applies to base = \"embed\""),
            DiagonalBase::Embed if self.resize.is_some() => {
                field("resize", "with base = \"embed\" the embedded side is `size`, as in embed; `resize` is for base = \"crop\"")
            }
            _ => Ok(()),
        }
    }

    fn shape(&self) -> Shape {
        let (from, step, n) = self.line();
        Shape::Line(
            (0..=n.min(MAX_POINTS))
                .map(|i| {
                    let c = (from + i as f64 * step as f64) as f32;
                    GridPoint::offset(i, c, c)
                })
                .collect(),
        )
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        let need = super::fit::reach(points);
        match self.base {
            DiagonalBase::Crop => window::fits(self.resize.unwrap_or(side + 32), side, need, self.resample, "resize"),
            DiagonalBase::Embed => super::fit::canvas(self.size.unwrap_or(side / 2), side, need, "size"),
        }
        .map_err(|(f, m)| (if f == "max_shift" { self.reach_field().into() } else { f }, m))
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        match self.base {
            DiagonalBase::Crop => window::prepare(frames, side, self.resize.unwrap_or(side + 32), self.resample),
            DiagonalBase::Embed => {
                let img = fitted(window::single(frames)?, self.size.unwrap_or(side / 2), self.crop, self.resample);
                Ok(Prepared::new(side, Canvas { images: vec![img], background: self.background }))
            }
        }
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Diagonal(Diagonal { steps: None, from: None, to: None, ..self.clone() }))
    }

    fn figures(&self) -> Figures {
        Figures::line(Axis::Dx, "diagonal shift (pixels)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagonal(text: &str) -> Diagonal {
        match toml::from_str::<Family>(&format!("kind = \"diagonal\"\n{text}")).unwrap() {
            Family::Diagonal(d) => d,
            _ => unreachable!(),
        }
    }

    #[test]
    fn diagonal_pairs_are_consecutive_steps() {
        let f: Family = toml::from_str("kind = \"diagonal\"\nsteps = 3").unwrap();
        let p = f.points();
        assert_eq!(p.iter().map(|g| (g.dx, g.dy)).collect::<Vec<_>>(), vec![(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(f.reference(), 0);
        let f: Family = toml::from_str("kind = \"diagonal\"").unwrap();
        assert_eq!(f.points().len(), 9, "default: c = 0..=8");
    }

    #[test]
    fn centred_diagonal_runs_from_minus_k_to_k_with_the_middle_as_reference() {
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = -3\nto = 3").unwrap();
        let p = f.points();
        assert_eq!(p.iter().map(|g| g.dx).collect::<Vec<_>>(), vec![-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert!(p.iter().all(|g| g.dx == g.dy));
        assert_eq!(f.reference(), 3, "the unshifted window");
        assert_eq!(f.pairs().len(), 6);
        // `from` with `steps` counts from `from`.
        assert_eq!(diagonal("from = -2\nsteps = 4").line(), (-2.0, 1.0, 4));
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = -2\nsteps = 4").unwrap();
        assert!(f.validate(Some(32)).is_ok());
        let f: Family = toml::from_str("kind = \"diagonal\"\nsteps = 4\nto = 4").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "to");
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = 2\nto = 2").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "to");
    }
}
