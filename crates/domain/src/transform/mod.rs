//! Transform families: parameter grids, neighbour relations, and rendering of
//! one grid point straight into a model input tensor (`S` x `S`, S = the model's
//! input side).
//!
//! One file per family, each holding all of that family's behaviour: its
//! parameters (the struct a spec's `[[families]]` table reads into), their
//! checks, its grid and neighbour pairs, how its points fit a model's input,
//! how an image is prepared and each point drawn, how its grid widens, and
//! what a report does with it. Each implements [`FamilyKind`] (`kind.rs`);
//! [`Family`] is the enum over them, and [`Family::kind`] the one place that
//! dispatches. Adding a family is a new file and one line in `families!`
//! below.
//!
//! - `crop.rs`, `embed.rs`, `diagonal.rs`, `circular.rs`: shifts on a square
//!   grid or a line (Azulay & Weiss's "Crop" and "Black", the paper's
//!   diagonal steps, circular shifts);
//! - `scale.rs`, `rotate.rs`, `shear.rs`: a line of scales or angles
//!   (ImageNet-P);
//! - `random_pairs.rs`: Zhang's consistency pairs;
//! - `sequence.rs`: user-provided frame sequences;
//! - `layers.rs`: per-layer equivariance probes;
//! - `radius.rs`: robust radius, searched ring by ring.
//!
//! What families share: `point.rs` (grid points, backgrounds), `grid.rs`
//! (ranges and grid shapes), `fit.rs` (windows and canvases that must fit),
//! `prepared.rs` (a prepared image and what renderers on the device need),
//! `window.rs` (windows of a resized image, whole or sub-pixel), `canvas.rs`
//! (an image pasted on a canvas), `warp.rs` (bilinear warps about the
//! centre), `subpixel.rs` (Kaiser-windowed sinc taps), `inpaint.rs` (the
//! paper's inpainting), and `widen.rs` (rows a wider grid takes from a
//! narrower one).
//!
//! Each parameter name means one thing in every family: `resize` is the short
//! side of the resized image that windows are cut from, `size` the side (or
//! long side) of an image embedded in the canvas. Grids of offsets are
//! `-max_shift..=max_shift` in steps of `step` on both axes, row-major (dy
//! outer); neighbours are horizontally and vertically adjacent points; the
//! reference is `(0, 0)`. One-dimensional families pair consecutive points;
//! their reference is the point nearest the identity.

mod canvas;
mod circular;
mod crop;
mod diagonal;
mod embed;
mod fit;
mod grid;
mod inpaint;
mod kind;
mod layers;
mod point;
mod prepared;
mod radius;
mod random_pairs;
mod rotate;
mod scale;
mod sequence;
mod shear;
mod subpixel;
mod warp;
mod widen;
mod window;

pub use circular::Circular;
pub use crop::Crop;
pub use diagonal::{Diagonal, DiagonalBase, DIAGONAL_STEPS};
pub use embed::Embed;
pub use grid::MAX_POINTS;
pub use inpaint::{inpaint, INPAINT_ITERATIONS, INPAINT_MAX_UNFILLED};
pub use kind::{Axis, Extra, FamilyKind, FieldError, Figures, InGraph, Shape};
pub use layers::{layer_shifts, Layers};
pub use point::{Background, EmbedCrop, GridPoint, BLACK};
pub use prepared::{Normalize, Prepared, Shift, Turn, View};
pub use radius::{ring_indices, Radius, MAX_RADIUS};
pub use random_pairs::RandomPairs;
pub use rotate::Rotate;
pub use scale::Scale;
pub use sequence::{Compare, Sequence};
pub use shear::{Shear, MAX_SHEAR};
pub use subpixel::{padded_taps, sample_plane, KAISER_BETA, SINC_HALF_WIDTH, TAPS};
pub use warp::rotation_offsets;
pub use widen::Widening;

use crate::image::{Resample, Rgb8};
use serde::{Deserialize, Serialize};

/// Declares [`Family`], one variant per family's struct, and the one match
/// that dispatches to each family's [`FamilyKind`].
macro_rules! families {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)+) => {
        /// One transform family with its grid, as written in the sweep spec
        /// (`kind = "crop"`, ...): each variant holds its family's parameters,
        /// defined with all of its behaviour in its own file.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Family {
            $($(#[$doc])* $variant($ty),)+
        }

        impl Family {
            /// The family's behaviour.
            pub fn kind(&self) -> &dyn FamilyKind {
                match self {
                    $(Family::$variant(f) => f,)+
                }
            }
        }
    };
}

families! {
    /// Shifted windows of a resized image (`crop.rs`).
    Crop(Crop),
    /// A downscaled image pasted on a canvas at shifted positions (`embed.rs`).
    Embed(Embed),
    /// One-pixel diagonal steps (`diagonal.rs`).
    Diagonal(Diagonal),
    /// Circular shifts of the centre crop (`circular.rs`).
    Circular(Circular),
    /// The image at a sweep of scales (`scale.rs`).
    Scale(Scale),
    /// Zhang's random pairs of crops (`random_pairs.rs`).
    RandomPairs(RandomPairs),
    /// Frames of user-provided sequences (`sequence.rs`).
    Sequence(Sequence),
    /// Per-layer equivariance probes (`layers.rs`).
    Layers(Layers),
    /// Robust radius by adaptive search (`radius.rs`).
    Radius(Radius),
    /// The crop window rotated about its centre (`rotate.rs`).
    Rotate(Rotate),
    /// The crop window sheared horizontally about its centre (`shear.rs`).
    Shear(Shear),
}

