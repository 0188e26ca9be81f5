//! Per-layer equivariance of `layers` sweeps: for each model, every probed node
//! in graph order with its mean error at each shift over images (and the two
//! axes), and the node where the one-pixel error jumps most: where the
//! sampling-theorem argument says equivariance breaks, read beside the model's
//! `subsampling` / `blurred` columns.

use jagged_artifacts::ResultRow;
use jagged_domain::spec::Structure;
use std::collections::BTreeMap;

/// One probed node as rows name it.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    node: String,
    op: String,
    factor: u32,
    blurred: bool,
}

/// What parts add to one (model, `layers` family) table: error sums by (node
/// position, shift).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerFold {
    nodes: Vec<Node>,
    sums: BTreeMap<(usize, u32), (f64, u64)>,
}

impl LayerFold {
    /// Adds a part's rows (rows without per-layer errors and reference rows add
    /// nothing). A point's shift is its larger offset: `layers` points move along
    /// one axis.
    pub fn add_rows(&mut self, rows: &[ResultRow]) {
        for r in rows.iter().filter(|r| !r.is_reference) {
            let Some(layers) = &r.layers else { continue };
            let shift = r.dx.abs().max(r.dy.abs()).round() as u32;
            for (j, l) in layers.iter().enumerate() {
                if j == self.nodes.len() {
                    self.nodes.push(Node { node: l.node.clone(), op: l.op.clone(), factor: l.factor, blurred: l.blurred });
                }
                if let Some(e) = l.error.filter(|e| e.is_finite()) {
                    let s = self.sums.entry((j, shift)).or_default();
                    s.0 += e;
                    s.1 += 1;
                }
            }
        }
    }

    /// Adds another fold of the same model and family.
    pub fn merge(&mut self, other: LayerFold) {
        if other.nodes.len() > self.nodes.len() {
            self.nodes = other.nodes;
        }
        for (k, (s, n)) in other.sums {
            let e = self.sums.entry(k).or_default();
            e.0 += s;
            e.1 += n;
        }
    }

    /// The table, or `None` when no row carried per-layer errors.
    pub fn finish(self, model: &str, family_label: &str, structure: Option<Structure>) -> Option<LayerTable> {
        if self.nodes.is_empty() {
            return None;
        }
        let shifts: Vec<u32> = {
            let mut s: Vec<u32> = self.sums.keys().map(|k| k.1).collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let nodes: Vec<LayerNode> = self
            .nodes
            .into_iter()
            .enumerate()
            .map(|(j, n)| LayerNode {
                errors: shifts.iter().map(|&s| self.sums.get(&(j, s)).filter(|v| v.1 > 0).map(|v| v.0 / v.1 as f64)).collect(),
                samples: shifts.iter().map(|&s| self.sums.get(&(j, s)).map_or(0, |v| v.1)).collect(),
                node: n.node,
                op: n.op,
                factor: n.factor,
                blurred: n.blurred,
            })
            .collect();
        let jump = largest_jump(&nodes, shifts.iter().position(|&s| s == 1));
        Some(LayerTable { model: model.to_string(), family_label: family_label.to_string(), shifts, nodes, jump, structure })
    }
}

/// The node whose one-pixel error rises most over the node before it (the
/// input counts as error 0: a window moved by one pixel is exactly the input
/// moved by one cell); pooled features are left out.
fn largest_jump(nodes: &[LayerNode], one: Option<usize>) -> Option<usize> {
    let one = one?;
    let mut prev = 0.0;
    let mut best: Option<(usize, f64)> = None;
    for (j, n) in nodes.iter().enumerate().filter(|(_, n)| n.factor > 0) {
        let Some(e) = n.errors[one] else { continue };
        let rise = e - prev;
        if best.is_none_or(|b| rise > b.1) {
            best = Some((j, rise));
        }
        prev = e;
    }
    best.map(|b| b.0)
}

/// One model's per-layer equivariance.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTable {
    /// Model name.
    pub model: String,
    /// Family label.
    pub family_label: String,
    /// Shifts in pixels, ascending (the table's columns).
    pub shifts: Vec<u32>,
    /// Probed nodes in graph order.
    pub nodes: Vec<LayerNode>,
    /// Index in `nodes` of the largest rise of the one-pixel error.
    pub jump: Option<usize>,
    /// The model's subsampling structure, as the summary shows it.
    pub structure: Option<Structure>,
}

/// One probed node's mean errors.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNode {
    /// Node name.
    pub node: String,
    /// Operator type.
    pub op: String,
    /// Cumulative factor; 0 for pooled features.
    pub factor: u32,
    /// Whether a low-pass filter precedes this subsampling output.
    pub blurred: bool,
    /// Mean error at each of the table's shifts (over images and both axes).
    pub errors: Vec<Option<f64>>,
    /// Errors averaged into each.
    pub samples: Vec<u64>,
}

