//! What a family is: the [`FamilyKind`] trait each family's file implements,
//! and what it declares to the rest of the system (its grid's shape, where
//! its inputs can render, what the report does with it).

use super::{Family, GridPoint, Prepared};
use crate::image::{Resample, Rgb8};

/// A parameter that breaks a family, relative to it (`max_shift`), and why.
pub type FieldError = (String, String);

/// Refuses `field` with `message`.
pub(super) fn field<T>(field: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_string(), message.into()))
}

/// The shape of a family's grid: its points and neighbour pairs.
pub enum Shape {
    /// Offsets `-max_shift..=max_shift` in steps of `step` on both axes,
    /// row-major (dy outer); neighbours are horizontally and vertically
    /// adjacent points.
    Grid(u32, f32),
    /// Points in a line; neighbours are consecutive points.
    Line(Vec<GridPoint>),
    /// A centre point, then `n` independent pairs.
    Pairs(u32),
    /// Points with explicit neighbour pairs.
    Frames(Vec<GridPoint>, Vec<(usize, usize)>),
}

/// How a renderer inside the model's graph draws a family's inputs, where
/// it can (see `jagged_onnx::views`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InGraph {
    /// Plain windows of a prepared image.
    Windows,
    /// Rotations of a prepared image.
    Turns,
    /// Windows resampled at sub-pixel positions.
    Shifts,
}

/// Which parameter of a point a line of points varies, for figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The horizontal offset.
    Dx,
    /// The scale.
    Scale,
    /// The angle.
    Angle,
    /// The point's place in the line.
    Index,
}

/// The figures a report draws of a family's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Any at all (a heatmap of p(true class) per image and point).
    pub any: bool,
    /// Per-image traces along a line of points: what varies, and its label.
    pub line: Option<(Axis, &'static str)>,
    /// A map of mean p(true class) over a square grid of offsets.
    pub map: bool,
}

impl Figures {
    /// A heatmap and nothing else.
    pub const HEATMAP: Figures = Figures { any: true, line: None, map: false };
    /// A heatmap and a map over the grid of offsets.
    pub const GRID: Figures = Figures { any: true, line: None, map: true };
    /// No figures.
    pub const NONE: Figures = Figures { any: false, line: None, map: false };

    /// A heatmap and traces along `axis`, labelled `label`.
    pub const fn line(axis: Axis, label: &'static str) -> Figures {
        Figures { any: true, line: Some((axis, label)), map: false }
    }
}

/// What a report reads of a family beyond the summary columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// Nothing more.
    None,
    /// Per-layer equivariance errors from every row.
    Layers,
    /// Every point's top-1, ring by ring, up to this radius (robust radius).
    Radius(u32),
}

/// What each family defines; [`Family`] dispatches to it. Defaults fit the
/// families that run every point of their grid at once on a single image.
pub trait FamilyKind {
    /// The family's name as written in specs and result files.
    fn name(&self) -> &'static str;

    /// Its resampling settings.
    fn resample(&self) -> Resample;

    /// Checks its own parameters (not the fit to a model's input).
    fn check(&self) -> Result<(), FieldError>;

    /// Its grid.
    fn shape(&self) -> Shape;

    /// Checks that the points fit a model whose input is `side` x `side`.
    fn fit(&self, side: u32, points: &[GridPoint]) -> Result<(), FieldError>;

    /// Prepares one item (an image, or a sequence's frames in order) for
    /// rendering any point at model input `side` (fit checked before).
    fn prepare(&self, frames: &[Rgb8], side: u32, points: &[GridPoint]) -> Result<Prepared, String>;

    /// The family with its grid's extent taken out, where its points render
    /// the same whatever the extent (see [`Family::without_extent`]).
    fn without_extent(&self) -> Option<Family>;

    /// The reference point among `points`: by default the one nearest the
    /// identity (no offset, scale 1, angle 0), the first of equals.
    fn reference(&self, points: &[GridPoint]) -> usize {
        let key = |p: &GridPoint| (p.dx.abs() + p.dy.abs()) as f64 + (p.scale as f64 - 1.0).abs() + (p.angle as f64).abs();
        (0..points.len()).min_by(|&a, &b| key(&points[a]).total_cmp(&key(&points[b])).then(a.cmp(&b))).unwrap_or(0)
    }

    /// One image's points: the family's, unless they depend on the image.
    fn image_points(&self, points: Vec<GridPoint>, _image_index: u32, _side: u32) -> Vec<GridPoint> {
        points
    }

    /// Frames one item needs (sequences: their `frames`).
    fn frames_needed(&self) -> usize {
        1
    }

    /// The last ring of an adaptive search, for families whose shards run a
    /// ring at a time (see [`Family::first_ring`]).
    fn max_ring(&self) -> Option<u32> {
        None
    }

    /// The points a shard at `ring` runs of an image's `points`, the
    /// reference first (every point, for families not searched by rings).
    fn ring_points(&self, points: Vec<GridPoint>, _ring: u32) -> Vec<GridPoint> {
        points
    }

    /// Whether workers run the model with its probes exposed.
    fn probes(&self) -> bool {
        false
    }

    /// How the graph renders its inputs (`None`: only the host can): by
    /// default sub-pixel windows where any point is fractional, else plain
    /// windows where each prepared image gives them.
    fn in_graph(&self, points: &[GridPoint]) -> Option<InGraph> {
        Some(if points.iter().any(|p| p.is_subpixel()) { InGraph::Shifts } else { InGraph::Windows })
    }

    /// The figures a report draws.
    fn figures(&self) -> Figures;

    /// What a report reads beyond the summary.
    fn extra(&self) -> Extra {
        Extra::None
    }

    /// Whether the normalised (mFR, mT5D) table takes it when the spec names
    /// no families.
    fn normalised_by_default(&self) -> bool {
        true
    }
}
