//! An 8-bit interleaved bitmap and the pixel operations the renderer needs on it.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::spec::Rgb;

/// How the samples of a pixel are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::GreyAlpha => 2,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }
    pub fn has_alpha(self) -> bool {
        matches!(self, Channels::GreyAlpha | Channels::Rgba)
    }
    pub fn is_grey(self) -> bool {
        matches!(self, Channels::Grey | Channels::GreyAlpha)
    }
    fn pixel_type(self) -> PixelType {
        match self {
            Channels::Grey => PixelType::U8,
            Channels::GreyAlpha => PixelType::U8x2,
            Channels::Rgb => PixelType::U8x3,
            Channels::Rgba => PixelType::U8x4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    pub data: Vec<u8>,
}

impl Bitmap {
    pub fn new(width: u32, height: u32, channels: Channels, data: Vec<u8>) -> Self {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels.count()
        );
        Bitmap {
            width,
            height,
            channels,
            data,
        }
    }

    /// Turns the stored pixels upright according to an EXIF orientation (1..=8).
    pub fn oriented(self, orientation: u8) -> Bitmap {
        if !(2..=8).contains(&orientation) {
            return self;
        }
        let (w, h, n) = (
            self.width as usize,
            self.height as usize,
            self.channels.count(),
        );
        let swap = orientation >= 5;
        let (ow, oh) = if swap { (h, w) } else { (w, h) };
        let mut out = vec![0u8; self.data.len()];
        for y in 0..h {
            let row = &self.data[y * w * n..(y + 1) * w * n];
            for x in 0..w {
                // Where the stored pixel (x, y) lands in the upright image.
                let (ux, uy) = match orientation {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (h - 1 - y, x),
                    7 => (h - 1 - y, w - 1 - x),
                    _ => (y, w - 1 - x),
                };
                let at = (uy * ow + ux) * n;
                out[at..at + n].copy_from_slice(&row[x * n..(x + 1) * n]);
            }
        }
        Bitmap::new(ow as u32, oh as u32, self.channels, out)
    }

    /// Drops an alpha channel that is opaque everywhere (cheaper to resize and encode).
    pub fn without_opaque_alpha(self) -> Bitmap {
        let n = self.channels.count();
        if !self.channels.has_alpha() || self.data.chunks_exact(n).any(|p| p[n - 1] != 255) {
            return self;
        }
        let channels = if self.channels.is_grey() {
            Channels::Grey
        } else {
            Channels::Rgb
        };
        let data = self
            .data
            .chunks_exact(n)
            .flat_map(|p| p[..n - 1].iter().copied())
            .collect();
        Bitmap::new(self.width, self.height, channels, data)
    }

    /// Composites the image onto an opaque background colour.
    pub fn flattened(self, background: Rgb) -> Bitmap {
        if !self.channels.has_alpha() {
            return self;
        }
        let grey_bg = background.0 == background.1 && background.1 == background.2;
        let blend = |c: u8, a: u8, bg: u8| -> u8 {
            let (c, a, bg) = (u32::from(c), u32::from(a), u32::from(bg));
            ((c * a + bg * (255 - a) + 127) / 255) as u8
        };
        let (channels, data) = match self.channels {
            Channels::GreyAlpha if grey_bg => (
                Channels::Grey,
                self.data
                    .chunks_exact(2)
                    .map(|p| blend(p[0], p[1], background.0))
                    .collect(),
            ),
            Channels::GreyAlpha => (
                Channels::Rgb,
                self.data
                    .chunks_exact(2)
                    .flat_map(|p| {
                        [
                            blend(p[0], p[1], background.0),
                            blend(p[0], p[1], background.1),
                            blend(p[0], p[1], background.2),
                        ]
                    })
                    .collect(),
            ),
            _ => (
                Channels::Rgb,
                self.data
                    .chunks_exact(4)
                    .flat_map(|p| {
                        [
                            blend(p[0], p[3], background.0),
                            blend(p[1], p[3], background.1),
                            blend(p[2], p[3], background.2),
                        ]
                    })
                    .collect(),
            ),
        };
        Bitmap::new(self.width, self.height, channels, data)
    }

    /// The same pixels with the given channel layout (grey expands to RGB, alpha is added opaque).
    /// Never drops alpha or colour: callers flatten first.
    pub fn converted(self, to: Channels) -> Bitmap {
        if self.channels == to {
            return self;
        }
        let n = self.channels.count();
        let data: Vec<u8> = self
            .data
            .chunks_exact(n)
            .flat_map(|p| {
                let (rgb, a) = match self.channels {
                    Channels::Grey => ([p[0]; 3], 255),
                    Channels::GreyAlpha => ([p[0]; 3], p[1]),
                    Channels::Rgb => ([p[0], p[1], p[2]], 255),
                    Channels::Rgba => ([p[0], p[1], p[2]], p[3]),
                };
                let px: [u8; 4] = [rgb[0], rgb[1], rgb[2], a];
                let take: &[usize] = match to {
                    Channels::Grey => &[0],
                    Channels::GreyAlpha => &[0, 3],
                    Channels::Rgb => &[0, 1, 2],
                    Channels::Rgba => &[0, 1, 2, 3],
                };
                take.iter().map(move |&i| px[i]).collect::<Vec<u8>>()
            })
            .collect();
        Bitmap::new(self.width, self.height, to, data)
    }

    /// Lanczos3 resampling of the region (x, y, w, h) to `width`×`height` (alpha premultiplied).
    pub fn resized(
        &self,
        region: (f64, f64, f64, f64),
        width: u32,
        height: u32,
    ) -> Result<Bitmap, String> {
        let full = (0.0, 0.0, f64::from(self.width), f64::from(self.height));
        if region == full && (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let whole_pixels = |v: f64| v.fract() == 0.0 && v >= 0.0;
        if region.2 == f64::from(width)
            && region.3 == f64::from(height)
            && whole_pixels(region.0)
            && whole_pixels(region.1)
            && region.0 + region.2 <= full.2
            && region.1 + region.3 <= full.3
        {
            // Same size at whole-pixel offsets: a crop, row by row (a resample would copy them anyway).
            let bpp = self.channels.count();
            let (x, y) = (region.0 as usize, region.1 as usize);
            let (row, stride) = (width as usize * bpp, self.width as usize * bpp);
            let mut data = Vec::with_capacity(row * height as usize);
            for line in self.data.chunks_exact(stride).skip(y).take(height as usize) {
                data.extend_from_slice(&line[x * bpp..x * bpp + row]);
            }
            return Ok(Bitmap::new(width, height, self.channels, data));
        }
        let channels = self.channels;
        let src = ImageRef::new(self.width, self.height, &self.data, channels.pixel_type())
            .map_err(|e| format!("resize source: {e}"))?;
        let mut dst = Image::new(width, height, channels.pixel_type());
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(region.0, region.1, region.2, region.3);
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| format!("resize: {e}"))?;
        Ok(Bitmap::new(width, height, channels, dst.into_vec()))
    }

    /// This image placed at `offset` on a `width`×`height` canvas filled with `fill` (one pixel of
    /// the image's channel layout).
    pub fn placed_on_canvas(
        self,
        width: u32,
        height: u32,
        offset: (u32, u32),
        fill: &[u8],
    ) -> Bitmap {
        let n = self.channels.count();
        debug_assert_eq!(fill.len(), n);
        let mut data: Vec<u8> = fill
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * n)
            .collect();
        let row = self.width as usize * n;
        for y in 0..self.height as usize {
            let at = ((offset.1 as usize + y) * width as usize + offset.0 as usize) * n;
            data[at..at + row].copy_from_slice(&self.data[y * row..(y + 1) * row]);
        }
        Bitmap::new(width, height, self.channels, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3×2 image whose pixel values are their stored index.
    fn numbered() -> Bitmap {
        Bitmap::new(3, 2, Channels::Grey, vec![0, 1, 2, 3, 4, 5])
    }

    #[test]
    fn orientations_turn_pixels_upright() {
        // Stored pixels for each orientation of the upright image [[0,1,2],[3,4,5]].
        let cases: [(u8, u32, u32, Vec<u8>); 8] = [
            (1, 3, 2, vec![0, 1, 2, 3, 4, 5]),
            (2, 3, 2, vec![2, 1, 0, 5, 4, 3]),
            (3, 3, 2, vec![5, 4, 3, 2, 1, 0]),
            (4, 3, 2, vec![3, 4, 5, 0, 1, 2]),
            (5, 2, 3, vec![0, 3, 1, 4, 2, 5]),
            (6, 2, 3, vec![2, 5, 1, 4, 0, 3]),
            (7, 2, 3, vec![5, 2, 4, 1, 3, 0]),
            (8, 2, 3, vec![3, 0, 4, 1, 5, 2]),
        ];
        for (o, w, h, stored) in cases {
            let upright = Bitmap::new(w, h, Channels::Grey, stored).oriented(o);
            assert_eq!(upright, numbered(), "orientation {o}");
        }
    }

    #[test]
    fn flattening_blends_onto_background() {
        let rgba = Bitmap::new(2, 1, Channels::Rgba, vec![255, 0, 0, 255, 0, 0, 255, 0]);
        let flat = rgba.flattened(Rgb(0, 255, 0));
        assert_eq!(flat.channels, Channels::Rgb);
        assert_eq!(flat.data, vec![255, 0, 0, 0, 255, 0]);
        let half = Bitmap::new(1, 1, Channels::GreyAlpha, vec![0, 128]).flattened(Rgb::WHITE);
        assert_eq!((half.channels, half.data), (Channels::Grey, vec![127]));
    }

    #[test]
    fn canvas_letterboxes() {
        let img = Bitmap::new(1, 1, Channels::Grey, vec![9]).placed_on_canvas(3, 1, (1, 0), &[0]);
        assert_eq!(img.data, vec![0, 9, 0]);
    }
}
