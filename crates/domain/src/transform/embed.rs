//! `embed` (Azulay & Weiss "Black"): the image is resized so its short side is
//! `size` and centre-cropped to a `size` x `size` square (`crop = "square"`,
//! the default), or resized whole so its long side is `size` (`crop =
//! "none"`), and pasted on an S x S canvas at the centre moved by `(dx, dy)`
//! over a square grid of offsets. Background `black` (pixel value 0), `mean`
//! (the normalisation mean: 0 after normalising, as the paper's released code
//! did) or `inpaint`.

use super::canvas::{fitted, Canvas};
use super::kind::{field, FamilyKind, FieldError, Figures, Shape};
use super::point::{one, Background, EmbedCrop, GridPoint};
use super::{window, Family, Prepared};
use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// A downscaled image pasted on a canvas at shifted positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embed {
    /// Side of the embedded image in pixels (its long side with `crop = "none"`).
    pub size: u32,
    /// Whether the image is centre-cropped to a square before embedding.
    #[serde(default)]
    pub crop: EmbedCrop,
    /// Largest offset in pixels, on each axis.
    pub max_shift: u32,
    /// Grid spacing in pixels; must divide `max_shift`.
    #[serde(default = "one")]
    pub step: u32,
    /// Canvas background.
    #[serde(default)]
    pub background: Background,
    /// Resampling of the resize.
    #[serde(default)]
    pub resample: Resample,
}

/// A square grid of whole-pixel steps: a step of at least 1 that divides
/// `max_shift`, within the limit of points (`embed`, `circular`).
pub(super) fn check_whole_grid(max_shift: u32, step: u32) -> Result<(), FieldError> {
    if step == 0 {
        return field("step", "must be at least 1");
    }
    super::grid::check_square(max_shift, step as f32)
}

impl FamilyKind for Embed {
    fn name(&self) -> &'static str {
        "embed"
    }

    fn resample(&self) -> Resample {
        self.resample
    }

    fn check(&self) -> Result<(), FieldError> {
        check_whole_grid(self.max_shift, self.step)
    }

    fn shape(&self) -> Shape {
        Shape::Grid(self.max_shift, self.step.max(1) as f32)
    }

    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError> {
        super::fit::canvas(self.size, side, super::fit::reach(points), "size")
    }

    fn prepare(&self, frames: &[Rgb8], side: u32, _points: &[GridPoint]) -> Result<Prepared, String> {
        let img = window::single(frames)?;
        Ok(Prepared::new(side, Canvas { images: vec![fitted(img, self.size, self.crop, self.resample)], background: self.background }))
    }

    fn without_extent(&self) -> Option<Family> {
        Some(Family::Embed(Embed { max_shift: 0, ..self.clone() }))
    }

    fn figures(&self) -> Figures {
        Figures::GRID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::{Normalize, INPAINT_MAX_UNFILLED};

    fn embed(size: u32, max_shift: u32, step: u32, background: Background) -> Family {
        Family::Embed(Embed { size, crop: Default::default(), max_shift, step, background, resample: NEAREST })
    }

    #[test]
    fn embed_pastes_on_black_at_the_offset() {
        // 10x10 image embedded (size 10) in a 32 canvas: centred corner at 11.
        let img = numbered(10, 10);
        let f = embed(10, 4, 2, Background::Black);
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, -4.0, 2.0);
        let out = prep.render(p);
        assert_eq!(out.pixel(7, 13), [0, 0, 200]);
        assert_eq!(out.pixel(16, 22), [9, 9, 200]);
        assert_eq!(out.pixel(6, 13), [0, 0, 0]);
        assert_eq!(out.pixel(17, 13), [0, 0, 0]);
        let norm = Normalize { mean: [127.0; 3], std: [128.0; 3] };
        let mut t = vec![0f32; 3 * 32 * 32];
        prep.write_chw(p, &norm, &mut t);
        // Every tensor value equals the rendered image, normalised.
        for y in 0..32u32 {
            for x in 0..32u32 {
                let px = out.pixel(x, y);
                for c in 0..3 {
                    let v = t[c * 1024 + (y * 32 + x) as usize];
                    assert_eq!(v, (px[c] as f32 - 127.0) * (1.0 / 128.0));
                }
            }
        }
    }

    #[test]
    fn embed_without_crop_keeps_the_whole_image_on_its_long_side() {
        // 20x10 image, size 10: resized whole to 10x5, centred in a 16 canvas at
        // columns 3..13 and rows (16 - 5) / 2 = 5..10.
        let img = numbered(20, 10);
        let f: Family = toml::from_str("kind = \"embed\"\nsize = 10\nmax_shift = 2\ncrop = \"none\"\nresample = { filter = \"nearest\" }").unwrap();
        let prep = f.prepare(&img, 16).unwrap();
        let out = prep.render(GridPoint::offset(0, 0.0, 0.0));
        assert_eq!(out.pixel(3, 5), [1, 1, 200], "nearest of a 2x downscale samples pixel centres 1, 3, ...");
        assert_eq!(out.pixel(12, 9), [19, 9, 200]);
        assert_eq!(out.pixel(3, 4), [0, 0, 0], "above the image");
        assert_eq!(out.pixel(13, 5), [0, 0, 0], "right of the image");
        // The same image centre-cropped (the default) fills a 10x10 square.
        let sq: Family = toml::from_str("kind = \"embed\"\nsize = 10\nmax_shift = 2\nresample = { filter = \"nearest\" }").unwrap();
        let out = sq.prepare(&img, 16).unwrap().render(GridPoint::offset(0, 1.0, 1.0));
        assert_eq!(out.pixel(4, 4), [5, 0, 200], "the square starts at column 5 of the 20x10 image");
        assert_eq!(out.pixel(13, 13), [14, 9, 200]);
    }

    #[test]
    fn mean_background_is_zero_after_normalising() {
        let img = numbered(10, 10);
        let prep = embed(10, 0, 1, Background::Mean).prepare(&img, 16).unwrap();
        let norm = Normalize { mean: [120.0, 110.0, 100.0], std: [50.0; 3] };
        let mut t = vec![1f32; 3 * 256];
        prep.write_chw(GridPoint::offset(0, 0.0, 0.0), &norm, &mut t);
        assert_eq!((t[0], t[256], t[512]), (0.0, 0.0, 0.0));
        assert_eq!(t[3 * 16 + 3], (0.0 - 120.0) * (1.0 / 50.0), "image pixel (0,0) at canvas (3,3)");
    }

    #[test]
    fn inpainted_embed_keeps_the_image_and_fills_around_it() {
        let mut img = Rgb8::new(10, 10);
        img.data.iter_mut().for_each(|v| *v = 90);
        let out = embed(10, 0, 1, Background::Inpaint).prepare(&img, 32).unwrap().render(GridPoint::offset(0, 0.0, 0.0));
        // A constant image inpaints to the same constant wherever it reached.
        assert_eq!(out.pixel(11, 11), [90; 3]);
        assert_eq!(out.pixel(5, 5), [90; 3]);
        let filled = (0..32 * 32).filter(|i| out.data[i * 3] == 90).count();
        assert!(filled >= 32 * 32 - INPAINT_MAX_UNFILLED, "{filled}");
    }
}
