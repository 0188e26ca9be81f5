//! Grid points, neighbour pairs and reference points of each family.

use super::{Compare, Family, GridPoint};

/// Largest grid a family may have, a guard against specs that would explode.
pub const MAX_POINTS: usize = 100_000;

/// Values `from, from + step, ..., <= to` (with a small tolerance for rounding).
pub(super) fn range(from: f32, to: f32, step: f32) -> Vec<f32> {
    if step.is_nan() || step <= 0.0 || !from.is_finite() || !to.is_finite() || to < from {
        return vec![];
    }
    let n = (((to - from) / step) as f64 + 1e-4).floor() as usize + 1;
    (0..n.min(MAX_POINTS + 1)).map(|i| (from as f64 + i as f64 * step as f64) as f32).collect()
}

/// How many steps of `step` make `span` (rounded; validation checks that it
/// divides exactly); 0 for a step that is not a positive number.
pub(super) fn steps_in(span: f64, step: f32) -> i64 {
    if !(step > 0.0 && step.is_finite()) {
        return 0;
    }
    (span / step as f64).round().clamp(-(MAX_POINTS as f64) - 1.0, MAX_POINTS as f64 + 1.0) as i64
}

/// Whether `step` divides `span` (to within rounding of decimal steps such as 0.1).
pub(super) fn divides(span: f64, step: f32) -> bool {
    let q = span / step as f64;
    (q - q.round()).abs() < 1e-4
}

/// Largest `max_radius` (a (2R + 1)^2 grid within [`MAX_POINTS`]).
pub const MAX_RADIUS: u32 = 150;

/// The offsets of L-infinity norm `r`, row-major (ring 0: the origin).
pub(super) fn ring_offsets(r: u32) -> Vec<(i32, i32)> {
    let r = r as i32;
    (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dx, dy))).filter(|&(dx, dy)| dx.abs().max(dy.abs()) == r).collect()
}

impl Family {
    /// Point indices of ring `r` of a `radius` family: `(2r - 1)^2 .. (2r + 1)^2`
    /// (ring 0: the reference alone).
    pub fn ring_indices(r: u32) -> std::ops::Range<usize> {
        if r == 0 {
            return 0..1;
        }
        let r = r as usize;
        (2 * r - 1).pow(2)..(2 * r + 1).pow(2)
    }

    /// The ring a shard of this family starts at: 1 for `radius` (the reference
    /// and ring 1), `None` for families that run every point at once.
    pub fn first_ring(&self) -> Option<u32> {
        matches!(self, Family::Radius { .. }).then_some(1)
    }

    /// The last ring a shard of this family runs: `max_radius` for `radius`,
    /// 0 for families that run every point at once.
    pub fn last_ring(&self) -> u32 {
        match self {
            Family::Radius { max_radius, .. } => *max_radius,
            _ => 0,
        }
    }

    /// Points a shard runs per image: ring `ring` with the reference for
    /// `radius` (`1 + 8 ring`), else every point.
    pub fn points_per_image(&self, ring: u32) -> usize {
        match self {
            Family::Radius { .. } => 1 + 8 * ring as usize,
            _ => self.points().len(),
        }
    }

    /// The points a shard at `ring` runs for one image, the reference first:
    /// for `radius`, the reference and ring `ring`; else [`Family::image_points`].
    pub fn shard_points(&self, image_index: u32, side: u32, ring: u32) -> Vec<GridPoint> {
        match self {
            Family::Radius { .. } => {
                let all = self.points();
                let ring = Self::ring_indices(ring);
                std::iter::once(all[0]).chain(all.get(ring).unwrap_or_default().iter().copied()).collect()
            }
            _ => self.image_points(image_index, side),
        }
    }
}

/// The shape of a family's grid.
enum Shape {
    Grid(u32, f32),
    Line(Vec<GridPoint>),
    /// A centre point then `n` independent pairs.
    Pairs(u32),
    /// Frames with explicit neighbour pairs.
    Frames(Vec<GridPoint>, Vec<(usize, usize)>),
}

impl Family {
    /// Offsets `-max_shift..=max_shift` in steps of `step` (validated to divide
    /// `max_shift`), each `i * step` computed in `f64`, so integer multiples are exact.
    fn axis(max_shift: u32, step: f32) -> Vec<f32> {
        let n = steps_in(max_shift as f64, step).min(MAX_POINTS as i64);
        (-n..=n).map(|i| (i as f64 * step as f64) as f32).collect()
    }

