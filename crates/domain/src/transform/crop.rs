//! Windows of the resized image (`crop`, `random_pairs`, `diagonal` on a crop)
//! and circular shifts of its centre crop (`circular`).

use super::render::{paste, Px};
use super::GridPoint;
use crate::image::{centre_offset, Compat, Rgb8};

/// The window at the centre of `img` (centred as `compat` centres) moved by the
/// point's offset.
pub(super) fn write_window(img: &Rgb8, compat: Compat, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
    let x0 = centre_offset(img.width - side as u32, compat) as i64 + p.dx as i64;
    let y0 = centre_offset(img.height - side as u32, compat) as i64 + p.dy as i64;
    paste(img, x0, y0, side, [0.0; 3], px, out);
}

/// The centre crop `img` (side x side) shifted with wrap-around by the point's offset.
pub(super) fn write_circular(img: &Rgb8, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
    let plane = side * side;
    for y in 0..side {
        let sy = (y as i64 + p.dy as i64).rem_euclid(side as i64) as usize;
        for x in 0..side {
            let sx = (x as i64 + p.dx as i64).rem_euclid(side as i64) as usize;
            let i = (sy * side + sx) * 3;
            for c in 0..3 {
                out[c * plane + y * side + x] = px(img.data[i + c] as f32, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::transform::testutil::{numbered, ID, NEAREST};
    use crate::transform::{Family, GridPoint};

    #[test]
    fn crop_places_pixels_where_the_spec_says() {
        // A 40x40 image, resize 40 (no-op), input 32: centred window at (4, 4).
        let img = numbered(40, 40);
        let f = Family::Crop { max_shift: 3, step: 1, resize: Some(40), resample: NEAREST };
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, 3, -2);
        let out = prep.render(p);
        assert_eq!(out.pixel(0, 0), [7, 2, 200]);
        assert_eq!(out.pixel(31, 31), [38, 33, 200]);
        let mut t = vec![0f32; 3 * 32 * 32];
        prep.write_chw(p, &ID, &mut t);
        assert_eq!(t[0], 7.0);
        assert_eq!(t[32 * 32], 2.0);
        assert_eq!(t[2 * 32 * 32 + 5], 200.0);
        assert_eq!(t[31 * 32 + 31], 38.0);
    }

    #[test]
    fn circular_shift_wraps_around() {
        // Input 8, resize 8 (no-op): the centre crop is the image itself.
        let img = numbered(8, 8);
        let f = Family::Circular { max_shift: 2, step: 1, resize: Some(8), resample: NEAREST };
        let prep = f.prepare(&img, 8).unwrap();
        let out = prep.render(GridPoint::offset(0, 2, -1));
        assert_eq!(out.pixel(0, 0), [2, 7, 200]);
        assert_eq!(out.pixel(6, 1), [0, 0, 200], "x wraps from 8 to 0, y from -1+1 = 0");
        assert_eq!(f.points().len(), 25);
        assert_eq!(f.reference(), 12);
    }
}
