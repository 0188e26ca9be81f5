//! The image at each scale of the sweep, as a square centred on the canvas.

use super::GridPoint;
use crate::image::{resize, resize_short_side, Resample, Rgb8};

/// One square per point: the image resized so its short side is
/// `round(scale * base)`, centre-cropped to a square (resized to one when the
/// crop cannot be taken).
pub(super) fn squares(points: &[GridPoint], img: &Rgb8, base: u32, resample: Resample) -> Vec<Rgb8> {
    points
        .iter()
        .map(|p| {
            let n = ((p.scale as f64 * base as f64).round() as u32).max(1);
            let r = resize_short_side(img, n, resample);
            r.center_square(n).unwrap_or_else(|| resize(&r, n, n, resample))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::image::Rgb8;
    use crate::transform::Family;

    #[test]
    fn scale_points_resize_and_centre() {
        let f: Family = toml::from_str("kind = \"scale\"\nfrom = 0.5\nto = 1.5\nstep = 0.25").unwrap();
        let pts = f.points();
        assert_eq!(pts.iter().map(|p| p.scale).collect::<Vec<_>>(), vec![0.5, 0.75, 1.0, 1.25, 1.5]);
        assert_eq!(f.reference(), 2);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        let mut img = Rgb8::new(40, 40);
        img.data.iter_mut().for_each(|v| *v = 100);
        let prep = f.prepare(&img, 16).unwrap();
        // scale 0.5 of base 16: an 8x8 square centred at 4..12, black around.
        let half = prep.render(pts[0]);
        assert_eq!(half.pixel(4, 4), [100; 3]);
        assert_eq!(half.pixel(11, 11), [100; 3]);
        assert_eq!(half.pixel(3, 4), [0; 3]);
        assert_eq!(half.pixel(12, 11), [0; 3]);
        // scale 1.5: 24 px, larger than the canvas: covers it all.
        assert!(prep.render(pts[4]).data.iter().all(|&v| v == 100));
    }
}
