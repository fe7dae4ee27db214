//! Encoding the final bitmap: JPEG (jpeg-encoder), PNG (png via image), lossy WebP (libwebp).

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::bitmap::{Bitmap, Channels};
use crate::spec::OutputFormat;

/// Metadata to embed (only when the variant keeps metadata).
#[derive(Default)]
pub(crate) struct Metadata {
    pub icc: Option<Vec<u8>>,
    /// A TIFF-structured EXIF block, orientation already reset to 1.
    pub exif: Option<Vec<u8>>,
}

pub(crate) fn encode(
    bitmap: &Bitmap,
    format: OutputFormat,
    quality: u8,
    progressive: bool,
    metadata: &Metadata,
) -> Result<Vec<u8>, String> {
    match format {
        OutputFormat::Jpeg => jpeg(bitmap, quality, progressive, metadata),
        OutputFormat::Png => png(bitmap, metadata),
        OutputFormat::Webp => webp(bitmap, quality),
    }
}

fn jpeg(
    bitmap: &Bitmap,
    quality: u8,
    progressive: bool,
    metadata: &Metadata,
) -> Result<Vec<u8>, String> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let colour = match bitmap.channels {
        Channels::Grey => ColorType::Luma,
        Channels::Rgb => ColorType::Rgb,
        other => {
            return Err(format!(
                "JPEG cannot encode {other:?} pixels (alpha must be flattened first)"
            ))
        }
    };
    let (w, h) = (
        u16::try_from(bitmap.width).map_err(|_| "JPEG width exceeds 65535")?,
        u16::try_from(bitmap.height).map_err(|_| "JPEG height exceeds 65535")?,
    );
    let mut out = Vec::with_capacity(bitmap.data.len() / 8);
    let mut encoder = Encoder::new(&mut out, quality.clamp(1, 100));
    // 4:2:0 like sharp's default, whatever the quality.
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder.set_progressive(progressive);
    // Optimised tables make jpeg-encoder write one scan per component; zune-jpeg (the `image` crate's
    // decoder) decodes such files with wrong colours, so keep the ordinary interleaved baseline scan.
    encoder.set_optimized_huffman_tables(false);
    if let Some(icc) = &metadata.icc {
        encoder
            .add_icc_profile(icc)
            .map_err(|e| format!("JPEG ICC profile: {e}"))?;
    }
    if let Some(exif) = &metadata.exif {
        // EXIF blocks larger than one APP1 segment are dropped rather than failing the render.
        let _ = encoder.add_exif_metadata(exif);
    }
    encoder
        .encode(&bitmap.data, w, h, colour)
        .map_err(|e| format!("JPEG encoding: {e}"))?;
    Ok(out)
}

fn png(bitmap: &Bitmap, metadata: &Metadata) -> Result<Vec<u8>, String> {
    let colour = match bitmap.channels {
        Channels::Grey => ExtendedColorType::L8,
        Channels::GreyAlpha => ExtendedColorType::La8,
        Channels::Rgb => ExtendedColorType::Rgb8,
        Channels::Rgba => ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    let mut encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive);
    if let Some(icc) = &metadata.icc {
        // Optional: an encoder that cannot embed the profile still writes sRGB pixels.
        let _ = encoder.set_icc_profile(icc.clone());
    }
    if let Some(exif) = &metadata.exif {
        let _ = encoder.set_exif_metadata(exif.clone());
    }
    encoder
        .write_image(&bitmap.data, bitmap.width, bitmap.height, colour)
        .map_err(|e| format!("PNG encoding: {e}"))?;
    Ok(out)
}

fn webp(bitmap: &Bitmap, quality: u8) -> Result<Vec<u8>, String> {
    // libwebp takes RGB(A) only; grey expands.
    let expanded;
    let bitmap = match bitmap.channels {
        Channels::Grey => {
            expanded = bitmap.clone().converted(Channels::Rgb);
            &expanded
        }
        Channels::GreyAlpha => {
            expanded = bitmap.clone().converted(Channels::Rgba);
            &expanded
        }
        _ => bitmap,
    };
    let encoder = if bitmap.channels == Channels::Rgba {
        webp::Encoder::from_rgba(&bitmap.data, bitmap.width, bitmap.height)
    } else {
        webp::Encoder::from_rgb(&bitmap.data, bitmap.width, bitmap.height)
    };
    let mut config = webp::WebPConfig::new().map_err(|()| "WebP configuration")?;
    config.quality = f32::from(quality.clamp(1, 100));
    config.method = 4;
    let encoded = encoder
        .encode_advanced(&config)
        .map_err(|e| format!("WebP encoding: {e:?}"))?;
    Ok(encoded.to_vec())
}