impl Family {
    /// The family's name as written in specs and result files.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The family's resampling settings.
    pub fn resample(&self) -> Resample {
        self.kind().resample()
    }

    /// Checks the family's own parameters and that its grid fits a model whose input
    /// is `side` x `side`. Errors name the offending field, relative to the family.
    pub fn validate(&self, side: Option<u32>) -> Result<(), FieldError> {
        self.resample().validate()?;
        self.kind().check()?;
        if let Some(side) = side {
            self.kind().fit(side, &self.points())?;
        }
        Ok(())
    }

    /// The grid points in their fixed order.
    pub fn points(&self) -> Vec<GridPoint> {
        self.kind().shape().points()
    }

    /// Neighbour pairs `(a, b)` of point indices; pair metrics take `a` as first.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        self.kind().shape().pairs()
    }

    /// Index of the reference (untransformed, centred) point.
    pub fn reference(&self) -> usize {
        self.kind().reference(&self.points())
    }

    /// The points of one image: as [`Family::points`], except where a family
    /// draws them per image (`random_pairs`, from its seed and the image
    /// index, the same on every worker and attempt).
    pub fn image_points(&self, image_index: u32, side: u32) -> Vec<GridPoint> {
        self.kind().image_points(self.points(), image_index, side)
    }

    /// Frames one item needs: the family's `frames` for `sequence`, else 1.
    pub fn frames_needed(&self) -> usize {
        self.kind().frames_needed()
    }

    /// Prepares one item (an image, or a sequence's frames in order) for rendering
    /// the grid at model input `side`.
    pub fn prepare_item(&self, frames: &[Rgb8], side: u32) -> Result<Prepared, String> {
        let points = self.points();
        self.kind().fit(side, &points).map_err(|(f, m)| format!("{f}: {m}"))?;
        self.kind().prepare(frames, side, &points)
    }

    /// Prepares one decoded image for rendering the grid at model input `side`: the
    /// resizes are done once per image and shared by all points.
    pub fn prepare(&self, img: &Rgb8, side: u32) -> Result<Prepared, String> {
        self.prepare_item(std::slice::from_ref(img), side)
    }

    /// The family with its grid's extent taken out (`max_shift`, `from`/`to`,
    /// `steps`), for the families whose points render the same whatever the
    /// extent; `None` for the others (random pairs, sequences, per-layer probes,
    /// adaptive radius searches), whose rows depend on more than their point.
    pub fn without_extent(&self) -> Option<Family> {
        self.kind().without_extent()
    }

    /// The ring a shard of this family starts at: 1 for a family searched ring
    /// by ring (the reference and ring 1), `None` for families that run every
    /// point at once.
    pub fn first_ring(&self) -> Option<u32> {
        self.kind().max_ring().map(|_| 1)
    }

    /// The last ring a shard of this family runs: `max_radius` for `radius`,
    /// 0 for families that run every point at once.
    pub fn last_ring(&self) -> u32 {
        self.kind().max_ring().unwrap_or(0)
    }

    /// Points a shard runs per image: ring `ring` with the reference for
    /// `radius` (`1 + 8 ring`), else every point.
    pub fn points_per_image(&self, ring: u32) -> usize {
        self.kind().ring_points(self.points(), ring).len()
    }

    /// The points a shard at `ring` runs for one image, the reference first:
    /// for `radius`, the reference and ring `ring`; else [`Family::image_points`].
    pub fn shard_points(&self, image_index: u32, side: u32, ring: u32) -> Vec<GridPoint> {
        self.kind().ring_points(self.image_points(image_index, side), ring)
    }

    /// How a renderer in the model's graph draws this family's inputs, where
    /// one can (`None`: only the host renders them).
    pub fn in_graph(&self) -> Option<InGraph> {
        self.kind().in_graph(&self.points())
    }

    /// Whether workers run the model with its probes exposed (`layers`).
    pub fn probes(&self) -> bool {
        self.kind().probes()
    }

    /// The figures a report draws of this family's results.
    pub fn figures(&self) -> Figures {
        self.kind().figures()
    }

    /// What a report reads of this family beyond the summary columns.
    pub fn extra(&self) -> Extra {
        self.kind().extra()
    }

    /// Whether the normalised (mFR, mT5D) table takes this family when the
    /// spec names none (all but `random_pairs`).
    pub fn normalised_by_default(&self) -> bool {
        self.kind().normalised_by_default()
    }

    /// The sequence family's parameters, for a family of sequences.
    pub fn as_sequence(&self) -> Option<&Sequence> {
        match self {
            Family::Sequence(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Normalize;
    use crate::image::{Filter, Resample, Rgb8};

    /// An image whose pixel (x, y) is (x, y, 200).
    pub fn numbered(w: u32, h: u32) -> Rgb8 {
        let mut img = Rgb8::new(w, h);
        for y in 0..h {
            for x in 0..w {
                img.set_pixel(x, y, [x as u8, y as u8, 200]);
            }
        }
        img
    }

    pub const NEAREST: Resample = Resample { filter: Filter::Nearest, antialias: false, compat: crate::image::Compat::Float };
    pub const ID: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };
}

#[cfg(test)]
mod tests;