impl LayerTable {
    /// The one-pixel error of every node (pooled features included), if the
    /// sweep had a one-pixel shift.
    pub fn one_pixel(&self) -> Vec<Option<f64>> {
        match self.shifts.iter().position(|&s| s == 1) {
            Some(i) => self.nodes.iter().map(|n| n.errors[i]).collect(),
            None => vec![None; self.nodes.len()],
        }
    }

    /// The one-pixel error of the first node of each factor in `factors` (the
    /// map right after each subsampling, the pooled features for 0): one point
    /// per factor, so models with different probes line up in a figure.
    pub fn by_factor(&self, factors: &[u32]) -> Vec<Option<f64>> {
        let one = self.one_pixel();
        factors.iter().map(|&k| self.nodes.iter().position(|n| n.factor == k).and_then(|j| one[j])).collect()
    }

    /// A sentence on where the one-pixel error jumps, beside the model's structure.
    pub fn finding(&self) -> String {
        let structure = match self.structure {
            Some(s) => format!("; the model subsamples by {} in {} ops, {} of them blurred", s.factor, s.subsampling_ops, s.blurred_ops),
            None => String::new(),
        };
        let Some(j) = self.jump else { return format!("{}: no one-pixel errors to compare{structure}.", self.model) };
        let n = &self.nodes[j];
        let one = self.one_pixel();
        let before = self.nodes[..j].iter().zip(&one).rev().find(|(m, _)| m.factor > 0).and_then(|(_, e)| *e).unwrap_or(0.0);
        format!(
            "{}: the one-pixel error jumps most at `{}` ({}, cumulative factor {}, {}), from {:.4} to {:.4}{structure}.",
            self.model,
            n.node,
            n.op,
            n.factor,
            if n.blurred { "blurred" } else { "not blurred" },
            before,
            one[j].unwrap_or(f64::NAN),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jagged_artifacts::LayerError;

    fn row(dx: f32, dy: f32, errors: &[Option<f64>]) -> ResultRow {
        let names = [("a", "Conv", 1), ("b", "Conv", 2), ("c", "Conv", 4), ("pool", "GlobalAveragePool", 0)];
        ResultRow {
            layers: Some(
                names
                    .iter()
                    .zip(errors)
                    .map(|(n, e)| LayerError { node: n.0.into(), op: n.1.into(), factor: n.2, blurred: false, error: *e })
                    .collect(),
            ),
            ..crate::test_row("layers", 0, dx, dy, 0)
        }
    }

    #[test]
    fn means_over_axes_and_images_and_the_largest_jump_by_hand() {
        let mut a = LayerFold::default();
        // Image 1: reference, then 1 px along x and y, 2 px along x.
        a.add_rows(&[
            row(0.0, 0.0, &[None, None, None, None]),
            row(1.0, 0.0, &[Some(0.0), Some(0.2), Some(0.3), Some(0.1)]),
            row(0.0, 1.0, &[Some(0.0), Some(0.4), Some(0.5), Some(0.1)]),
            row(2.0, 0.0, &[Some(0.0), Some(0.0), Some(0.6), None]),
        ]);
        let mut b = LayerFold::default();
        // Image 2 in another part.
        b.add_rows(&[row(1.0, 0.0, &[Some(0.1), Some(0.6), Some(0.7), Some(0.3)])]);
        a.merge(b);
        let t = a.finish("m", "layers", Some(Structure { factor: 4, subsampling_ops: 2, blurred_ops: 0 })).unwrap();
        assert_eq!(t.shifts, vec![1, 2]);
        let close = |x: Option<f64>, y: f64| x.is_some_and(|x| (x - y).abs() < 1e-12);
        // Node b at 1 px: (0.2 + 0.4 + 0.6) / 3 = 0.4; node c: (0.3 + 0.5 + 0.7) / 3 = 0.5.
        assert!(close(t.nodes[1].errors[0], 0.4) && close(t.nodes[2].errors[0], 0.5));
        assert!(close(t.nodes[0].errors[0], 0.1 / 3.0));
        assert_eq!(t.nodes[3].samples, vec![3, 0]);
        assert_eq!(t.nodes[3].errors[1], None);
        // Rises: a 0.033, b 0.367, c 0.1: the jump is at b.
        assert_eq!(t.jump, Some(1));
        let by = t.by_factor(&[1, 2, 4, 8, 0]);
        assert!(close(by[1], 0.4) && close(by[2], 0.5) && by[3].is_none() && close(by[4], (0.1 + 0.1 + 0.3) / 3.0), "{by:?}");
        let f = t.finding();
        assert!(f.contains("`b` (Conv, cumulative factor 2, not blurred), from 0.0333 to 0.4000"), "{f}");
        assert!(f.contains("subsamples by 4 in 2 ops, 0 of them blurred"), "{f}");
    }

    #[test]
    fn rows_without_layers_make_no_table() {
        let mut a = LayerFold::default();
        a.add_rows(&[ResultRow { layers: None, ..row(1.0, 0.0, &[]) }]);
        assert_eq!(a.finish("m", "layers", None), None);
    }
}
