//! An 8-bit RGB raster, and where a centred window of it starts.

use super::settings::Compat;

/// An 8-bit RGB image stored row-major, three bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major, RGB.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Rgb8 {
        Rgb8 { width, height, data: vec![0; width as usize * height as usize * 3] }
    }

    /// Wraps raw RGB bytes; `None` when the length does not match.
    pub fn from_raw(width: u32, height: u32, data: Vec<u8>) -> Option<Rgb8> {
        (data.len() == width as usize * height as usize * 3).then_some(Rgb8 { width, height, data })
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at (x, y).
    pub fn set_pixel(&mut self, x: u32, y: u32, p: [u8; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&p);
    }

    /// The `w` x `h` window whose top-left corner is (x, y); `None` if it does not fit.
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Option<Rgb8> {
        if x.checked_add(w)? > self.width || y.checked_add(h)? > self.height {
            return None;
        }
        let mut out = Rgb8::new(w, h);
        let row = w as usize * 3;
        for r in 0..h as usize {
            let s = ((y as usize + r) * self.width as usize + x as usize) * 3;
            out.data[r * row..(r + 1) * row].copy_from_slice(&self.data[s..s + row]);
        }
        Some(out)
    }

    /// The centred `side` x `side` square; `None` if the image is smaller.
    pub fn center_square(&self, side: u32) -> Option<Rgb8> {
        self.center_square_with(side, Compat::Float)
    }

    /// The centred `side` x `side` square, centred as `compat` centres it (see
    /// [`centre_offset`]); `None` if the image is smaller.
    pub fn center_square_with(&self, side: u32, compat: Compat) -> Option<Rgb8> {
        if side > self.width || side > self.height {
            return None;
        }
        self.crop(centre_offset(self.width - side, compat), centre_offset(self.height - side, compat), side, side)
    }
}

/// Where a centred window starts when `room` pixels are left over: `room / 2`
/// rounded down, or, with `compat = "torchvision"`, rounded half to even as
/// torchvision's `CenterCrop` does (`int(round(room / 2.0))` in Python).
pub fn centre_offset(room: u32, compat: Compat) -> u32 {
    let k = room / 2;
    if compat == Compat::Torchvision && room % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}
