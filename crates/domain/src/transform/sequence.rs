//! `sequence`: user-provided frame sequences (folders of consecutive frames,
//! as in ImageNet-P): point `k` is frame `k`, resized so its short side is
//! `resize` (default S) and centre-cropped. Neighbours are frames `k` and
//! `k + stride` (`compare = "previous"`), or the first frame and every other
//! frame (`compare = "first"`, ImageNet-P's noise sequences). The reference is
//! frame 0.

use super::kind::{field, Axis, FamilyKind, FieldError, Figures, Shape};
use super::point::{one, GridPoint};
use super::prepared::{paste, Draw, Normalize, Px, View};
use super::{window, Family, Prepared, MAX_POINTS};
use crate::image::{resize_short_side, Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// What a `sequence` frame is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The frame `stride` before it (ImageNet-P's translate, rotate, scale, tilt...).
    #[default]
    Previous,
    /// The first frame (ImageNet-P's noise sequences).
    First,
}

/// Frames of user-provided sequences (one item = one folder of frames).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// Folder of sequences, relative to the spec file: `<sequence>/<frames>` with
    /// an optional `labels.csv` (`sequence,label`), or `<class>/<sequence>/<frames>`.
    pub path: String,
    /// Frames used per sequence (the first ones, in natural name order);
    /// default: the length of the shortest sequence, filled in at submit.
    #[serde(default)]
    pub frames: Option<u32>,
    /// Neighbours are frames `k` and `k + stride` (with `compare = "previous"`).
    #[serde(default = "one")]
    pub stride: u32,
    /// What each frame is compared with.
    #[serde(default)]
    pub compare: Compare,
    /// Short side after resizing, before the centre crop; default: model input side.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
    /// CSV of `sequence,label` inside `path`; default `labels.csv` when present.
    #[serde(default)]
    pub labels: Option<String>,
    /// Use only the first N sequences (in sorted order).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl FamilyKind for Sequence {
    fn name(&self) -> &'static str {
        "sequence"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.path.trim().is_empty() {
            return field("path", "must not be empty");
        }
        match self.frames {
            Some(n) if n < 2 => return field("frames", "must be at least 2"),
            Some(n) if n as usize > MAX_POINTS => return field("frames", format!("exceeds the limit of {MAX_POINTS} points")),
            _ => {}
        }
        if self.stride == 0 {
            return field("stride", "must be at least 1");
        }
        if let (Some(n), Compare::Previous) = (self.frames, self.compare) {
            if self.stride >= n {
                return field("stride", format!("must be smaller than frames ({n})"));
            }
        }
        if self.limit == Some(0) {
            return field("limit", "must be at least 1");
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        let n = self.frames.unwrap_or(0);
        let pts = (0..n as usize).map(|i| GridPoint::offset(i, 0.0, 0.0)).collect();
        let pairs = match self.compare {
            Compare::Previous => (0..n.saturating_sub(self.stride) as usize).map(|k| (k, k + self.stride as usize)).collect(),
            Compare::First => (1..n as usize).map(|k| (0, k)).collect(),
        };
        Shape::Frames(pts, pairs)
    }

    fn reference(&self, _points: &[GridPoint]) -> usize {
        0
    }

    fn frames_needed(&self) -> usize {
        self.frames.unwrap_or(0) as usize
    }

    fn fit(&self, side: u32, _points: &[GridPoint]) -> Result<(), FieldError> {
        window::fits(self.resize.unwrap_or(side), side, 0, self.resample, "resize")
    }

    /// The first `frames` frames, each resized so its short side is `resize`
    /// and centre-cropped; an error naming the shortfall when there are fewer.
    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        let need = self.frames_needed();
        if frames.len() < need {
            return Err(format!("the sequence has {} frames; the family needs {need}", frames.len()));
        }
        let extent = self.resize.unwrap_or(side);
        let crops = frames[..need]
            .iter()
            .map(|f| resize_short_side(f, extent, self.resample).center_square_with(side, self.resample.compat).expect("extent covers the input"))
            .collect();
        Ok(Prepared::new(side, Frames(crops)))
    }

    fn without_extent(&self) -> Option<Family> {
        None
    }

    fn figures(&self) -> Figures {
        Figures::line(Axis::Index, "frame")
    }
}

/// One centre crop per frame; point `k` is frame `k`.
#[derive(Debug)]
struct Frames(Vec<Rgb8>);

impl Draw for Frames {
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        paste(&self.0[p.index as usize], 0, 0, side, [0.0; 3], px, out);
    }

    fn view(&self, p: GridPoint, _side: u32, _norm: &Normalize) -> Option<View<'_>> {
        Some(View { image: self.0.get(p.index as usize)?, x0: 0, y0: 0, background: [0.0; 3] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, NEAREST};

    pub(crate) fn sequence(frames: u32, stride: u32, compare: Compare) -> Family {
        Family::Sequence(Sequence {
            path: "s".into(),
            frames: Some(frames),
            stride,
            compare,
            resize: None,
            resample: NEAREST,
            labels: None,
            limit: None,
        })
    }

    #[test]
    fn sequence_points_are_centre_crops_of_their_frames() {
        // Three 12x10 frames, each a different constant plus a position code; input 8:
        // resize to short side 8 (nearest) gives 10x8 (rounded), centre crop at x=1.
        let frames: Vec<Rgb8> = (0..3u8)
            .map(|k| {
                let mut img = numbered(12, 10);
                img.data.chunks_mut(3).for_each(|p| p[2] = 10 * k);
                img
            })
            .collect();
        let f = sequence(3, 1, Compare::Previous);
        let prep = f.prepare_item(&frames, 8).unwrap();
        for k in 0..3u32 {
            let out = prep.render(GridPoint::offset(k as usize, 0.0, 0.0));
            assert_eq!(out.width, 8);
            assert!(out.data.chunks(3).all(|p| p[2] == 10 * k as u8), "frame {k}");
            let resized = resize_short_side(&frames[k as usize], 8, NEAREST);
            assert_eq!(out, resized.center_square(8).unwrap());
        }
        // Too few frames is the item's error, named.
        let e = f.prepare_item(&frames[..2], 8).unwrap_err();
        assert!(e.contains("2 frames") && e.contains("needs 3"), "{e}");
        // Frames are what `prepare` of a single image cannot give.
        assert!(f.prepare(&frames[0], 8).is_err());
    }

    #[test]
    fn sequence_pairs_follow_compare_and_stride() {
        let f = sequence(5, 1, Compare::Previous);
        assert_eq!(f.points().len(), 5);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(f.reference(), 0);
        // ImageNet-P with difficulty 2: frames k and k + 2.
        assert_eq!(sequence(5, 2, Compare::Previous).pairs(), vec![(0, 2), (1, 3), (2, 4)]);
        // Noise sequences: every frame against the first.
        assert_eq!(sequence(4, 1, Compare::First).pairs(), vec![(0, 1), (0, 2), (0, 3)]);
        assert!(sequence(3, 3, Compare::Previous).validate(None).is_err());
        assert!(sequence(1, 1, Compare::Previous).validate(None).is_err());
        assert_eq!(sequence(3, 0, Compare::Previous).validate(None).unwrap_err().0, "stride");
    }
}
