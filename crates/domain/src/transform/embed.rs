//! An image pasted on a canvas at an offset from the centre (`embed`, `scale`,
//! `diagonal` on an embed), on a black, mean or inpainted background.

use super::inpaint::inpaint;
use super::render::{paste, Px};
use super::{Background, GridPoint, BLACK};
use crate::image::Rgb8;

/// `img` on a `side` x `side` canvas, centred and moved by the point's offset.
pub(super) fn write_embedded(img: &Rgb8, bg: Background, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
    // Image pixel shown at canvas (0, 0): minus the canvas position of its corner.
    let x0 = -((side as i64 - img.width as i64).div_euclid(2) + p.dx as i64);
    let y0 = -((side as i64 - img.height as i64).div_euclid(2) + p.dy as i64);
    match bg {
        Background::Black => paste(img, x0, y0, side, [px(BLACK as f32, 0), px(BLACK as f32, 1), px(BLACK as f32, 2)], px, out),
        Background::Mean => paste(img, x0, y0, side, [0.0; 3], px, out),
        Background::Inpaint => {
            // Paste in pixel units on black, inpaint, then normalise.
            let ident = |v: f32, _c: usize| v;
            paste(img, x0, y0, side, [BLACK as f32; 3], &ident, out);
            let (w, h) = (img.width as i64, img.height as i64);
            let mut known: Vec<bool> = (0..side * side)
                .map(|i| {
                    let (sx, sy) = (x0 + (i % side) as i64, y0 + (i / side) as i64);
                    sx >= 0 && sy >= 0 && sx < w && sy < h
                })
                .collect();
            inpaint(out, &mut known, side);
            let plane = side * side;
            for c in 0..3 {
                out[c * plane..(c + 1) * plane].iter_mut().for_each(|v| *v = px(*v, c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::image::Rgb8;
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::{Background, Family, GridPoint, Normalize, INPAINT_MAX_UNFILLED};

    #[test]
    fn embed_pastes_on_black_at_the_offset() {
        // 10x10 image embedded (size 10) in a 32 canvas: centred corner at 11.
        let img = numbered(10, 10);
        let f = Family::Embed { size: 10, crop: Default::default(), max_shift: 4, step: 2, background: Background::Black, resample: NEAREST };
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
        let f = Family::Embed { size: 10, crop: Default::default(), max_shift: 0, step: 1, background: Background::Mean, resample: NEAREST };
        let prep = f.prepare(&img, 16).unwrap();
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
        let f = Family::Embed { size: 10, crop: Default::default(), max_shift: 0, step: 1, background: Background::Inpaint, resample: NEAREST };
        let out = f.prepare(&img, 32).unwrap().render(GridPoint::offset(0, 0.0, 0.0));
        // A constant image inpaints to the same constant wherever it reached.
        assert_eq!(out.pixel(11, 11), [90; 3]);
        assert_eq!(out.pixel(5, 5), [90; 3]);
        let filled = (0..32 * 32).filter(|i| out.data[i * 3] == 90).count();
        assert!(filled >= 32 * 32 - INPAINT_MAX_UNFILLED, "{filled}");
    }
}
