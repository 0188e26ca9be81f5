//! Grid arithmetic every family shares: ranges of values, steps, and the
//! points and neighbour pairs of each [`Shape`].

use super::kind::{FieldError, Shape};
use super::point::GridPoint;

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

/// Offsets `-max_shift..=max_shift` in steps of `step` (validated to divide
/// `max_shift`), each `i * step` computed in `f64`, so integer multiples are exact.
fn axis(max_shift: u32, step: f32) -> Vec<f32> {
    let n = steps_in(max_shift as f64, step).min(MAX_POINTS as i64);
    (-n..=n).map(|i| (i as f64 * step as f64) as f32).collect()
}

/// Points along a line of values, each placed by `at` (a scale, an angle).
pub(super) fn line(values: Vec<f32>, at: impl Fn(GridPoint, f32) -> GridPoint) -> Shape {
    Shape::Line(values.into_iter().enumerate().map(|(i, v)| at(GridPoint::offset(i, 0.0, 0.0), v)).collect())
}

/// A square grid's checks: `step` divides `max_shift`, and the grid stays within
/// [`MAX_POINTS`].
pub(super) fn check_square(max_shift: u32, step: f32) -> Result<(), FieldError> {
    if !divides(max_shift as f64, step) {
        return super::kind::field("step", format!("must divide max_shift ({max_shift}) so the grid holds (0, 0)"));
    }
    let n = (2 * steps_in(max_shift as f64, step) + 1) as usize;
    if n.saturating_mul(n) > MAX_POINTS {
        return super::kind::field("max_shift", format!("grid of {n}x{n} points exceeds the limit of {MAX_POINTS}"));
    }
    Ok(())
}

/// Checks a line of values (`from..=to` by `step`): a positive step, an
/// ordered range, and at most [`MAX_POINTS`] points.
pub(super) fn check_line(from: f32, to: f32, step: f32) -> Result<(), FieldError> {
    if !(step > 0.0 && step.is_finite()) {
        return super::kind::field("step", "must be a positive number");
    }
    if !(from.is_finite() && to.is_finite()) || to < from {
        return super::kind::field("to", format!("must be a number no smaller than from ({from})"));
    }
    if range(from, to, step).len() > MAX_POINTS {
        return super::kind::field("step", format!("gives more than {} points", MAX_POINTS));
    }
    Ok(())
}

impl Shape {
    /// The points in their fixed order.
    pub(super) fn points(self) -> Vec<GridPoint> {
        match self {
            Shape::Grid(m, s) => {
                let ax = axis(m, s);
                ax.iter().flat_map(|&dy| ax.iter().map(move |&dx| (dx, dy))).enumerate().map(|(i, (dx, dy))| GridPoint::offset(i, dx, dy)).collect()
            }
            Shape::Line(p) | Shape::Frames(p, _) => p,
            Shape::Pairs(n) => (0..=2 * n as usize).map(|i| GridPoint::offset(i, 0.0, 0.0)).collect(),
        }
    }

    /// Neighbour pairs `(a, b)` of point indices; pair metrics take `a` as first.
    pub(super) fn pairs(self) -> Vec<(usize, usize)> {
        match self {
            Shape::Grid(m, s) => {
                let n = axis(m, s).len();
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
}
