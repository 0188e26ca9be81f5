//! Windows of the resized image (`crop`, `random_pairs`, `diagonal` on a crop)
//! and circular shifts of its centre crop (`circular`).

use super::render::{paste, Px};
use super::GridPoint;
use crate::image::{centre_offset, Compat, Rgb8};

/// The window at the centre of `img` (centred as `compat` centres) moved by the
/// point's offset.
pub(super) fn write_window(img: &Rgb8, compat: Compat, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
    let cx = centre_offset(img.width - side as u32, compat) as i64;
    let cy = centre_offset(img.height - side as u32, compat) as i64;
    if p.is_subpixel() {
        return super::subpixel::write_window(img, cx as f64 + p.dx as f64, cy as f64 + p.dy as f64, side, px, out);
    }
    let (x0, y0) = (cx + p.dx as i64, cy + p.dy as i64);
    paste(img, x0, y0, side, [0.0; 3], px, out);
}

/// The centre crop `square` (side x side) with its wrap: a (2 side - 1)-pixel
/// square whose pixel `(x, y)` is the crop's `(x mod side, y mod side)`, so that
/// every circular shift is a plain window of it ([`wrap_origin`]), which a
/// renderer of windows on the model's device draws as it draws any crop.
pub(super) fn tile(square: &Rgb8) -> Rgb8 {
    let side = square.width as usize;
    let n = (2 * side).saturating_sub(1);
    let mut out = Rgb8::new(n as u32, n as u32);
    for y in 0..n {
        for x in 0..n {
            let (o, i) = ((y * n + x) * 3, ((y % side) * side + x % side) * 3);
            out.data[o..o + 3].copy_from_slice(&square.data[i..i + 3]);
        }
    }
    out
}

/// Top-left, in the tiled crop ([`tile`]), of the window that shows the centre
/// crop shifted with wrap-around by the point's offset.
pub(super) fn wrap_origin(p: GridPoint, side: usize) -> (i64, i64) {
    ((p.dx as i64).rem_euclid(side as i64), (p.dy as i64).rem_euclid(side as i64))
}

/// The centre crop (side x side, given tiled) shifted with wrap-around by the
/// point's offset: output pixel `(x, y)` is the crop's `((x + dx) mod side, (y +
/// dy) mod side)`.
pub(super) fn write_circular(tiled: &Rgb8, p: GridPoint, side: usize, px: Px<'_>, out: &mut [f32]) {
    let (x0, y0) = wrap_origin(p, side);
    paste(tiled, x0, y0, side, [0.0; 3], px, out);
}

#[cfg(test)]
mod tests {
    use crate::transform::testutil::{numbered, ID, NEAREST};
    use crate::transform::{Family, GridPoint};

    #[test]
    fn crop_places_pixels_where_the_spec_says() {
        // A 40x40 image, resize 40 (no-op), input 32: centred window at (4, 4).
        let img = numbered(40, 40);
        let f = Family::Crop { max_shift: 3, step: 1.0, resize: Some(40), resample: NEAREST };
        let prep = f.prepare(&img, 32).unwrap();
        let p = GridPoint::offset(0, 3.0, -2.0);
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
    fn fractional_steps_make_sub_pixel_grids_whose_integer_points_are_plain_windows() {
        let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nstep = 0.25\nresize = 48").unwrap();
        f.validate(Some(32)).unwrap();
        let pts = f.points();
        assert_eq!(pts.len(), 81);
        assert_eq!((pts[0].dx, pts[1].dx, pts[4].dx), (-1.0, -0.75, 0.0));
        assert_eq!(pts[f.reference()].dx, 0.0);
        assert_eq!(f.pairs().len(), 2 * 9 * 8, "neighbours are a quarter pixel apart");
        let bad: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nstep = 0.3").unwrap();
        assert_eq!(bad.validate(None).unwrap_err().0, "step");
        let diag: Family = toml::from_str("kind = \"diagonal\"\nfrom = -1\nto = 1\nstep = 0.5").unwrap();
        assert_eq!(diag.points().iter().map(|p| p.dx).collect::<Vec<_>>(), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(diag.reference(), 2);
        let emb: Family = toml::from_str("kind = \"diagonal\"\nbase = \"embed\"\nstep = 0.5").unwrap();
        assert_eq!(emb.validate(None).unwrap_err().0, "step");

        // A smooth image: integer points equal the integer family's, bit for bit;
        // a half-pixel point lies between its neighbours.
        let mut img = crate::image::Rgb8::new(48, 48);
        for y in 0..48 {
            for x in 0..48 {
                img.set_pixel(x, y, [(x * 5) as u8, (y * 3) as u8, 100]);
            }
        }
        let int: Family = toml::from_str("kind = \"crop\"\nmax_shift = 1\nresize = 48").unwrap();
        let (a, b) = (f.prepare(&img, 32).unwrap(), int.prepare(&img, 32).unwrap());
        let render = |prep: &crate::transform::Prepared, dx: f32, dy: f32| {
            let mut t = vec![0f32; 3 * 32 * 32];
            prep.write_chw(GridPoint { index: 0, dx, dy, scale: 1.0, angle: 0.0 }, &ID, &mut t);
            t
        };
        for (dx, dy) in [(-1.0, 0.0), (0.0, 0.0), (1.0, -1.0)] {
            let (x, y) = (render(&a, dx, dy), render(&b, dx, dy));
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        let half = render(&a, 0.5, 0.0);
        let (l, r) = (render(&b, 0.0, 0.0), render(&b, 1.0, 0.0));
        // Away from the image edge the red ramp (5 per pixel) is reproduced at +2.5.
        let i = 16 * 32 + 16;
        assert!((half[i] - (l[i] + r[i]) / 2.0).abs() < 0.01, "{} vs {} {}", half[i], l[i], r[i]);
    }

    #[test]
    fn circular_shift_wraps_around() {
        // Input 8, resize 8 (no-op): the centre crop is the image itself.
        let img = numbered(8, 8);
        let f = Family::Circular { max_shift: 2, step: 1, resize: Some(8), resample: NEAREST };
        let prep = f.prepare(&img, 8).unwrap();
        let out = prep.render(GridPoint::offset(0, 2.0, -1.0));
        assert_eq!(out.pixel(0, 0), [2, 7, 200]);
        assert_eq!(out.pixel(6, 1), [0, 0, 200], "x wraps from 8 to 0, y from -1+1 = 0");
        assert_eq!(f.points().len(), 25);
        assert_eq!(f.reference(), 12);
    }
}
