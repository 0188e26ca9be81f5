//! Images decoded into RGB rasters within limits: sizes read from the header
//! before any pixel is decoded, and truncated or corrupt files refused.

use crate::InferError;
use jagged_domain::image::{JpegDecoder, Rgb8};

/// Largest image accepted, in pixels (checked from the header, before decoding).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Decodes PNG, JPEG, WebP or TIFF bytes to RGB, refusing images over [`MAX_PIXELS`] before
/// allocating their pixels; JPEG with the builtin decoder.
pub fn decode_image(bytes: &[u8]) -> Result<Rgb8, InferError> {
    decode_image_with(bytes, JpegDecoder::Builtin)
}

/// [`decode_image`] with JPEG files read by `jpeg`.
pub fn decode_image_with(bytes: &[u8], jpeg: JpegDecoder) -> Result<Rgb8, InferError> {
    if bytes.is_empty() {
        return Err(InferError::Decode("empty file (0 bytes)".into()));
    }
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| InferError::Decode(format!("cannot read: {e}")))?;
    // Only formats read in full are tried; any other is named, never called corrupt.
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP | image::ImageFormat::Tiff) => {}
        Some(other) => {
            let name = other.extensions_str().first().map(|e| e.to_uppercase()).unwrap_or_else(|| format!("{other:?}"));
            return Err(InferError::Decode(format!("unsupported format {name} (jagged reads PNG, JPEG, WebP and TIFF)")));
        }
        None => return Err(InferError::Decode("unsupported format: not a PNG, JPEG, WebP or TIFF file (unknown signature)".into())),
    }
    // JPEG decoders fill a cut-off file with grey rather than fail: insist on the
    // end-of-image marker near the end (after any trailing padding).
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(InferError::Decode("corrupt image: truncated JPEG (no end-of-image marker)".into()));
        }
    }
    let format = reader.format();
    let (w, h) = reader.into_dimensions().map_err(|e| InferError::Decode(format!("corrupt image header: {e}")))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(InferError::Decode(format!("{w}x{h} pixels exceeds the limit of {MAX_PIXELS}")));
    }
    if format == Some(image::ImageFormat::Jpeg) && jpeg == JpegDecoder::LibjpegTurbo {
        return decode_libjpeg_turbo(bytes);
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().expect("read above");
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| InferError::Decode(format!("corrupt image: {e}")))?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(InferError::Decode("image has no pixels".into()));
    }
    Ok(Rgb8::from_raw(w, h, rgb.into_raw()).expect("rgb8 buffer size"))
}

/// Decodes a JPEG file with libjpeg-turbo's decoder as Pillow calls it: output in
/// RGB (greyscale replicated), the accurate integer IDCT, fancy upsampling.
fn decode_libjpeg_turbo(bytes: &[u8]) -> Result<Rgb8, InferError> {
    // libjpeg reports fatal errors by unwinding out of its error handler.
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<(usize, usize, Vec<u8>)> {
        let mut d = mozjpeg::Decompress::new_mem(bytes)?;
        if matches!(d.color_space(), mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK) {
            return Err(std::io::Error::other("CMYK JPEG: the libjpeg-turbo decoder gives RGB only for YCbCr, RGB and greyscale files"));
        }
        d.dct_method(mozjpeg::DctMethod::IntegerSlow);
        d.do_fancy_upsampling(true);
        let mut started = d.rgb()?;
        let (w, h) = (started.width(), started.height());
        let data = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((w, h, data))
    });
    let (w, h, data) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(InferError::Decode(format!("corrupt image: {e}"))),
        Err(panic) => {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            return Err(InferError::Decode(format!("corrupt image: {msg}")));
        }
    };
    if w == 0 || h == 0 {
        return Err(InferError::Decode("image has no pixels".into()));
    }
    Rgb8::from_raw(w as u32, h as u32, data).ok_or_else(|| InferError::Decode("corrupt image: short scanlines".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_png_pixels_exactly() {
        let img = decode_image(&png(5, 3)).unwrap();
        assert_eq!((img.width, img.height), (5, 3));
        assert_eq!(img.pixel(4, 2), [4, 2, 7]);
    }

    #[test]
    fn truncated_and_non_images_are_refused() {
        let mut bytes = png(64, 64);
        bytes.truncate(bytes.len() / 2);
        assert!(decode_image(&bytes).unwrap_err().to_string().contains("corrupt"));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9])))
            .write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .unwrap();
        let jpeg = jpeg.into_inner();
        assert!(decode_image(&jpeg).is_ok());
        assert!(decode_image(&jpeg[..jpeg.len() * 2 / 3]).unwrap_err().to_string().contains("truncated JPEG"));
        assert!(decode_image(b"just some text, not an image").unwrap_err().to_string().contains("unsupported format: not a PNG, JPEG, WebP or TIFF"));
        assert!(decode_image(b"").unwrap_err().to_string().ends_with("empty file (0 bytes)"));
    }
}
