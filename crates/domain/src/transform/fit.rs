//! Whether a family's points fit a model's input: windows inside the resized
//! image, or the image and its shifts inside the canvas.

use super::kind::FieldError;
use super::point::GridPoint;
use crate::image::Compat;

/// The largest offset of any point along either axis, whole pixels up.
pub(super) fn reach(points: &[GridPoint]) -> u32 {
    points.iter().map(|g| g.dx.abs().max(g.dy.abs()).ceil() as u32).max().unwrap_or(0)
}

/// Checks that `side` x `side` windows of an image whose short side is
/// `extent` (the value of `field`), centred as `compat` centres, may move by
/// up to `need` pixels without leaving it.
pub(super) fn window(extent: u32, side: u32, need: u32, compat: Compat, field: &str) -> Result<(), FieldError> {
    if extent < side {
        return Err((field.into(), format!("{extent} is smaller than the model input ({side})")));
    }
    if !room(extent, side, need, compat) {
        // The least extent that leaves the room (2 x need more than the input,
        // or one more when the compat's centring rounds against it).
        let least = (side + 2 * need..).find(|&e| room(e, side, need, compat)).unwrap_or(side + 2 * need);
        return Err(("max_shift".into(), format!("shifts up to {need} px need a {field} of at least {least} for input {side} (it is {extent})")));
    }
    Ok(())
}

/// Whether a centred `side` window of an `extent` image, centred as `compat`
/// centres it, may move `need` pixels either way.
fn room(extent: u32, side: u32, need: u32, compat: Compat) -> bool {
    // The centred window sits at (extent - side) / 2, rounded as the compat says.
    let lo = crate::image::centre_offset(extent - side, compat);
    need <= lo.min(extent - side - lo)
}

/// Checks that an image of side `extent` (the value of `field`) shifted by up
/// to `need` pixels stays inside a `side` x `side` canvas.
pub(super) fn canvas(extent: u32, side: u32, need: u32, field: &str) -> Result<(), FieldError> {
    if extent == 0 {
        return Err((field.into(), "must be at least 1".into()));
    }
    if extent > side {
        return Err((field.into(), format!("{extent} exceeds the model input ({side})")));
    }
    if need > (side - extent) / 2 {
        return Err(("max_shift".into(), format!("shifts up to {need} px do not fit a {extent} px image in a {side} px canvas")));
    }
    Ok(())
}
