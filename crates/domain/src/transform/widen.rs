//! Which rows of an earlier grid a wider (or otherwise changed) grid of the same
//! family can take as they are, and which points it must infer to write the rest.
//!
//! A row holds its point's own outputs and the metrics of its forward pairs
//! (the pairs whose first point it is), summed in the family's pair order, and
//! `p_ref_top1` from the reference point. So a point's row is the same in both
//! grids when the point itself is in both, the reference is the same point, and
//! its forward neighbours are the same points in the same order. Every other
//! point of the new grid is computed anew, which needs its own outputs and those
//! of its forward neighbours and of the reference: widening a 17x17 crop grid to
//! 21x21 writes the 152 new points and the 33 old ones on its far edges (whose
//! forward pairs now reach new points), and infers 32 more old points (31 next to
//! the new near edges, and the reference): 217 inferences of the 441 a full run
//! makes. Strictly only the new points cannot be had exactly: a new point's pair
//! with an old neighbour needs that neighbour's probability of the new point's
//! top class, which a row keeps only when it is in the neighbour's top 5.

use super::{Family, GridPoint};

/// How a family's grid takes rows from an earlier grid of the same family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widening {
    /// For each point of the new grid: the index of the same point in the old
    /// grid, whose row it takes as it is, or `None` when its row is computed anew.
    pub reused: Vec<Option<usize>>,
    /// The points of the new grid to infer, ascending: those computed anew,
    /// their forward neighbours and the reference.
    pub infer: Vec<usize>,
}

impl Widening {
    /// Points of the new grid whose rows are written anew, ascending.
    pub fn written(&self) -> Vec<usize> {
        self.reused.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i).collect()
    }
}

/// A point's place in its grid, bit for bit (the index aside).
fn at(p: &GridPoint) -> [u32; 4] {
    [p.dx.to_bits(), p.dy.to_bits(), p.scale.to_bits(), p.angle.to_bits()]
}