    fn shape(&self) -> Shape {
        match *self {
            Family::Crop { max_shift, step, .. } => Shape::Grid(max_shift, step),
            Family::Embed { max_shift, step, .. } | Family::Circular { max_shift, step, .. } => Shape::Grid(max_shift, step.max(1) as f32),
            Family::Diagonal { .. } => {
                let (from, step, n) = self.diagonal_line();
                Shape::Line(
                    (0..=n.min(MAX_POINTS))
                        .map(|i| {
                            let c = (from + i as f64 * step as f64) as f32;
                            GridPoint::offset(i, c, c)
                        })
                        .collect(),
                )
            }
            Family::Scale { from, to, step, .. } => Shape::Line(
                range(from, to, step).into_iter().enumerate().map(|(i, s)| GridPoint { scale: s, ..GridPoint::offset(i, 0.0, 0.0) }).collect(),
            ),
            Family::RandomPairs { pairs, .. } => Shape::Pairs(pairs),
            Family::Sequence { frames, stride, compare, .. } => {
                let n = frames.unwrap_or(0);
                let pts = (0..n as usize).map(|i| GridPoint::offset(i, 0.0, 0.0)).collect();
                let pairs = match compare {
                    Compare::Previous => (0..n.saturating_sub(stride) as usize).map(|k| (k, k + stride as usize)).collect(),
                    Compare::First => (1..n as usize).map(|k| (0, k)).collect(),
                };
                Shape::Frames(pts, pairs)
            }
            Family::Layers { ref shifts, .. } => {
                let mut pts = vec![GridPoint::offset(0, 0.0, 0.0)];
                for &s in shifts {
                    pts.push(GridPoint::offset(pts.len(), s as f32, 0.0));
                    pts.push(GridPoint::offset(pts.len(), 0.0, s as f32));
                }
                let pairs = (1..pts.len()).map(|p| (0, p)).collect();
                Shape::Frames(pts, pairs)
            }
            Family::Radius { max_radius, .. } => {
                let pts: Vec<GridPoint> = (0..=max_radius.min(MAX_RADIUS))
                    .flat_map(ring_offsets)
                    .enumerate()
                    .map(|(i, (dx, dy))| GridPoint::offset(i, dx as f32, dy as f32))
                    .collect();
                let pairs = (1..pts.len()).map(|p| (p, 0)).collect();
                Shape::Frames(pts, pairs)
            }
            Family::Rotate { from, to, step, .. } => Shape::Line(
                range(from, to, step).into_iter().enumerate().map(|(i, a)| GridPoint { angle: a, ..GridPoint::offset(i, 0.0, 0.0) }).collect(),
            ),
        }
    }

    /// A `diagonal`'s first offset, step and number of steps: `steps` (default
    /// 8) after `from` (default 0), or as many as reach `to`; `(0, 1, 0)` for
    /// other families.
    pub fn diagonal_line(&self) -> (f64, f32, usize) {
        match *self {
            Family::Diagonal { steps, from, to, step, .. } => {
                let from = from.unwrap_or(0) as f64;
                let n = match to {
                    Some(to) => steps_in(to as f64 - from, step).max(0) as usize,
                    None => steps.unwrap_or(super::DIAGONAL_STEPS) as usize,
                };
                (from, step, n)
            }
            _ => (0.0, 1.0, 0),
        }
    }

    /// The grid points in their fixed order.
    pub fn points(&self) -> Vec<GridPoint> {
        match self.shape() {
            Shape::Grid(m, s) => {
                let ax = Self::axis(m, s);
                ax.iter().flat_map(|&dy| ax.iter().map(move |&dx| (dx, dy))).enumerate().map(|(i, (dx, dy))| GridPoint::offset(i, dx, dy)).collect()
            }
            Shape::Line(p) | Shape::Frames(p, _) => p,
            Shape::Pairs(n) => (0..=2 * n as usize).map(|i| GridPoint::offset(i, 0.0, 0.0)).collect(),
        }
    }

