//! Validation of a family's parameters, and where its points sit for a model
//! input side (which resize, which canvas), or which field makes them not fit.

use super::grid::{divides, range, steps_in};
use super::{Background, Compare, DiagonalBase, EmbedCrop, Family, MAX_POINTS};
use crate::image::Resample;

#[derive(Clone, Copy, Debug)]
pub(super) enum Placement {
    Window { extent: u32, resample: Resample },
    Embed { extent: u32, crop: EmbedCrop, background: Background, resample: Resample },
    Circular { extent: u32, resample: Resample },
    Scale { base: u32, background: Background, resample: Resample },
    Rotate { extent: u32, resample: Resample },
    Frames { extent: u32, resample: Resample },
}

impl Family {
    /// Checks the family's own parameters and that its grid fits a model whose input
    /// is `side` x `side`. Errors name the offending field, relative to the family.
    pub fn validate(&self, side: Option<u32>) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        self.resample().validate()?;
        match *self {
            Family::Crop { max_shift, step, .. } => {
                if !(step > 0.0 && step.is_finite()) {
                    return err("step", "must be a positive number of pixels".into());
                }
                if !divides(max_shift as f64, step) {
                    return err("step", format!("must divide max_shift ({max_shift}) so the grid holds (0, 0)"));
                }
                let n = (2 * steps_in(max_shift as f64, step) + 1) as usize;
                if n.saturating_mul(n) > MAX_POINTS {
                    return err("max_shift", format!("grid of {n}x{n} points exceeds the limit of {MAX_POINTS}"));
                }
            }
            Family::Embed { max_shift, step, .. } | Family::Circular { max_shift, step, .. } => {
                if step == 0 {
                    return err("step", "must be at least 1".into());
                }
                if max_shift % step != 0 {
                    return err("step", format!("must divide max_shift ({max_shift}) so the grid holds (0, 0)"));
                }
                let n = (2 * max_shift / step + 1) as usize;
                if n.saturating_mul(n) > MAX_POINTS {
                    return err("max_shift", format!("grid of {n}x{n} points exceeds the limit of {MAX_POINTS}"));
                }
            }
            Family::RandomPairs { pairs, .. } => {
                if pairs == 0 || pairs as usize > MAX_POINTS / 2 {
                    return err("pairs", format!("must be between 1 and {}", MAX_POINTS / 2));
                }
            }
            Family::Sequence { ref path, frames, stride, compare, limit, .. } => {
                if path.trim().is_empty() {
                    return err("path", "must not be empty".into());
                }
                match frames {
                    Some(n) if n < 2 => return err("frames", "must be at least 2".into()),
                    Some(n) if n as usize > MAX_POINTS => return err("frames", format!("exceeds the limit of {MAX_POINTS} points")),
                    _ => {}
                }
                if stride == 0 {
                    return err("stride", "must be at least 1".into());
                }
                if let (Some(n), Compare::Previous) = (frames, compare) {
                    if stride >= n {
                        return err("stride", format!("must be smaller than frames ({n})"));
                    }
                }
                if limit == Some(0) {
                    return err("limit", "must be at least 1".into());
                }
            }
            Family::Diagonal { steps, from, to, step, base, resize, size, crop, .. } => {
                if steps.is_some() && to.is_some() {
                    return err("to", "give `steps` or `to`, not both".into());
                }
                if steps == Some(0) {
                    return err("steps", "must be at least 1".into());
                }
                if !(step > 0.0 && step.is_finite()) {
                    return err("step", "must be a positive number of pixels".into());
                }
                if let Some(to) = to {
                    let from = from.unwrap_or(0);
                    if to <= from {
                        return err("to", format!("must be larger than from ({from})"));
                    }
                    if !divides(to as f64 - from as f64, step) {
                        return err("step", format!("must divide to - from ({})", to as i64 - from as i64));
                    }
                }
                if self.diagonal_line().2 >= MAX_POINTS {
                    return err(if steps.is_some() { "steps" } else { "to" }, format!("exceeds the limit of {MAX_POINTS} points"));
                }
                if base == DiagonalBase::Embed && step.fract() != 0.0 {
                    return err("step", "fractional steps need base = \"crop\" (sub-pixel windows of the resized image)".into());
                }
                match base {
                    DiagonalBase::Crop if size.is_some() => return err(
                        "size",
                        "with base = \"crop\" the short side after resizing is `resize`, as in crop; `size` is the embedded side of base = \"embed\""
                            .into(),
                    ),
                    DiagonalBase::Crop if crop != EmbedCrop::Square => return err("crop", "applies to base = \"embed\"".into()),
                    DiagonalBase::Embed if resize.is_some() => {
                        return err(
                            "resize",
                            "with base = \"embed\" the embedded side is `size`, as in embed; `resize` is for base = \"crop\"".into(),
                        )
                    }
                    _ => {}
                }
            }
            Family::Radius { max_radius, .. } => {
                if max_radius == 0 || max_radius > super::grid::MAX_RADIUS {
                    return err("max_radius", format!("must lie in 1..={}", super::grid::MAX_RADIUS));
                }
            }
            Family::Layers { ref shifts, .. } => {
                if shifts.is_empty() {
                    return err("shifts", "must name at least one shift".into());
                }
                if let Some(s) = shifts.iter().find(|&&s| s == 0 || s > 512) {
                    return err("shifts", format!("{s} is not a shift in 1..=512 pixels"));
                }
                let mut seen = std::collections::BTreeSet::new();
                if let Some(s) = shifts.iter().find(|&&s| !seen.insert(s)) {
                    return err("shifts", format!("{s} is named twice"));
                }
            }
            Family::Scale { from, to, step, .. } | Family::Rotate { from, to, step, .. } => {
                if !(step > 0.0 && step.is_finite()) {
                    return err("step", "must be a positive number".into());
                }
                if !(from.is_finite() && to.is_finite()) || to < from {
                    return err("to", format!("must be a number no smaller than from ({from})"));
                }
                if range(from, to, step).len() > MAX_POINTS {
                    return err("step", format!("gives more than {MAX_POINTS} points"));
                }
                if matches!(self, Family::Scale { .. }) && !(from > 0.0 && to <= 8.0) {
                    return err("from", "scales must lie in (0, 8]".into());
                }
                if matches!(self, Family::Rotate { .. }) && (from < -360.0 || to > 360.0) {
                    return err("from", "angles must lie in -360..=360".into());
                }
            }
        }
        if let Some(side) = side {
            self.placement(side)?;
        }
        Ok(())
    }

    /// The resolved placement for a model input side, or which field breaks it.
    pub(super) fn placement(&self, side: u32) -> Result<Placement, (String, String)> {
        let pts = self.points();
        let need = pts.iter().map(|g| g.dx.abs().max(g.dy.abs()).ceil() as u32).max().unwrap_or(0);
        let compat = self.resample().compat;
        let window = |extent: u32, field: &str, need: u32| -> Result<(), (String, String)> {
            if extent < side {
                return Err((field.into(), format!("{extent} is smaller than the model input ({side})")));
            }
            // The centred window sits at (extent - side) / 2, rounded as the compat says.
            let room_lo = crate::image::centre_offset(extent - side, compat);
            let room_hi = extent - side - room_lo;
            if need > room_lo.min(room_hi) {
                return Err((
                    "max_shift".into(),
                    format!("shifts up to {need} px need a resize of at least {} for input {side}", side + 2 * need + 1),
                ));
            }
            Ok(())
        };
        let embed = |extent: u32, field: &str| -> Result<(), (String, String)> {
            if extent == 0 {
                return Err((field.into(), "must be at least 1".into()));
            }
            if extent > side {
                return Err((field.into(), format!("{extent} exceeds the model input ({side})")));
            }
            if need > (side - extent) / 2 {
                return Err(("max_shift".into(), format!("shifts up to {need} px do not fit a {extent} px image in a {side} px canvas")));
            }
            Ok(())
        };
        Ok(match *self {
            Family::Crop { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", need)?;
                Placement::Window { extent, resample }
            }
            Family::RandomPairs { resize, max_offset, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                if let Some(m) = max_offset {
                    if m > extent - side {
                        return Err(("max_offset".into(), format!("{m} exceeds the room of the resize ({})", extent - side)));
                    }
                }
                Placement::Window { extent, resample }
            }
            Family::Diagonal { base: DiagonalBase::Crop, resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", need)?;
                Placement::Window { extent, resample }
            }
            Family::Embed { size, crop, background, resample, .. } => {
                embed(size, "size")?;
                Placement::Embed { extent: size, crop, background, resample }
            }
            Family::Diagonal { base: DiagonalBase::Embed, size, crop, background, resample, .. } => {
                let extent = size.unwrap_or(side / 2);
                embed(extent, "size")?;
                Placement::Embed { extent, crop, background, resample }
            }
            Family::Circular { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                if need >= side {
                    return Err(("max_shift".into(), format!("circular shifts must be smaller than the input ({side})")));
                }
                Placement::Circular { extent, resample }
            }
            Family::Scale { base, background, resample, .. } => {
                let base = base.unwrap_or(side);
                if base == 0 || base > 8 * side {
                    return Err(("base".into(), format!("must lie in 1..={}", 8 * side)));
                }
                Placement::Scale { base, background, resample }
            }
            Family::Radius { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 2 * need);
                window(extent, "resize", need).map_err(|(f, m)| (if f == "max_shift" { "max_radius".into() } else { f }, m))?;
                Placement::Window { extent, resample }
            }
            Family::Layers { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 2 * need);
                window(extent, "resize", need).map_err(|(f, m)| (if f == "max_shift" { "shifts".into() } else { f }, m))?;
                Placement::Window { extent, resample }
            }
            Family::Rotate { resize, resample, .. } => {
                let extent = resize.unwrap_or(side + 32);
                window(extent, "resize", 0)?;
                Placement::Rotate { extent, resample }
            }
            Family::Sequence { resize, resample, .. } => {
                let extent = resize.unwrap_or(side);
                window(extent, "resize", 0)?;
                Placement::Frames { extent, resample }
            }
        })
    }

    /// The family's resampling settings.
    pub fn resample(&self) -> Resample {
        match *self {
            Family::Crop { resample, .. }
            | Family::Embed { resample, .. }
            | Family::Diagonal { resample, .. }
            | Family::Circular { resample, .. }
            | Family::Scale { resample, .. }
            | Family::RandomPairs { resample, .. }
            | Family::Sequence { resample, .. }
            | Family::Layers { resample, .. }
            | Family::Radius { resample, .. }
            | Family::Rotate { resample, .. } => resample,
        }
    }

    /// Frames one item needs: the family's `frames` for `sequence`, else 1.
    pub fn frames_needed(&self) -> usize {
        match *self {
            Family::Sequence { frames, .. } => frames.unwrap_or(0) as usize,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::NEAREST;

    #[test]
    fn grids_that_do_not_fit_are_refused_naming_the_field() {
        let f = Family::Crop { max_shift: 17, step: 1.0, resize: None, resample: Resample::default() };
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "max_shift");
        let f = Family::Crop { max_shift: 16, step: 1.0, resize: None, resample: Resample::default() };
        assert!(f.validate(Some(224)).is_ok());
        let f = Family::Crop { max_shift: 3, step: 2.0, resize: None, resample: Resample::default() };
        assert_eq!(f.validate(None).unwrap_err().0, "step");
        let f = Family::Embed { size: 300, crop: Default::default(), max_shift: 0, step: 1, background: Background::Black, resample: NEAREST };
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "size");
        // Each meaning has one name: a crop-based diagonal's resize is `resize`.
        let f: Family = toml::from_str("kind = \"diagonal\"\nsize = 256").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "size");
        let f: Family = toml::from_str("kind = \"diagonal\"\nresize = 256").unwrap();
        assert!(f.validate(Some(224)).is_ok());
        let f: Family = toml::from_str("kind = \"diagonal\"\nresize = 228\nfrom = -3\nto = 3").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "max_shift", "-3..3 needs 3 px of room on each side");
        let f: Family = toml::from_str("kind = \"diagonal\"\nbase = \"embed\"\nresize = 100").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "resize");
        let f: Family = toml::from_str("kind = \"diagonal\"\ncrop = \"none\"").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "crop");
        let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nresample = { compat = \"pillow\", antialias = false }").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "resample.antialias");
    }

    #[test]
    fn one_dimensional_families_validate_their_ranges() {
        let f: Family = toml::from_str("kind = \"rotate\"\nfrom = 5.0\nto = -5.0").unwrap();
        assert_eq!(f.validate(Some(32)).unwrap_err().0, "to");
        let f: Family = toml::from_str("kind = \"scale\"\nstep = 0.0").unwrap();
        assert_eq!(f.validate(Some(32)).unwrap_err().0, "step");
        let f: Family = toml::from_str("kind = \"rotate\"").unwrap();
        assert_eq!(f.points().len(), 31, "ImageNet-P: -15..15, 31 frames");
        assert_eq!(f.points()[f.reference()].angle, 0.0);
        let f: Family = toml::from_str("kind = \"scale\"").unwrap();
        assert_eq!(f.points().len(), 31, "ImageNet-P: 0.40..1.15 step 0.025");
    }
}