impl Family {
    /// How this family's grid takes rows from `old`'s, run on the same model and
    /// items: `None` when the two differ in more than their extent or have
    /// different reference points, or when no row could be taken.
    pub fn widening_of(&self, old: &Family) -> Option<Widening> {
        if self.without_extent()? != old.without_extent()? {
            return None;
        }
        let (new_pts, old_pts) = (self.points(), old.points());
        let (new_ref, old_ref) = (self.reference(), old.reference());
        if at(&new_pts[new_ref]) != at(&old_pts[old_ref]) {
            return None;
        }
        let forward = |pts: &[GridPoint], pairs: Vec<(usize, usize)>| {
            let mut fwd = vec![Vec::new(); pts.len()];
            for (a, b) in pairs {
                fwd[a].push(at(&pts[b]));
            }
            fwd
        };
        let (new_fwd, old_fwd) = (forward(&new_pts, self.pairs()), forward(&old_pts, old.pairs()));
        let old_at: std::collections::HashMap<[u32; 4], usize> = old_pts.iter().enumerate().map(|(i, p)| (at(p), i)).collect();
        let new_at: std::collections::HashMap<[u32; 4], usize> = new_pts.iter().enumerate().map(|(i, p)| (at(p), i)).collect();
        let reused: Vec<Option<usize>> =
            new_pts.iter().enumerate().map(|(i, p)| old_at.get(&at(p)).copied().filter(|&o| old_fwd[o] == new_fwd[i])).collect();
        if reused.iter().all(Option::is_none) {
            return None;
        }
        let mut infer = vec![false; new_pts.len()];
        for (i, r) in reused.iter().enumerate() {
            if r.is_none() {
                infer[i] = true;
                for q in &new_fwd[i] {
                    infer[new_at[q]] = true;
                }
                infer[new_ref] = true;
            }
        }
        Some(Widening { reused, infer: (0..infer.len()).filter(|&i| infer[i]).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testutil::{numbered, NEAREST};
    use crate::transform::{Circular, Crop, Embed, Rotate, Scale};

    fn crop(max_shift: u32) -> Family {
        Family::Crop(Crop { max_shift, step: 1.0, resize: Some(40), resample: NEAREST })
    }

    #[test]
    fn a_wider_crop_grid_writes_the_new_points_and_the_far_edges() {
        // 3x3 (offsets -1..1) to 5x5 (-2..2). Row-major, forward pairs go right and down.
        let w = crop(2).widening_of(&crop(1)).unwrap();
        assert_eq!(w.reused.len(), 25);
        // Reused: old points whose right and down neighbours are old points in the
        // new grid too: (-1,-1), (0,-1), (-1,0), (0,0); old indices 0, 1, 3, 4.
        let kept: Vec<(usize, usize)> = w.reused.iter().enumerate().filter_map(|(i, r)| r.map(|o| (i, o))).collect();
        assert_eq!(kept, vec![(6, 0), (7, 1), (11, 3), (12, 4)]);
        // Written: the 16 new points and the old far edges (1,-1), (1,0), (-1,1), (0,1), (1,1).
        let written = w.written();
        assert_eq!(written.len(), 21);
        for i in [8, 13, 16, 17, 18] {
            assert!(written.contains(&i), "old point {i} on a far edge is written anew");
        }
        // Inferred: every written point, plus (-1,-1), (0,-1), (-1,0) (right or down
        // neighbours of new points on the near edges) and the reference (0,0).
        let mut expect = written.clone();
        expect.extend([6, 7, 11, 12]);
        expect.sort();
        assert_eq!(w.infer, expect);
    }

    #[test]
    fn a_narrower_grid_takes_every_row_whose_pairs_it_keeps() {
        let w = crop(1).widening_of(&crop(2)).unwrap();
        // The 3x3 grid's right column and bottom row lose their forward pairs to
        // points the 5x5 grid had: written anew; the other four are taken.
        assert_eq!(w.reused.iter().filter(|r| r.is_some()).count(), 4);
        assert_eq!(w.written(), vec![2, 5, 6, 7, 8]);
        assert_eq!(w.infer, vec![2, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_longer_line_takes_the_shared_points() {
        let rot = |from: f32, to: f32| Family::Rotate(Rotate { from, to, step: 1.0, resize: Some(40), resample: NEAREST });
        let w = rot(-4.0, 4.0).widening_of(&rot(-2.0, 2.0)).unwrap();
        // Angles -4..4; old -2..2 at new indices 2..=6. Old 2 (its forward
        // neighbour is 3 now) and the new ones are written; 1 needs old -2 (index 2).
        assert_eq!(w.reused, vec![None, None, Some(0), Some(1), Some(2), Some(3), None, None, None]);
        assert_eq!(w.infer, vec![0, 1, 2, 4, 6, 7, 8]);
    }

    #[test]
    fn other_parameters_or_references_take_nothing() {
        let other_resize = Family::Crop(Crop { max_shift: 2, step: 1.0, resize: Some(48), resample: NEAREST });
        assert_eq!(other_resize.widening_of(&crop(1)), None);
        let other_step = Family::Crop(Crop { max_shift: 2, step: 2.0, resize: Some(40), resample: NEAREST });
        assert_eq!(other_step.widening_of(&crop(2)), None);
        let rot = |from: f32, to: f32| Family::Rotate(Rotate { from, to, step: 1.0, resize: Some(40), resample: NEAREST });
        // The reference is the point nearest 0 degrees: 5 here, 0 there.
        assert_eq!(rot(5.0, 9.0).widening_of(&rot(-2.0, 2.0)), None);
        let radius: Family = toml::from_str("kind = \"radius\"\nmax_radius = 2").unwrap();
        assert_eq!(radius.widening_of(&radius), None);
        let embed =
            Family::Embed(Embed { size: 10, crop: Default::default(), max_shift: 2, step: 1, background: Default::default(), resample: NEAREST });
        assert_eq!(embed.widening_of(&crop(1)), None);
    }

    #[test]
    fn the_same_grid_takes_every_row() {
        let w = crop(2).widening_of(&crop(2)).unwrap();
        assert!(w.reused.iter().enumerate().all(|(i, r)| *r == Some(i)));
        assert!(w.infer.is_empty());
    }

    /// The premise: a point renders to the same tensor whatever the extent of
    /// the grid around it, for every family that can be widened.
    #[test]
    fn shared_points_render_the_same_in_both_grids() {
        let img = numbered(60, 50);
        let pairs: Vec<(Family, Family)> = vec![
            (crop(2), crop(1)),
            (
                Family::Crop(Crop { max_shift: 2, step: 0.5, resize: Some(40), resample: NEAREST }),
                Family::Crop(Crop { max_shift: 1, step: 0.5, resize: Some(40), resample: NEAREST }),
            ),
            (
                Family::Embed(Embed { size: 10, crop: Default::default(), max_shift: 4, step: 2, background: Default::default(), resample: NEAREST }),
                Family::Embed(Embed { size: 10, crop: Default::default(), max_shift: 2, step: 2, background: Default::default(), resample: NEAREST }),
            ),
            (
                Family::Circular(Circular { max_shift: 3, step: 1, resize: Some(40), resample: NEAREST }),
                Family::Circular(Circular { max_shift: 1, step: 1, resize: Some(40), resample: NEAREST }),
            ),
            (
                Family::Rotate(Rotate { from: -6.0, to: 6.0, step: 2.0, resize: Some(40), resample: NEAREST }),
                Family::Rotate(Rotate { from: -2.0, to: 2.0, step: 2.0, resize: Some(40), resample: NEAREST }),
            ),
            (
                Family::Scale(Scale { from: 0.5, to: 1.5, step: 0.25, base: None, background: Default::default(), resample: NEAREST }),
                Family::Scale(Scale { from: 0.75, to: 1.25, step: 0.25, base: None, background: Default::default(), resample: NEAREST }),
            ),
            (
                toml::from_str("kind = \"diagonal\"\nsteps = 6\nresize = 40").unwrap(),
                toml::from_str("kind = \"diagonal\"\nsteps = 3\nresize = 40").unwrap(),
            ),
        ];
        for (new, old) in pairs {
            let w = new.widening_of(&old).unwrap_or_else(|| panic!("{} widens", new.name()));
            let (np, op) = (new.prepare(&img, 24).unwrap(), old.prepare(&img, 24).unwrap());
            let (new_pts, old_pts) = (new.points(), old.points());
            let mut shared = 0;
            for (i, p) in new_pts.iter().enumerate() {
                if let Some(o) = old_pts.iter().position(|q| at(q) == at(p)) {
                    assert_eq!(np.render(*p).data, op.render(old_pts[o]).data, "{} at {p:?}", new.name());
                    shared += 1;
                }
                if let Some(o) = w.reused[i] {
                    assert_eq!(at(&old_pts[o]), at(p));
                }
            }
            assert!(shared > 1, "{}: grids share points", new.name());
        }
    }
}
