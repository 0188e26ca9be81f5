//! Sub-pixel translation: windows of the resized image at fractional offsets.
//!
//! Method: separable Kaiser-windowed sinc interpolation, half-width 8 (16 taps
//! per axis, `K(x) = sinc(x) I0(8 sqrt(1 - (x/8)^2)) / I0(8)` for `|x| < 8`),
//! weights normalised to sum to one, computed in `f64` and applied to the 8-bit
//! resized image (rows first, then columns), with no rounding: the
//! interpolated values go straight into the model's input tensor. Taps that
//! fall outside the resized image repeat its edge pixel. An offset whose
//! fractional part is zero uses the single tap of weight one, so integer offsets
//! through this path give exactly the integer windows.

/// Half-width of the interpolation window, in pixels (taps per axis: twice it).
pub const SINC_HALF_WIDTH: i64 = 8;

/// The Kaiser window's shape parameter.
pub const KAISER_BETA: f64 = 8.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// The modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn kernel(x: f64) -> f64 {
    let a = SINC_HALF_WIDTH as f64;
    if x.abs() >= a {
        0.0
    } else {
        sinc(x) * bessel_i0(KAISER_BETA * (1.0 - (x / a) * (x / a)).sqrt()) / bessel_i0(KAISER_BETA)
    }
}

/// Taps per axis: twice the half-width.
pub const TAPS: usize = 2 * SINC_HALF_WIDTH as usize;

/// The taps of position `t` for a renderer on the model's device: the first
/// source index and [`TAPS`] weights, the single tap of an integer position
/// followed by zeros (which add nothing).
pub fn padded_taps(t: f64) -> (i64, [f64; TAPS]) {
    let (first, w) = taps(t);
    let mut out = [0.0; TAPS];
    out[..w.len()].copy_from_slice(&w);
    (first, out)
}

/// The taps that sample position `t`: the first source index and the
/// normalised weights.
pub(crate) fn taps(t: f64) -> (i64, Vec<f64>) {
    let i = t.floor();
    let f = t - i;
    if f == 0.0 {
        return (i as i64, vec![1.0]);
    }
    let first = i as i64 - SINC_HALF_WIDTH + 1;
    let w: Vec<f64> = (0..2 * SINC_HALF_WIDTH).map(|k| kernel(t - (first + k) as f64)).collect();
    let sum: f64 = w.iter().sum();
    (first, w.into_iter().map(|v| v / sum).collect())
}

/// Samples the `side` x `side` window whose top-left corner sits at source
/// position `(x0, y0)` (fractional) of a `w` x `h` plane read through `get(x, y)`
/// (indices already clamped), writing row-major `f32` values to `out`.
pub fn sample_plane(get: &dyn Fn(usize, usize) -> f32, w: usize, h: usize, x0: f64, y0: f64, side: usize, out: &mut [f32]) {
    assert_eq!(out.len(), side * side);
    let (fx, wx) = taps(x0);
    let (fy, wy) = taps(y0);
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    // Rows first: each source row the columns need, over the window's columns.
    let rows = side + wy.len() - 1;
    let mut tmp = vec![0f64; rows * side];
    for r in 0..rows {
        let sy = clamp(fy + r as i64, h);
        for x in 0..side {
            let mut acc = 0.0;
            for (k, wk) in wx.iter().enumerate() {
                acc += get(clamp(fx + (x + k) as i64, w), sy) as f64 * wk;
            }
            tmp[r * side + x] = acc;
        }
    }
    for y in 0..side {
        for x in 0..side {
            let mut acc = 0.0;
            for (k, wk) in wy.iter().enumerate() {
                acc += tmp[(y + k) * side + x] * wk;
            }
            out[y * side + x] = acc as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A band-limited image: a sum of low-frequency sinusoids (periods 23-61 px).
    fn wave(x: f64, y: f64) -> f64 {
        use std::f64::consts::TAU;
        0.5 + 0.2 * (TAU * x / 37.0 + 0.3).sin() * (TAU * y / 41.0).cos() + 0.15 * (TAU * (x + y) / 23.0 + 1.0).cos() + 0.1 * (TAU * y / 61.0).sin()
    }

    #[test]
    fn fractional_shifts_of_a_band_limited_image_match_the_analytic_ones() {
        let (w, h) = (160usize, 150usize);
        let plane: Vec<f32> = (0..w * h).map(|i| wave((i % w) as f64, (i / w) as f64) as f32).collect();
        let get = |x: usize, y: usize| plane[y * w + x];
        let side = 64;
        for (x0, y0) in [(40.5, 30.5), (41.0, 30.5), (40.25, 33.75), (50.5, 44.0)] {
            let mut out = vec![0f32; side * side];
            sample_plane(&get, w, h, x0, y0, side, &mut out);
            let worst = (0..side * side).map(|i| (out[i] as f64 - wave(x0 + (i % side) as f64, y0 + (i / side) as f64)).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-4, "({x0}, {y0}): worst error {worst}");
        }
    }

    #[test]
    fn integer_offsets_take_the_pixels_themselves() {
        assert_eq!(taps(7.0), (7, vec![1.0]));
        assert_eq!(taps(-2.0), (-2, vec![1.0]));
        let (first, w) = taps(7.5);
        assert_eq!(first, 0);
        assert_eq!(w.len(), 16);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Symmetric about the half-way point, largest next to it.
        for k in 0..8 {
            assert!((w[k] - w[15 - k]).abs() < 1e-12);
        }
        assert!(w[7] > 0.6 && w[6] < 0.0);
        // I0 against tabulated values.
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(8.0) - 427.564_115_721_804_7).abs() < 1e-9);
    }
}
