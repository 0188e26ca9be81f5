//! Images pasted on a canvas at an offset from the centre, on a black, mean
//! or inpainted background: how `embed`, `diagonal` on an embed and `scale`
//! draw their points.

use super::inpaint::inpaint;
use super::point::{Background, EmbedCrop, GridPoint, BLACK};
use super::prepared::{paste, Draw, Normalize, Px, View};
use crate::image::{resize_long_side, resize_short_side, Resample, Rgb8};

/// Images pasted centred (plus offset) on a canvas: one for all points, or
/// one per point (`scale`).
#[derive(Debug)]
pub(super) struct Canvas {
    pub images: Vec<Rgb8>,
    pub background: Background,
}

/// `img` fitted into `size`: resized so its short side is `size` and
/// centre-cropped to a square, or resized whole so its long side is `size`.
pub(super) fn fitted(img: &Rgb8, size: u32, crop: EmbedCrop, resample: Resample) -> Rgb8 {
    match crop {
        EmbedCrop::Square => resize_short_side(img, size, resample).center_square(size).expect("short side equals size"),
        EmbedCrop::None => resize_long_side(img, size, resample),
    }
}

impl Canvas {
    /// The image point `p` shows.
    fn image(&self, p: GridPoint) -> Option<&Rgb8> {
        if self.images.len() == 1 {
            Some(&self.images[0])
        } else {
            self.images.get(p.index as usize)
        }
    }
}

/// Image pixel shown at canvas (0, 0) when `img` sits centred on a `side`
/// canvas and moved by the point's offset: minus the canvas position of its
/// corner.
fn origin(img: &Rgb8, p: GridPoint, side: i64) -> (i64, i64) {
    (-((side - img.width as i64).div_euclid(2) + p.dx as i64), -((side - img.height as i64).div_euclid(2) + p.dy as i64))
}

impl Draw for Canvas {
    fn write(&self, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
        let img = self.image(p).expect("one image per point");
        let (x0, y0) = origin(img, p, side as i64);
        match self.background {
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

    fn view(&self, p: GridPoint, side: u32, norm: &Normalize) -> Option<View<'_>> {
        if p.is_subpixel() {
            return None;
        }
        let black = |c: usize| (BLACK as f32 - norm.mean[c]) * (1.0 / norm.std[c]);
        let background = match self.background {
            Background::Black => [black(0), black(1), black(2)],
            Background::Mean => [0.0; 3],
            Background::Inpaint => return None,
        };
        let img = self.image(p)?;
        let (x0, y0) = origin(img, p, side as i64);
        Some(View { image: img, x0, y0, background })
    }
}