    /// The points of one image: as [`Family::points`], except that `random_pairs`
    /// draws its offsets from the family's seed and the image index, so they are
    /// the same on every worker and every attempt, for a given room
    /// (`resize - input`) of the resized image's short side.
    pub fn image_points(&self, image_index: u32, side: u32) -> Vec<GridPoint> {
        let mut pts = self.points();
        if let Family::RandomPairs { max_offset, seed, resize, resample, .. } = *self {
            let room = resize.unwrap_or(side + 32).saturating_sub(side);
            let max = max_offset.unwrap_or(room).min(room) as u64;
            let mut rng = crate::rng::SplitMix(seed ^ (image_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let centre = crate::image::centre_offset(room, resample.compat) as i32;
            for p in pts.iter_mut().skip(1) {
                p.dx = ((rng.next_u64() % (max + 1)) as i32 - centre) as f32;
                p.dy = ((rng.next_u64() % (max + 1)) as i32 - centre) as f32;
            }
        }
        pts
    }

    /// Neighbour pairs `(a, b)` of point indices; pair metrics take `a` as first.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        match self.shape() {
            Shape::Grid(m, s) => {
                let n = Self::axis(m, s).len();
                let mut pairs = Vec::with_capacity(2 * n * n.saturating_sub(1));
                for r in 0..n {
                    for c in 0..n {
                        let i = r * n + c;
                        if c + 1 < n {
                            pairs.push((i, i + 1));
                        }
                        if r + 1 < n {
                            pairs.push((i, i + n));
                        }
                    }
                }
                pairs
            }
            Shape::Line(p) => (0..p.len().saturating_sub(1)).map(|c| (c, c + 1)).collect(),
            Shape::Pairs(n) => (0..n as usize).map(|i| (1 + 2 * i, 2 + 2 * i)).collect(),
            Shape::Frames(_, pairs) => pairs,
        }
    }

    /// Index of the reference (untransformed, centred) point.
    pub fn reference(&self) -> usize {
        if let Family::RandomPairs { .. } | Family::Sequence { .. } = self {
            return 0;
        }
        let pts = self.points();
        let key = |p: &GridPoint| (p.dx.abs() + p.dy.abs()) as f64 + (p.scale as f64 - 1.0).abs() + (p.angle as f64).abs();
        (0..pts.len()).min_by(|&a, &b| key(&pts[a]).total_cmp(&key(&pts[b])).then(a.cmp(&b))).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Resample, Rgb8};
    use crate::transform::testutil::NEAREST;

    #[test]
    fn crop_grid_is_row_major_with_centre_reference() {
        let f = Family::Crop { max_shift: 2, step: 2.0, resize: None, resample: Resample::default() };
        let pts = f.points();
        assert_eq!(pts.len(), 9);
        assert_eq!((pts[0].dx, pts[0].dy), (-2.0, -2.0));
        assert_eq!((pts[1].dx, pts[1].dy), (0.0, -2.0));
        assert_eq!((pts[3].dx, pts[3].dy), (-2.0, 0.0));
        assert_eq!(f.reference(), 4);
        // 3x3 grid: 6 horizontal + 6 vertical neighbour pairs.
        let pairs = f.pairs();
        assert_eq!(pairs.len(), 12);
        assert!(pairs.contains(&(0, 1)) && pairs.contains(&(0, 3)) && pairs.contains(&(7, 8)));
        assert!(!pairs.contains(&(2, 3)), "row ends are not neighbours");
    }

