//! The paper's inpainting background: repeated normalised convolution.

/// Iterations after which inpainting stops.
pub const INPAINT_ITERATIONS: usize = 80;
/// Inpainting stops once at most this many pixels are unfilled.
pub const INPAINT_MAX_UNFILLED: usize = 200;

/// Fills the unknown pixels of a `side` x `side` CHW canvas (pixel units) by
/// repeated normalised convolution with the binomial kernel
/// `[.25, .5, .25]` x `[.25, .5, .25]` (from `[.5, .5]` convolved with itself): each
/// pass gives every unknown pixel with a known neighbour the kernel-weighted mean
/// of its known neighbours, computed from the previous pass. It stops after
/// [`INPAINT_ITERATIONS`] passes or when at most [`INPAINT_MAX_UNFILLED`] pixels are
/// unfilled; those stay black.
pub fn inpaint(canvas: &mut [f32], known: &mut [bool], side: usize) {
    const K: [f32; 3] = [0.25, 0.5, 0.25];
    let plane = side * side;
    let mut unfilled = known.iter().filter(|k| !**k).count();
    let mut updates: Vec<(usize, [f32; 3])> = Vec::new();
    for _ in 0..INPAINT_ITERATIONS {
        if unfilled <= INPAINT_MAX_UNFILLED {
            break;
        }
        updates.clear();
        for y in 0..side {
            for x in 0..side {
                let i = y * side + x;
                if known[i] {
                    continue;
                }
                let (mut num, mut den) = ([0f32; 3], 0f32);
                for (ky, wy) in K.iter().enumerate() {
                    let yy = y as i64 + ky as i64 - 1;
                    if yy < 0 || yy >= side as i64 {
                        continue;
                    }
                    for (kx, wx) in K.iter().enumerate() {
                        let xx = x as i64 + kx as i64 - 1;
                        if xx < 0 || xx >= side as i64 {
                            continue;
                        }
                        let j = yy as usize * side + xx as usize;
                        if known[j] {
                            let w = wy * wx;
                            den += w;
                            for c in 0..3 {
                                num[c] += w * canvas[c * plane + j];
                            }
                        }
                    }
                }
                if den > 0.0 {
                    updates.push((i, [num[0] / den, num[1] / den, num[2] / den]));
                }
            }
        }
        if updates.is_empty() {
            break;
        }
        for &(i, v) in &updates {
            for c in 0..3 {
                canvas[c * plane + i] = v[c];
            }
            known[i] = true;
        }
        unfilled -= updates.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inpainting_by_hand() {
        // 3x3 canvas, only the centre known (value 8): one pass fills all eight
        // neighbours with 8 (a weighted mean of one known pixel).
        let mut canvas = vec![0f32; 27];
        let mut known = vec![false; 9];
        for c in 0..3 {
            canvas[c * 9 + 4] = 8.0;
        }
        known[4] = true;
        // Stop rule: at most 200 unfilled already holds, so nothing happens.
        let mut c2 = canvas.clone();
        let mut k2 = known.clone();
        inpaint(&mut c2, &mut k2, 3);
        assert_eq!(k2.iter().filter(|k| **k).count(), 1);
        // A 20x20 canvas (400 pixels) with a known 2x2 block at the top-left:
        // (0,0)=4, (1,0)=8, (0,1)=12, (1,1)=16. Pixel (2,0) in the first pass
        // sees (1,0) with weight .5*.25 and (1,1) with .25*.25:
        // (8*.125 + 16*.0625) / .1875 = 10.666..
        let side = 20;
        let mut canvas = vec![0f32; 3 * side * side];
        let mut known = vec![false; side * side];
        for (x, y, v) in [(0, 0, 4.0), (1, 0, 8.0), (0, 1, 12.0), (1, 1, 16.0)] {
            known[y * side + x] = true;
            for c in 0..3 {
                canvas[c * side * side + y * side + x] = v;
            }
        }
        inpaint(&mut canvas, &mut known, side);
        assert!((canvas[2] - 32.0 / 3.0).abs() < 1e-5, "{}", canvas[2]);
        assert!(known.iter().filter(|k| !**k).count() <= INPAINT_MAX_UNFILLED);
        // Filled values stay within the range of the known ones.
        assert!(canvas.iter().zip(known.iter().cycle()).all(|(v, k)| !*k || (4.0..=16.0).contains(v)));
        drop((canvas, known));
    }
}
