//! The shard planner: a pure function from a resolved sweep (and the measured
//! throughput of its models) to its shards.
//!
//! A shard is one model x one family x a contiguous range of images, with every
//! grid point of each of its images, so neighbour metrics are computed on full
//! probability vectors inside one worker. Shards are ordered model-major so a
//! worker that takes consecutive shards keeps one model loaded.

use crate::spec::ResolvedSweep;
use serde::{Deserialize, Serialize};

/// One planned shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedShard {
    /// Index into the sweep's models.
    pub model: u32,
    /// Index into the sweep's families.
    pub family: u32,
    /// First image index (inclusive).
    pub image_lo: u32,
    /// Last image index (exclusive).
    pub image_hi: u32,
    /// The ring an adaptive (`radius`) shard searches; 0 for other families.
    pub ring: u32,
}

/// Images per shard for a family with `points` grid points.
pub fn images_per_shard(explicit: Option<u32>, target_inferences: u32, points: usize) -> u32 {
    explicit.unwrap_or_else(|| (target_inferences as usize / points.max(1)).max(1) as u32)
}

/// Most images a shard sized from throughput gets.
pub const MAX_SIZED_IMAGES: u32 = 100_000;

/// Images per shard: `explicit` if given; else enough for `target_seconds` at
/// `per_sec` inferences per second when measured; else about
/// `target_inferences` inferences.
pub fn images_for(explicit: Option<u32>, target_seconds: f64, per_sec: Option<f64>, target_inferences: u32, points: usize) -> u32 {
    match (explicit, per_sec) {
        (Some(n), _) => n,
        (None, Some(r)) if r.is_finite() && r > 0.0 => {
            ((target_seconds * r / points.max(1) as f64).round() as u64).clamp(1, MAX_SIZED_IMAGES as u64) as u32
        }
        _ => images_per_shard(None, target_inferences, points),
    }
}

/// Plans the shards without throughput measurements ([`plan_sized`]).
pub fn plan(sweep: &ResolvedSweep) -> Vec<PlannedShard> {
    plan_sized(sweep, &[])
}