    #[test]
    fn radius_points_come_in_rings_around_the_reference() {
        let f: Family = toml::from_str("kind = \"radius\"\nmax_radius = 2").unwrap();
        let p = f.points();
        assert_eq!(p.len(), 25);
        assert_eq!((p[0].dx, p[0].dy), (0.0, 0.0));
        assert_eq!(ring_offsets(1), vec![(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)]);
        for r in 0..=2u32 {
            for i in Family::ring_indices(r) {
                assert_eq!(p[i].dx.abs().max(p[i].dy.abs()), r as f32, "point {i} is on ring {r}");
                assert_eq!(p[i].index as usize, i);
            }
        }
        assert_eq!(Family::ring_indices(2), 9..25);
        assert_eq!(f.pairs().len(), 24);
        assert_eq!(f.pairs()[0], (1, 0), "each point pairs with the reference, counted on the point");
        assert_eq!(f.reference(), 0);
        assert_eq!((f.first_ring(), f.points_per_image(1), f.points_per_image(2)), (Some(1), 9, 17));
        let s = f.shard_points(0, 32, 2);
        assert_eq!(s.len(), 17);
        assert_eq!((s[0].index, s[1].index), (0, 9));
        let f: Family = toml::from_str("kind = \"radius\"").unwrap();
        assert_eq!(f.points().len(), 17 * 17, "default max_radius 8");
        assert!(f.validate(Some(224)).is_ok(), "the default resize fits ring 8");
        let f: Family = toml::from_str("kind = \"radius\"\nmax_radius = 0").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "max_radius");
    }

    #[test]
    fn layers_points_move_along_each_axis_and_pair_with_the_reference() {
        let f: Family = toml::from_str("kind = \"layers\"\nshifts = [1, 4]").unwrap();
        let p: Vec<(f32, f32)> = f.points().iter().map(|g| (g.dx, g.dy)).collect();
        assert_eq!(p, vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (4.0, 0.0), (0.0, 4.0)]);
        assert_eq!(f.pairs(), vec![(0, 1), (0, 2), (0, 3), (0, 4)]);
        assert_eq!(f.reference(), 0);
        let f: Family = toml::from_str("kind = \"layers\"").unwrap();
        assert_eq!(f.points().len(), 13, "default shifts 1, 2, 4, 8, 16, 32");
        // The default resize fits the largest shift on both sides of the centre.
        assert!(f.validate(Some(224)).is_ok());
        let f: Family = toml::from_str("kind = \"layers\"\nresize = 250").unwrap();
        assert_eq!(f.validate(Some(224)).unwrap_err().0, "shifts");
        for bad in ["shifts = []", "shifts = [0, 1]", "shifts = [2, 2]"] {
            let f: Family = toml::from_str(&format!("kind = \"layers\"\n{bad}")).unwrap();
            assert_eq!(f.validate(None).unwrap_err().0, "shifts", "{bad}");
        }
    }

    #[test]
    fn diagonal_pairs_are_consecutive_steps() {
        let f: Family = toml::from_str("kind = \"diagonal\"\nsteps = 3").unwrap();
        let p = f.points();
        assert_eq!(p.iter().map(|g| (g.dx, g.dy)).collect::<Vec<_>>(), vec![(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]);
        assert_eq!(f.pairs(), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(f.reference(), 0);
        assert_eq!(f.points().len() as u32, 4);
        let f: Family = toml::from_str("kind = \"diagonal\"").unwrap();
        assert_eq!(f.points().len(), 9, "default: c = 0..=8");
    }

    #[test]
    fn centred_diagonal_runs_from_minus_k_to_k_with_the_middle_as_reference() {
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = -3\nto = 3").unwrap();
        let p = f.points();
        assert_eq!(p.iter().map(|g| g.dx).collect::<Vec<_>>(), vec![-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert!(p.iter().all(|g| g.dx == g.dy));
        assert_eq!(f.reference(), 3, "the unshifted window");
        assert_eq!(f.pairs().len(), 6);
        // `from` with `steps` counts from `from`.
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = -2\nsteps = 4").unwrap();
        assert_eq!(f.diagonal_line(), (-2.0, 1.0, 4));
        assert!(f.validate(Some(32)).is_ok());
        let f: Family = toml::from_str("kind = \"diagonal\"\nsteps = 4\nto = 4").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "to");
        let f: Family = toml::from_str("kind = \"diagonal\"\nfrom = 2\nto = 2").unwrap();
        assert_eq!(f.validate(None).unwrap_err().0, "to");
    }

    #[test]
    fn random_pairs_replay_per_image_and_stay_inside() {
        let f: Family = toml::from_str("kind = \"random_pairs\"\npairs = 3\nseed = 11").unwrap();
        assert_eq!(f.points().len(), 7);
        assert_eq!(f.pairs(), vec![(1, 2), (3, 4), (5, 6)]);
        assert_eq!(f.reference(), 0);
        let a = f.image_points(5, 32);
        assert_eq!(a, f.image_points(5, 32), "same image, same draws");
        assert_ne!(a, f.image_points(6, 32), "other image, other draws");
        assert_eq!((a[0].dx, a[0].dy), (0.0, 0.0), "point 0 is the centre crop");
        // Room 32 (resize 64, input 32): offsets from the corner 0..=32, centred at 16.
        for i in 0..500 {
            for p in f.image_points(i, 32) {
                assert!((-16.0..=16.0).contains(&p.dx) && (-16.0..=16.0).contains(&p.dy));
            }
        }
        let img = Rgb8::new(80, 64);
        let prep = f.prepare(&img, 32).unwrap();
        for p in f.image_points(3, 32) {
            prep.render(p);
        }
    }

    fn sequence(frames: u32, stride: u32, compare: Compare) -> Family {
        Family::Sequence { path: "s".into(), frames: Some(frames), stride, compare, resize: None, resample: NEAREST, labels: None, limit: None }
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
