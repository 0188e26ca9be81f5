//! Frames of a user-provided sequence, each resized and centre-cropped.

use crate::image::{resize_short_side, Resample, Rgb8};

/// The first `need` frames, each resized so its short side is `extent` and
/// centre-cropped to `side`; an error naming the shortfall when there are fewer.
pub(super) fn centre_crops(frames: &[Rgb8], need: usize, extent: u32, resample: Resample, side: u32) -> Result<Vec<Rgb8>, String> {
    if frames.len() < need {
        return Err(format!("the sequence has {} frames; the family needs {need}", frames.len()));
    }
    Ok(frames[..need]
        .iter()
        .map(|f| resize_short_side(f, extent, resample).center_square_with(side, resample.compat).expect("extent covers the input"))
        .collect())
}

#[cfg(test)]
mod tests {
    use crate::image::{resize_short_side, Rgb8};
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::{Compare, Family, GridPoint};

    fn sequence(frames: u32, stride: u32, compare: Compare) -> Family {
        Family::Sequence { path: "s".into(), frames: Some(frames), stride, compare, resize: None, resample: NEAREST, labels: None, limit: None }
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
}
