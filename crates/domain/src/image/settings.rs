//! How pixels are made: the JPEG decoder, and the resampling settings
//! (filter, antialiasing, whose arithmetic) with the filters' kernels.

use serde::{Deserialize, Serialize};

/// Which JPEG decoder turns files into pixels (other formats have one decoder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum JpegDecoder {
    /// The `image` crate's (zune-jpeg): fast, pure Rust; 1-11% of pixels differ by
    /// a few levels from libjpeg-turbo's.
    #[default]
    #[serde(rename = "builtin")]
    Builtin,
    /// libjpeg-turbo's (the decoder inside Pillow and so torchvision's PIL
    /// pipeline): accurate integer IDCT, fancy upsampling; built from C source.
    #[serde(rename = "libjpeg-turbo")]
    LibjpegTurbo,
}

impl JpegDecoder {
    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            JpegDecoder::Builtin => "builtin",
            JpegDecoder::LibjpegTurbo => "libjpeg-turbo",
        }
    }
}

/// The interpolation filter of a resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Nearest neighbour (no antialiasing possible).
    Nearest,
    /// Triangle filter, support 1.
    Bilinear,
    /// Keys cubic with a = -0.5 (Pillow's and OpenCV's bicubic), support 2.
    #[default]
    Bicubic,
}

/// How images are resampled: filter plus whether downscales are antialiased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resample {
    /// Interpolation filter.
    #[serde(default)]
    pub filter: Filter,
    /// Stretch the filter by the scale factor when downscaling (Pillow does; plain
    /// OpenCV and TF do not).
    #[serde(default = "yes")]
    pub antialias: bool,
    /// Arithmetic of the resize: jagged's single-rounding `f32` or Pillow's.
    #[serde(default, skip_serializing_if = "Compat::is_float")]
    pub compat: Compat,
}

/// Whose arithmetic a resize follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// `f32` throughout, one rounding at the end.
    #[default]
    Float,
    /// Bit-identical to Pillow's `Image.resize`: fixed-point weights, 8-bit
    /// rounding after each pass. Pillow always antialiases downscales.
    Pillow,
    /// Pillow's arithmetic with torchvision's geometry (`Resize(n)` then
    /// `CenterCrop` on PIL images): the long side of a short-side resize is
    /// truncated (`int(n * long / short)`) rather than rounded, and centred
    /// windows start at `room / 2` rounded half to even.
    Torchvision,
}

impl Compat {
    fn is_float(&self) -> bool {
        *self == Compat::Float
    }
}

fn yes() -> bool {
    true
}

impl Default for Resample {
    fn default() -> Self {
        Resample { filter: Filter::Bicubic, antialias: true, compat: Compat::Float }
    }
}

impl Resample {
    /// Checks that the settings can be honoured; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.compat != Compat::Float && !self.antialias {
            return Err((
                "resample.antialias".into(),
                "must be true with compat = \"pillow\" or \"torchvision\" (Pillow always antialiases downscales)".into(),
            ));
        }
        Ok(())
    }
}

impl Filter {
    pub(crate) fn support(self) -> f32 {
        match self {
            Filter::Nearest => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    pub(super) fn weight(self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Filter::Nearest => {
                if x < 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f32 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}
