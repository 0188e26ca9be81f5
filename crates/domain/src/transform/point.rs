//! What every family shares: a grid point, and the canvas settings several
//! families take.

use serde::{Deserialize, Serialize};

/// Pixel value of the `black` background, before normalisation.
pub const BLACK: u8 = 0;

/// One point of a family's grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Position in the family's point list.
    pub index: u32,
    /// Horizontal offset in pixels (positive: content window moves right);
    /// fractional for sub-pixel grids.
    pub dx: f32,
    /// Vertical offset in pixels (positive: content window moves down).
    pub dy: f32,
    /// Scale factor (1 for families that do not scale).
    pub scale: f32,
    /// Angle in degrees: a rotation, counter-clockwise (`rotate`), or a
    /// horizontal shear (`shear`); 0 for other families.
    pub angle: f32,
}

impl GridPoint {
    /// The point at `index` moved by `(dx, dy)`, at scale 1 and angle 0.
    pub fn offset(index: usize, dx: f32, dy: f32) -> GridPoint {
        GridPoint { index: index as u32, dx, dy, scale: 1.0, angle: 0.0 }
    }

    /// Whether the offset has a fractional part (rendered by interpolation).
    pub fn is_subpixel(&self) -> bool {
        self.dx.fract() != 0.0 || self.dy.fract() != 0.0
    }
}

/// Canvas background for `embed`, `scale` and `diagonal` on an embed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// Pixel value 0 before normalisation.
    #[default]
    Black,
    /// The normalisation mean: 0 after normalisation.
    Mean,
    /// Filled from the image's edges by repeated normalised convolution (see
    /// [`super::inpaint`]), as the paper's released `InpaintingFunction` does.
    Inpaint,
}

/// How `embed` (and `diagonal` on an embed) fits the image into `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmbedCrop {
    /// Short side resized to `size`, then the centred `size` x `size` square.
    #[default]
    Square,
    /// The whole image, aspect kept, resized so its long side is `size`.
    None,
}

/// A default of 1 for serde.
pub(super) fn one() -> u32 {
    1
}

/// A default of 1.0 for serde.
pub(super) fn one_f() -> f32 {
    1.0
}