/// Plans the shards; `per_sec[m]` is model `m`'s measured inferences per
/// second, if any. The same sweep and measurements always give the same
/// shards, in the same order.
pub fn plan_sized(sweep: &ResolvedSweep, per_sec: &[Option<f64>]) -> Vec<PlannedShard> {
    let mut out = Vec::new();
    let shard = &sweep.spec.shard;
    for m in 0..sweep.models.len() as u32 {
        let rate = per_sec.get(m as usize).copied().flatten();
        for (f, fam) in sweep.spec.families.iter().enumerate() {
            let n = sweep.items(f).len() as u32;
            let ring = fam.first_ring().unwrap_or(0);
            let per = images_for(shard.images, shard.target_seconds, rate, shard.target_inferences, fam.points_per_image(ring));
            let mut lo = 0;
            while lo < n {
                let hi = (lo + per).min(n);
                out.push(PlannedShard { model: m, family: f as u32, image_lo: lo, image_hi: hi, ring });
                lo = hi;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ImageRef, ResolvedModel, SweepSpec};

    fn sweep(images: usize, models: usize, shard_images: Option<u32>) -> ResolvedSweep {
        let mut text = String::from("name = \"p\"\n[dataset]\npath = \"d\"\n");
        for _ in 0..models {
            text.push_str("[[models]]\npath = \"m.onnx\"\n");
        }
        text.push_str("[[families]]\nkind = \"crop\"\nmax_shift = 1\n[[families]]\nkind = \"diagonal\"\nsteps = 3\n");
        if let Some(s) = shard_images {
            text.push_str(&format!("[shard]\nimages = {s}\n"));
        }
        let spec = SweepSpec::from_toml(&text).unwrap();
        let card = crate::spec::test_card();
        ResolvedSweep {
            spec,
            models: (0..models).map(|i| ResolvedModel { name: format!("m{i}"), key: "k".into(), card: card.clone(), structure: None }).collect(),
            images: (0..images).map(|i| ImageRef { name: format!("{i}.png"), key: "k".into(), label: Some(1), frames: vec![] }).collect(),
            family_items: Default::default(),
        }
    }

    #[test]
    fn every_image_point_is_planned_exactly_once() {
        let s = sweep(10, 2, Some(3));
        let shards = plan(&s);
        // 2 models x 2 families x ceil(10/3) = 16 shards
        assert_eq!(shards.len(), 16);
        for m in 0..2 {
            for f in 0..2 {
                let mut covered = [0; 10];
                for sh in shards.iter().filter(|s| s.model == m && s.family == f) {
                    (sh.image_lo..sh.image_hi).for_each(|i| covered[i as usize] += 1);
                }
                assert!(covered.iter().all(|&c| c == 1));
            }
        }
    }

    #[test]
    fn planning_twice_changes_nothing() {
        for (imgs, models, per) in [(1, 1, None), (7, 3, Some(2)), (100, 2, None), (33, 1, Some(33))] {
            let s = sweep(imgs, models, per);
            assert_eq!(plan(&s), plan(&s));
        }
    }

    #[test]
    fn measured_throughput_sizes_shards_to_the_target_seconds() {
        // 30 s at 90 inferences/s over 9-point grids: 300 images.
        assert_eq!(images_for(None, 30.0, Some(90.0), 1024, 9), 300);
        assert_eq!(images_for(Some(4), 30.0, Some(90.0), 1024, 9), 4, "explicit wins");
        assert_eq!(images_for(None, 30.0, None, 1024, 9), 113, "unmeasured: target_inferences");
        assert_eq!(images_for(None, 30.0, Some(0.001), 1024, 9), 1);
        assert_eq!(images_for(None, 30.0, Some(f64::NAN), 1024, 9), 113);
        assert_eq!(images_for(None, 86_400.0, Some(1e9), 1024, 1), MAX_SIZED_IMAGES);
        let s = sweep(1000, 2, None);
        let shards = plan_sized(&s, &[Some(9.0), None]);
        // Model 0: 30 s x 9/s = 270 inferences: 30 images of the crop (9 points), 67 of the diagonal (4).
        let sizes = |m: u32, f: u32| shards.iter().filter(|x| x.model == m && x.family == f).map(|x| x.image_hi - x.image_lo).max().unwrap();
        assert_eq!((sizes(0, 0), sizes(0, 1)), (30, 68));
        assert_eq!((sizes(1, 0), sizes(1, 1)), (113, 256));
    }

    #[test]
    fn default_shard_size_targets_inferences() {
        // crop max_shift 1: 9 points; 1024 / 9 = 113 images per shard
        assert_eq!(images_per_shard(None, 1024, 9), 113);
        assert_eq!(images_per_shard(None, 4, 9), 1);
        assert_eq!(images_per_shard(Some(5), 1024, 9), 5);
    }

    /// Families of every kind whose shards run all their points at once, and
    /// one searched ring by ring.
    const FAMILIES: [&str; 9] = [
        "kind = \"crop\"\nmax_shift = 2",
        "kind = \"embed\"\nsize = 100\nmax_shift = 4\nstep = 2",
        "kind = \"diagonal\"\nfrom = -3\nto = 3",
        "kind = \"circular\"\nmax_shift = 1",
        "kind = \"scale\"\nfrom = 0.5\nto = 1.0\nstep = 0.25",
        "kind = \"random_pairs\"\npairs = 3\nseed = 5",
        "kind = \"rotate\"\nfrom = -2.0\nto = 2.0",
        "kind = \"shear\"\nfrom = -4.0\nto = 4.0\nstep = 2.0",
        "kind = \"radius\"\nmax_radius = 3",
    ];

    fn sweep_of(images: usize, models: usize, families: &[usize], shard: &str) -> ResolvedSweep {
        let mut text = String::from("name = \"p\"\n[dataset]\npath = \"d\"\n");
        for _ in 0..models {
            text.push_str("[[models]]\npath = \"m.onnx\"\n");
        }
        // Each family once (a family listed twice is refused).
        for (i, &f) in families.iter().enumerate() {
            if !families[..i].contains(&f) {
                text.push_str(&format!("[[families]]\n{}\n", FAMILIES[f]));
            }
        }
        text.push_str(shard);
        let spec = SweepSpec::from_toml(&text).unwrap();
        let card = crate::spec::test_card();
        ResolvedSweep {
            spec,
            models: (0..models).map(|i| ResolvedModel { name: format!("m{i}"), key: format!("k{i}"), card: card.clone(), structure: None }).collect(),
            images: (0..images).map(|i| ImageRef { name: format!("{i}.png"), key: "k".into(), label: Some(1), frames: vec![] }).collect(),
            family_items: Default::default(),
        }
    }

    proptest::proptest! {
        // Failing cases are printed, not saved in the source tree.
        #![proptest_config(proptest::test_runner::Config { failure_persistence: None, ..Default::default() })]

        /// Whatever the sweep and the measured rates: planning twice gives the
        /// same shards, and every (model, family, image, point) a shard runs
        /// lies in exactly one shard, every one of the sweep's included (a
        /// family searched by rings: every point of its first ring).
        #[test]
        fn every_image_point_is_in_exactly_one_shard_and_planning_is_stable(
            images in 0usize..300,
            models in 1usize..4,
            families in proptest::collection::vec(0usize..FAMILIES.len(), 1..5),
            explicit in proptest::option::of(1u32..60),
            target_inferences in 1u32..3000,
            target_seconds in 1.0f64..120.0,
            rates in proptest::collection::vec(proptest::option::of(0.01f64..5000.0), 0..4),
        ) {
            let shard = match explicit {
                Some(n) => format!("[shard]\nimages = {n}\n"),
                None => format!("[shard]\ntarget_inferences = {target_inferences}\ntarget_seconds = {target_seconds}\n"),
            };
            let s = sweep_of(images, models, &families, &shard);
            let shards = plan_sized(&s, &rates);
            proptest::prop_assert_eq!(&shards, &plan_sized(&s, &rates));
            let side = s.models[0].card.input_size;
            let mut seen = std::collections::HashSet::new();
            for sh in &shards {
                proptest::prop_assert!(sh.image_lo < sh.image_hi && sh.image_hi as usize <= images);
                let fam = &s.spec.families[sh.family as usize];
                for image in sh.image_lo..sh.image_hi {
                    for p in fam.shard_points(image, side, sh.ring) {
                        proptest::prop_assert!(seen.insert((sh.model, sh.family, image, p.index)), "{:?} planned twice", (sh, image, p.index));
                    }
                }
            }
            let per_image: usize = s.spec.families.iter().map(|f| f.points_per_image(f.first_ring().unwrap_or(0))).sum();
            proptest::prop_assert_eq!(seen.len(), models * images * per_image);
        }
    }
}
