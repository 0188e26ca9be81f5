//! Fair share across concurrent sweeps, by priority (stride scheduling).
//!
//! Each running sweep has a weight `2^priority` (priority clamped to -10..=10):
//! a sweep of priority 1 gets twice the work of one of priority 0, and none is
//! starved. Every claim charges the sweep its inferences divided by its weight
//! (its "pass"); the next claim goes to the sweep with the lowest pass that has
//! ready work. A sweep that starts late joins at the lowest pass of the others,
//! so it gets its share from then on, not a burst to catch up.
//!
//! The state is a soft cache in the coordinator: lost on restart, it starts
//! fair again from the sweeps' current state.

use std::collections::BTreeMap;

/// The priorities a sweep may have (submit refuses others).
pub const PRIORITIES: std::ops::RangeInclusive<i32> = -10..=10;

/// Weight of a sweep of `priority`.
pub fn weight(priority: i32) -> f64 {
    2f64.powi(priority.clamp(*PRIORITIES.start(), *PRIORITIES.end()))
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    weight: f64,
    pass: f64,
}

/// A running sweep and its priority (share 2^priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningSweep {
    /// Sweep id.
    pub id: i64,
    /// Its priority.
    pub priority: i32,
}

/// The running sweeps and their passes.
#[derive(Clone, Debug, Default)]
pub struct FairShare {
    sweeps: BTreeMap<i64, Entry>,
}

impl FairShare {
    /// Makes the set of sweeps `running`: new ones join at the lowest pass,
    /// finished ones leave, priorities are updated.
    pub fn sync(&mut self, running: &[RunningSweep]) {
        let floor = self.sweeps.values().map(|e| e.pass).fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 0.0 };
        self.sweeps.retain(|id, _| running.iter().any(|r| r.id == *id));
        for r in running {
            self.sweeps.entry(r.id).and_modify(|e| e.weight = weight(r.priority)).or_insert(Entry { weight: weight(r.priority), pass: floor });
        }
    }

    /// Sweeps in the order to try claiming from: lowest pass first, then
    /// higher weight, then oldest.
    pub fn order(&self) -> Vec<i64> {
        let mut v: Vec<(i64, Entry)> = self.sweeps.iter().map(|(k, e)| (*k, *e)).collect();
        v.sort_by(|a, b| a.1.pass.total_cmp(&b.1.pass).then(b.1.weight.total_cmp(&a.1.weight)).then(a.0.cmp(&b.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }

    /// Charges `sweep` for `work` (inferences) it was given.
    pub fn charge(&mut self, sweep: i64, work: f64) {
        if let Some(e) = self.sweeps.get_mut(&sweep) {
            e.pass += work / e.weight;
        }
    }

    /// Whether `sweep` is known.
    pub fn contains(&self, sweep: i64) -> bool {
        self.sweeps.contains_key(&sweep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweeps(v: &[(i64, i32)]) -> Vec<RunningSweep> {
        v.iter().map(|&(id, priority)| RunningSweep { id, priority }).collect()
    }

    /// Simulates `claims` claims of `work` each when every sweep always has work.
    fn run(fs: &mut FairShare, claims: usize, work: f64) -> BTreeMap<i64, usize> {
        let mut got = BTreeMap::new();
        for _ in 0..claims {
            let s = fs.order()[0];
            fs.charge(s, work);
            *got.entry(s).or_insert(0) += 1;
        }
        got
    }

    #[test]
    fn equal_priorities_share_equally() {
        let mut fs = FairShare::default();
        fs.sync(&sweeps(&[(1, 0), (2, 0), (3, 0)]));
        let got = run(&mut fs, 300, 10.0);
        assert_eq!(got.values().copied().collect::<Vec<_>>(), vec![100, 100, 100]);
    }

    #[test]
    fn share_follows_two_to_the_priority() {
        let mut fs = FairShare::default();
        fs.sync(&sweeps(&[(1, 0), (2, 1), (3, 2)]));
        let got = run(&mut fs, 700, 1.0);
        // Weights 1 : 2 : 4.
        assert_eq!((got[&1], got[&2], got[&3]), (100, 200, 400));
        assert_eq!(weight(-1), 0.5);
        assert_eq!(weight(99), 1024.0);
    }

    #[test]
    fn late_sweep_joins_at_the_floor_without_a_burst() {
        let mut fs = FairShare::default();
        fs.sync(&sweeps(&[(1, 0)]));
        run(&mut fs, 1000, 1.0);
        fs.sync(&sweeps(&[(1, 0), (2, 0)]));
        let got = run(&mut fs, 100, 1.0);
        assert_eq!((got[&1], got[&2]), (50, 50), "the newcomer gets its share, not all 1000 claims it missed");
    }

    #[test]
    fn finished_sweeps_leave_and_priorities_update() {
        let mut fs = FairShare::default();
        fs.sync(&sweeps(&[(1, 0), (2, 0)]));
        fs.sync(&sweeps(&[(2, 3)]));
        assert!(!fs.contains(1));
        assert_eq!(fs.order(), vec![2]);
        fs.sync(&sweeps(&[(2, 3), (5, 0)]));
        let got = run(&mut fs, 90, 1.0);
        assert_eq!((got[&2], got[&5]), (80, 10));
    }

    #[test]
    fn ties_go_to_the_heavier_then_older_sweep() {
        let mut fs = FairShare::default();
        fs.sync(&sweeps(&[(7, 0), (3, 0), (9, 2)]));
        assert_eq!(fs.order(), vec![9, 3, 7]);
    }
}
