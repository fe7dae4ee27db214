//! Behaviour of probe/render/decode_preview on fixtures generated here (never on ../shared).

use std::io::Cursor;

use ferrotype_core::imaging::exif::orientation_exif;
use ferrotype_core::{
    decode_preview, decode_working_copy, face_preview, probe, render, render_working, Fit, Focus,
    Limits, OutputFormat, Probe, RejectionCode, RenderError, Rgb, SourceFormat, VariantSpec,
    WorkingCopy,
};
use image::{DynamicImage, ImageEncoder, RgbImage, Rgba, RgbaImage};

const RED: [u8; 3] = [230, 20, 20];
const GREEN: [u8; 3] = [20, 200, 20];
const BLUE: [u8; 3] = [20, 20, 230];
const WHITE: [u8; 3] = [250, 250, 250];

/// A 64×32 upright image with a different colour in each quadrant.
fn quadrants() -> RgbImage {
    RgbImage::from_fn(64, 32, |x, y| {
        image::Rgb(match (x < 32, y < 16) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

fn jpeg_encode(
    data: &[u8],
    w: u32,
    h: u32,
    colour: jpeg_encoder::ColorType,
    exif: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 95);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
    if let Some(exif) = exif {
        enc.add_exif_metadata(exif).unwrap();
    }
    enc.encode(data, w as u16, h as u16, colour).unwrap();
    out
}

fn png_encode(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The stored pixels that, under `orientation`, display as `upright`.
fn stored_for(upright: &RgbImage, orientation: u8) -> RgbImage {
    let (w, h) = upright.dimensions();
    let (sw, sh) = if orientation >= 5 { (h, w) } else { (w, h) };
    RgbImage::from_fn(sw, sh, |x, y| {
        let (ux, uy) = match orientation {
            1 => (x, y),
            2 => (sw - 1 - x, y),
            3 => (sw - 1 - x, sh - 1 - y),
            4 => (x, sh - 1 - y),
            5 => (y, x),
            6 => (sh - 1 - y, x),
            7 => (sh - 1 - y, sw - 1 - x),
            _ => (y, sw - 1 - x),
        };
        *upright.get_pixel(ux, uy)
    })
}

/// A JPEG whose stored pixels, under EXIF `orientation`, display as `upright`.
fn oriented_jpeg(upright: &RgbImage, orientation: u8) -> Vec<u8> {
    let stored = stored_for(upright, orientation);
    let exif = orientation_exif(orientation);
    jpeg_encode(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        jpeg_encoder::ColorType::Rgb,
        Some(&exif),
    )
}

fn spec(w: Option<u32>, h: Option<u32>, fit: Fit, format: OutputFormat) -> VariantSpec {
    VariantSpec {
        fit,
        format,
        ..VariantSpec::new("test", w, h)
    }
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

fn close(a: &[u8], b: &[u8], tolerance: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (i32::from(*x) - i32::from(*y)).abs() <= tolerance)
}

fn rejection_of(bytes: &[u8], limits: &Limits) -> RejectionCode {
    match probe(bytes, bytes.len() as u64, limits) {
        Err(r) => r.code,
        Ok(Probe::Complete(_)) => match render(
            bytes,
            &spec(Some(10), Some(10), Fit::Cover, OutputFormat::Jpeg),
            None,
            limits,
        ) {
            Err(RenderError::Rejected(r)) => r.code,
            other => panic!("expected a rejection, got {other:?}"),
        },
        Ok(Probe::NeedMoreBytes) => panic!("whole input reported NeedMoreBytes"),
    }
}

#[test]
fn all_eight_orientations_render_the_same_upright_image() {
    let upright = quadrants();
    let limits = Limits::default();
    for o in 1..=8u8 {
        let jpeg = oriented_jpeg(&upright, o);
        let Ok(Probe::Complete(info)) = probe(&jpeg, jpeg.len() as u64, &limits) else {
            panic!("probe {o}")
        };
        assert_eq!(info.orientation, o);
        assert_eq!(
            (info.upright_width, info.upright_height),
            (64, 32),
            "orientation {o}"
        );
        let out = render(
            &jpeg,
            &spec(Some(64), Some(32), Fit::Fill, OutputFormat::Png),
            None,
            &limits,
        )
        .unwrap();
        let img = decode(&out.bytes).to_rgb8();
        assert_eq!(img.dimensions(), (64, 32), "orientation {o}");
        for (x, y, want) in [(8, 4, RED), (56, 4, GREEN), (8, 28, BLUE), (56, 28, WHITE)] {
            assert!(
                close(&img.get_pixel(x, y).0, &want, 12),
                "orientation {o} at ({x},{y}): {:?}",
                img.get_pixel(x, y)
            );
        }
    }
}

#[test]
fn every_fit_mode_has_sharps_dimensions() {
    let src = png_encode(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
        400,
        200,
        image::Rgb(RED),
    )));
    let limits = Limits::default();
    let dims = |w, h, fit, enlarge| {
        let s = VariantSpec {
            enlarge,
            ..spec(w, h, fit, OutputFormat::Png)
        };
        let out = render(&src, &s, None, &limits).unwrap();
        assert_eq!(decode(&out.bytes).width(), out.width);
        (out.width, out.height)
    };
    assert_eq!(dims(Some(100), Some(100), Fit::Cover, false), (100, 100));
    assert_eq!(dims(Some(100), Some(100), Fit::Contain, false), (100, 100));
    assert_eq!(dims(Some(100), Some(100), Fit::Fill, false), (100, 100));
    assert_eq!(dims(Some(100), Some(100), Fit::Inside, false), (100, 50));
    assert_eq!(dims(Some(100), Some(100), Fit::Outside, false), (200, 100));
    assert_eq!(dims(Some(100), None, Fit::Cover, false), (100, 50));
    assert_eq!(dims(None, Some(100), Fit::Inside, false), (200, 100));
    assert_eq!(dims(Some(800), Some(800), Fit::Cover, false), (200, 200));
    assert_eq!(dims(Some(800), Some(800), Fit::Inside, false), (400, 200));
    assert_eq!(dims(Some(800), Some(800), Fit::Contain, false), (800, 800));
    assert_eq!(dims(Some(800), Some(800), Fit::Cover, true), (800, 800));
    assert_eq!(dims(Some(800), Some(800), Fit::Inside, true), (800, 400));
    assert_eq!(dims(Some(800), Some(800), Fit::Outside, true), (1600, 800));
}

#[test]
fn cover_follows_the_focus_point() {
    // Left half red, right half blue: a square crop at focus x=0 is red, at x=1 blue, centred both.
    let img = RgbImage::from_fn(200, 100, |x, _| {
        image::Rgb(if x < 100 { RED } else { BLUE })
    });
    let src = png_encode(&DynamicImage::ImageRgb8(img));
    let limits = Limits::default();
    let s = spec(Some(20), Some(20), Fit::Cover, OutputFormat::Png);
    let centre_of = |focus| {
        decode(&render(&src, &s, focus, &limits).unwrap().bytes)
            .to_rgb8()
            .get_pixel(10, 10)
            .0
    };
    assert!(close(&centre_of(Some(Focus::new(0.0, 0.5))), &RED, 2));
    assert!(close(&centre_of(Some(Focus::new(1.0, 0.5))), &BLUE, 2));
    let no_follow = VariantSpec {
        follow_focus: false,
        ..s.clone()
    };
    let out = decode(
        &render(&src, &no_follow, Some(Focus::new(0.0, 0.5)), &limits)
            .unwrap()
            .bytes,
    )
    .to_rgb8();
    assert!(close(&out.get_pixel(2, 10).0, &RED, 2) && close(&out.get_pixel(17, 10).0, &BLUE, 2));
}

#[test]
fn alpha_is_flattened_for_jpeg_and_kept_for_png_and_webp() {
    let img = RgbaImage::from_fn(40, 40, |x, _| {
        if x < 20 {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([255, 0, 0, 0])
        }
    });
    let src = png_encode(&DynamicImage::ImageRgba8(img));
    let limits = Limits::default();
    let jpeg = VariantSpec {
        background: Some(Rgb(0, 0, 255)),
        ..spec(Some(40), Some(40), Fit::Fill, OutputFormat::Jpeg)
    };
    let out = decode(&render(&src, &jpeg, None, &limits).unwrap().bytes).to_rgb8();
    assert!(
        close(&out.get_pixel(5, 20).0, &[255, 0, 0], 12),
        "{:?}",
        out.get_pixel(5, 20)
    );
    assert!(close(&out.get_pixel(35, 20).0, &[0, 0, 255], 12));
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let out = decode(
            &render(
                &src,
                &spec(Some(40), Some(40), Fit::Fill, format),
                None,
                &limits,
            )
            .unwrap()
            .bytes,
        )
        .to_rgba8();
        assert_eq!(out.get_pixel(35, 20).0[3], 0, "{format}");
        assert_eq!(out.get_pixel(5, 20).0[3], 255, "{format}");
    }
    // Contain letterboxes: transparent for PNG, the background for JPEG.
    let wide = png_encode(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
        80,
        40,
        image::Rgb(RED),
    )));
    let png = decode(
        &render(
            &wide,
            &spec(Some(40), Some(40), Fit::Contain, OutputFormat::Png),
            None,
            &limits,
        )
        .unwrap()
        .bytes,
    )
    .to_rgba8();
    assert_eq!(
        (png.get_pixel(20, 2).0[3], png.get_pixel(20, 20).0[3]),
        (0, 255)
    );
    let jpeg = VariantSpec {
        background: Some(Rgb(0, 0, 255)),
        ..spec(Some(40), Some(40), Fit::Contain, OutputFormat::Jpeg)
    };
    let out = decode(&render(&wide, &jpeg, None, &limits).unwrap().bytes).to_rgb8();
    assert!(close(&out.get_pixel(20, 2).0, &[0, 0, 255], 12));
    // A background named for PNG or WebP fills the letterbox opaquely; the image keeps its alpha.
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let named = VariantSpec {
            background: Some(Rgb(0, 0, 255)),
            ..spec(Some(40), Some(40), Fit::Contain, format)
        };
        let out = decode(&render(&wide, &named, None, &limits).unwrap().bytes).to_rgba8();
        assert!(
            close(&out.get_pixel(20, 2).0, &[0, 0, 255, 255], 12),
            "{format}"
        );
        assert!(
            close(&out.get_pixel(20, 20).0, &[RED[0], RED[1], RED[2], 255], 12),
            "{format}"
        );
    }
    let half_transparent = png_encode(&DynamicImage::ImageRgba8(RgbaImage::from_fn(
        80,
        40,
        |x, _| Rgba([255, 0, 0, if x < 40 { 255 } else { 0 }]),
    )));
    let named = VariantSpec {
        background: Some(Rgb(0, 0, 255)),
        ..spec(Some(40), Some(40), Fit::Contain, OutputFormat::Png)
    };
    let out = decode(
        &render(&half_transparent, &named, None, &limits)
            .unwrap()
            .bytes,
    )
    .to_rgba8();
    assert_eq!(
        out.get_pixel(35, 20).0[3],
        0,
        "the image's own transparency stays"
    );
    assert!(close(&out.get_pixel(20, 2).0, &[0, 0, 255, 255], 12));
}

#[test]
fn cmyk_jpegs_become_rgb_with_and_without_adobe_inversion() {
    // Pure cyan ink, no black: a printed cyan (through libvips' default CMYK profile), whether the file
    // stores ink inverted (Adobe) or plainly.
    let cmyk: Vec<u8> = [255u8, 0, 0, 0].repeat(16 * 16);
    let adobe = jpeg_encode(&cmyk, 16, 16, jpeg_encoder::ColorType::Cmyk, None);
    assert!(
        adobe.windows(5).any(|w| w == b"Adobe"),
        "jpeg-encoder writes Adobe-inverted CMYK"
    );
    // The same ink stored plainly (not inverted), with the Adobe segment removed.
    let inverted: Vec<u8> = cmyk.iter().map(|v| 255 - v).collect();
    let plain = strip_app14(&jpeg_encode(
        &inverted,
        16,
        16,
        jpeg_encoder::ColorType::Cmyk,
        None,
    ));
    assert!(!plain.windows(5).any(|w| w == b"Adobe"));
    let colours = [centre_rgb(&adobe), centre_rgb(&plain)];
    for [r, g, b] in colours {
        assert!(
            r < 60 && g > r + 80 && b > r + 120,
            "cyan expected, got {colours:?}"
        );
    }
    assert!(close(&colours[0], &colours[1], 2), "{colours:?}");
}

fn strip_app14(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if jpeg[i + 1] != 0xEE {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out.extend_from_slice(&jpeg[i..]);
    out
}

#[test]
fn sixteen_bit_and_grey_inputs() {
    let limits = Limits::default();
    let deep =
        image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(30, 30, image::Rgb([65535, 32768, 0]));
    let src = png_encode(&DynamicImage::ImageRgb16(deep));
    let out = decode(
        &render(
            &src,
            &spec(Some(10), Some(10), Fit::Cover, OutputFormat::Png),
            None,
            &limits,
        )
        .unwrap()
        .bytes,
    );
    assert_eq!(out.color(), image::ColorType::Rgb8);
    assert!(close(&out.to_rgb8().get_pixel(5, 5).0, &[255, 128, 0], 1));

    let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(30, 30, image::Luma([90])));
    let src = png_encode(&grey);
    for format in [OutputFormat::Png, OutputFormat::Jpeg] {
        let out = decode(
            &render(
                &src,
                &spec(Some(10), Some(10), Fit::Cover, format),
                None,
                &limits,
            )
            .unwrap()
            .bytes,
        );
        assert_eq!(
            out.color(),
            image::ColorType::L8,
            "grey stays grey in {format}"
        );
        assert!((i32::from(out.to_luma8().get_pixel(5, 5).0[0]) - 90).abs() <= 2);
    }
}

#[test]
fn icc_tagged_input_is_converted_to_srgb() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let colour = [40u8, 160, 90];
    let mut src = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut src);
    enc.set_icc_profile(p3.clone()).unwrap();
    enc.write_image(
        &colour.repeat(16 * 16),
        16,
        16,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let transform = moxcms::ColorProfile::new_from_slice(&p3)
        .unwrap()
        .create_transform_8bit(
            moxcms::Layout::Rgb,
            &moxcms::ColorProfile::new_srgb(),
            moxcms::Layout::Rgb,
            Default::default(),
        )
        .unwrap();
    let mut expected = [0u8; 3];
    transform.transform(&colour, &mut expected).unwrap();
    assert!(
        !close(&expected, &colour, 3),
        "P3 and sRGB differ for this colour"
    );
    let out = decode(
        &render(
            &src,
            &spec(Some(8), Some(8), Fit::Cover, OutputFormat::Png),
            None,
            &Limits::default(),
        )
        .unwrap()
        .bytes,
    );
    assert!(
        close(&out.to_rgb8().get_pixel(4, 4).0, &expected, 1),
        "{:?} vs {expected:?}",
        out.to_rgb8().get_pixel(4, 4)
    );
}

#[test]
fn each_rejection_code_on_crafted_files() {
    let limits = Limits::default();
    assert_eq!(rejection_of(b"", &limits), RejectionCode::Empty);
    assert_eq!(
        rejection_of(b"hello, this is a text file named photo.jpg\n", &limits),
        RejectionCode::NotAnImage
    );
    let jpeg = jpeg_encode(
        quadrants().as_raw(),
        64,
        32,
        jpeg_encoder::ColorType::Rgb,
        None,
    );
    assert_eq!(
        rejection_of(&jpeg[..jpeg.len() / 2], &limits),
        RejectionCode::Corrupt
    );
    assert_eq!(rejection_of(&jpeg[..20], &limits), RejectionCode::Corrupt);
    // A PNG header claiming 65536×65536 over a tiny body.
    let mut huge = png_encode(&DynamicImage::ImageRgb8(RgbImage::new(1, 1)));
    huge[16..20].copy_from_slice(&65536u32.to_be_bytes());
    huge[20..24].copy_from_slice(&65536u32.to_be_bytes());
    assert_eq!(rejection_of(&huge, &limits), RejectionCode::TooManyPixels);
    assert_eq!(
        rejection_of(
            &jpeg,
            &Limits {
                max_pixels: 64 * 32 - 1,
                ..Limits::default()
            }
        ),
        RejectionCode::TooManyPixels
    );
    assert_eq!(
        rejection_of(
            &jpeg,
            &Limits {
                max_bytes: 100,
                ..Limits::default()
            }
        ),
        RejectionCode::TooLarge
    );
    assert_eq!(
        rejection_of(
            &jpeg,
            &Limits {
                formats: vec![SourceFormat::Png],
                ..Limits::default()
            }
        ),
        RejectionCode::UnsupportedFormat
    );
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0\0\0\0\0\0\0\0\0";
    let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf\0\0\0\0\0\0\0\0\0\0\0\0";
    let svg = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"></svg>";
    for bytes in [&heic[..], &avif[..], &svg[..]] {
        assert_eq!(
            rejection_of(bytes, &limits),
            RejectionCode::UnsupportedFormat
        );
    }
}

#[test]
fn probe_asks_for_more_bytes_when_the_header_is_beyond_the_prefix() {
    let big_app = vec![b'x'; 70_000];
    let mut jpeg = jpeg_encode(
        quadrants().as_raw(),
        64,
        32,
        jpeg_encoder::ColorType::Rgb,
        None,
    );
    // Insert two large APP2 segments before the frame header.
    let mut segments = Vec::new();
    for chunk in big_app.chunks(60_000) {
        segments.extend_from_slice(&[0xFF, 0xE2]);
        segments.extend_from_slice(&((chunk.len() + 2) as u16).to_be_bytes());
        segments.extend_from_slice(chunk);
    }
    jpeg.splice(2..2, segments);
    let limits = Limits::default();
    let total = jpeg.len() as u64;
    assert_eq!(
        probe(&jpeg[..65_536], total, &limits),
        Ok(Probe::NeedMoreBytes)
    );
    assert_eq!(probe(&jpeg[..10], total, &limits), Ok(Probe::NeedMoreBytes));
    let Ok(Probe::Complete(info)) = probe(&jpeg, total, &limits) else {
        panic!("whole file probes")
    };
    assert_eq!(
        (info.format, info.width, info.height),
        (SourceFormat::Jpeg, 64, 32)
    );
}

#[test]
fn garbage_never_panics() {
    let limits = Limits::default();
    let seeds = [
        jpeg_encode(
            quadrants().as_raw(),
            64,
            32,
            jpeg_encoder::ColorType::Rgb,
            Some(&orientation_exif(6)),
        ),
        png_encode(&DynamicImage::ImageRgba8(RgbaImage::from_pixel(
            20,
            20,
            Rgba([1, 2, 3, 4]),
        ))),
        {
            let mut out = Vec::new();
            DynamicImage::ImageRgb8(quadrants())
                .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Gif)
                .unwrap();
            out
        },
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let s = spec(Some(16), Some(16), Fit::Cover, OutputFormat::Jpeg);
    for seed in &seeds {
        for _ in 0..150 {
            let mut bytes = seed.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            if next() % 4 == 0 {
                bytes.truncate((next() as usize) % bytes.len());
            }
            // Either outcome is fine; a panic or hang is not.
            let _ = probe(&bytes, bytes.len() as u64, &limits);
            let _ = render(&bytes, &s, None, &limits);
        }
    }
}

#[test]
fn animated_gif_renders_its_first_frame() {
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = image::Frame::new(RgbaImage::from_pixel(20, 20, Rgba(colour)));
            enc.encode_frame(frame).unwrap();
        }
    }
    let Ok(Probe::Complete(info)) = probe(&gif, gif.len() as u64, &Limits::default()) else {
        panic!()
    };
    assert!(info.animated);
    let out = decode(
        &render(
            &gif,
            &spec(Some(10), Some(10), Fit::Cover, OutputFormat::Png),
            None,
            &Limits::default(),
        )
        .unwrap()
        .bytes,
    );
    assert!(close(&out.to_rgb8().get_pixel(5, 5).0, &[255, 0, 0], 2));
}

#[test]
fn jpeg_shrink_on_load_keeps_the_target_size_and_preview_is_bounded() {
    let big = RgbImage::from_fn(1600, 1200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let jpeg = jpeg_encode(
        big.as_raw(),
        1600,
        1200,
        jpeg_encoder::ColorType::Rgb,
        Some(&orientation_exif(6)),
    );
    let out = render(
        &jpeg,
        &spec(Some(300), Some(300), Fit::Cover, OutputFormat::Webp),
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((out.width, out.height), (300, 300));
    assert_eq!(decode(&out.bytes).width(), 300);
    let preview = decode_preview(&jpeg, 256, &Limits::default()).unwrap();
    // Upright: orientation 6 turns 1600×1200 into 1200×1600.
    assert_eq!(preview.dimensions(), (192, 256));
}

/// Odd sizes decoded at a reduced scale: the crop window, scaled to the smaller decode, must stay
/// inside it (a 2725×2225 photo once failed its 800×800 cover by a rounding error).
#[test]
fn scaled_decodes_of_odd_sizes_render_every_cover_and_focus() {
    for (w, h) in [(2725, 2225), (1001, 1999), (1603, 907)] {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 60])
        });
        let jpeg = jpeg_encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb, None);
        for side in [100, 150, 300, 333, 500, 800] {
            for focus in [None, Some(Focus::new(0.0, 0.0)), Some(Focus::new(1.0, 1.0))] {
                let mut variant = spec(Some(side), Some(side), Fit::Cover, OutputFormat::Jpeg);
                variant.follow_focus = true;
                let out = render(&jpeg, &variant, focus, &Limits::default())
                    .unwrap_or_else(|e| panic!("{w}×{h} → {side}² focus {focus:?}: {e}"));
                assert_eq!((out.width, out.height), (side, side));
            }
        }
    }
}

#[test]
fn keep_metadata_embeds_srgb_and_upright_exif() {
    let jpeg = jpeg_encode(
        quadrants().as_raw(),
        64,
        32,
        jpeg_encoder::ColorType::Rgb,
        Some(&orientation_exif(3)),
    );
    let keep = VariantSpec {
        keep_metadata: true,
        ..spec(Some(32), None, Fit::Inside, OutputFormat::Jpeg)
    };
    let out = render(&jpeg, &keep, None, &Limits::default()).unwrap();
    let Ok(Probe::Complete(info)) = probe(&out.bytes, out.bytes.len() as u64, &Limits::default())
    else {
        panic!()
    };
    assert_eq!(info.orientation, 1);
    assert!(out.bytes.windows(11).any(|w| w == b"ICC_PROFILE"));
    assert!(out.bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let stripped = render(
        &jpeg,
        &VariantSpec {
            keep_metadata: false,
            ..keep
        },
        None,
        &Limits::default(),
    )
    .unwrap();
    assert!(!stripped.bytes.windows(6).any(|w| w == b"Exif\0\0"));
}

#[test]
fn spec_json_follows_the_contract() {
    let s: VariantSpec = serde_json::from_str(r#"{"name":"thumb","width":300}"#).unwrap();
    assert_eq!(
        (
            s.fit,
            s.format,
            s.quality,
            s.background,
            s.follow_focus,
            s.enlarge
        ),
        (Fit::Cover, OutputFormat::Jpeg, 80, None, true, false)
    );
    assert!(serde_json::from_str::<VariantSpec>(r#"{"name":"t","width":3,"colour":1}"#).is_err());
    let s: VariantSpec = serde_json::from_str(r##"{"name":"t","height":5,"fit":"outside","format":"webp","background":"#0a0B0c","keepMetadata":true}"##).unwrap();
    assert_eq!(
        (s.fit, s.format, s.background, s.keep_metadata),
        (
            Fit::Outside,
            OutputFormat::Webp,
            Some(Rgb(10, 11, 12)),
            true
        )
    );
    assert_eq!(serde_json::to_value(s.background).unwrap(), "#0a0b0c");
    assert!(
        !serde_json::to_string(&VariantSpec::new("t", Some(1), None))
            .unwrap()
            .contains("background")
    );
    assert!(VariantSpec::new("t", None, None).validate().is_err());
    assert!(VariantSpec {
        quality: 0,
        ..VariantSpec::new("t", Some(1), None)
    }
    .validate()
    .is_err());
    assert!(VariantSpec::new("t", Some(16_385), None)
        .validate()
        .is_err());
    assert!(VariantSpec::new("t", Some(16_384), None).validate().is_ok());
    assert!(serde_json::from_str::<Rgb>(r##""#12345""##).is_err());
}

// ---------------------------------------------------------------------------------------------
// The working copy: one decode per upload, then every variant and the face preview from it.

/// A photo-like test card: smooth gradients with sharp colour edges, `w`×`h`.
fn card(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let stripe = (x / 37 + y / 53) % 3;
        image::Rgb([
            (fx * 200.0) as u8 + if stripe == 0 { 50 } else { 0 },
            (fy * 180.0) as u8 + if stripe == 1 { 60 } else { 0 },
            ((fx + fy) * 90.0) as u8 + if stripe == 2 { 70 } else { 0 },
        ])
    })
}

fn jpeg_with(
    data: &[u8],
    w: u32,
    h: u32,
    colour: jpeg_encoder::ColorType,
    sampling: jpeg_encoder::SamplingFactor,
    progressive: bool,
    restart_interval: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_sampling_factor(sampling);
    enc.set_progressive(progressive);
    if restart_interval > 0 {
        enc.set_restart_interval(restart_interval);
    }
    enc.encode(data, w as u16, h as u16, colour).unwrap();
    out
}

/// jpeg-decoder's own 1/8-scale decode of `jpeg`, as interleaved 8-bit samples.
fn eighth_scale_reference(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    decoder.read_info().unwrap();
    let info = decoder.info().unwrap();
    let (w, h) = (
        u32::from(info.width).div_ceil(8),
        u32::from(info.height).div_ceil(8),
    );
    decoder.scale(w as u16, h as u16).unwrap();
    let pixels = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    (u32::from(info.width), u32::from(info.height), pixels)
}

fn mean_abs_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((i32::from(*x) - i32::from(*y)).unsigned_abs()))
        .sum::<f64>()
        / a.len() as f64
}

/// A variant that needs no more than 1/8 of a `w`-wide source (its whole width, fit inside).
fn eighth_variant(w: u32) -> VariantSpec {
    spec(Some(w / 8), None, Fit::Inside, OutputFormat::Png)
}

#[test]
fn eighth_scale_from_dc_coefficients_matches_a_full_decoder() {
    use jpeg_encoder::{ColorType, SamplingFactor};
    let (w, h) = (803, 611);
    let rgb = card(w, h);
    let grey = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "baseline 4:2:0",
            jpeg_with(
                rgb.as_raw(),
                w,
                h,
                ColorType::Rgb,
                SamplingFactor::F_2_2,
                false,
                0,
            ),
        ),
        (
            "baseline 4:4:4",
            jpeg_with(
                rgb.as_raw(),
                w,
                h,
                ColorType::Rgb,
                SamplingFactor::F_1_1,
                false,
                0,
            ),
        ),
        (
            "baseline 4:2:2 with restart markers",
            jpeg_with(
                rgb.as_raw(),
                w,
                h,
                ColorType::Rgb,
                SamplingFactor::F_2_1,
                false,
                7,
            ),
        ),
        (
            "progressive 4:2:0",
            jpeg_with(
                rgb.as_raw(),
                w,
                h,
                ColorType::Rgb,
                SamplingFactor::F_2_2,
                true,
                0,
            ),
        ),
        (
            "progressive 4:2:0 with restart markers",
            jpeg_with(
                rgb.as_raw(),
                w,
                h,
                ColorType::Rgb,
                SamplingFactor::F_2_2,
                true,
                5,
            ),
        ),
        (
            "grey",
            jpeg_with(
                grey.as_raw(),
                w,
                h,
                ColorType::Luma,
                SamplingFactor::F_1_1,
                false,
                0,
            ),
        ),
        (
            "progressive grey",
            jpeg_with(
                grey.as_raw(),
                w,
                h,
                ColorType::Luma,
                SamplingFactor::F_1_1,
                true,
                0,
            ),
        ),
    ];
    for (name, jpeg) in cases {
        let copy =
            decode_working_copy(&jpeg, &Limits::default(), &[eighth_variant(w)], None).unwrap();
        let (rw, rh, reference) = eighth_scale_reference(&jpeg);
        assert_eq!((copy.width(), copy.height()), (rw, rh), "{name}");
        let difference = mean_abs_difference(copy.pixels(), &reference);
        // Chroma upsampling differs (triangle filter here, jpeg-decoder's own there); the means agree.
        assert!(difference < 2.0, "{name}: mean difference {difference}");
    }
}

/// Noise at quality 100 leaves the last coefficient of most blocks non-zero: those blocks end without
/// an end-of-block symbol, and skipping their coefficients must stop at the 63rd, not read into the
/// next block's DC difference.
#[test]
fn blocks_without_an_end_of_block_are_skipped_in_step() {
    let (w, h) = (320, 240);
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..w * h)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 100)
        .encode(&noise, w as u16, h as u16, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let copy = decode_working_copy(&jpeg, &Limits::default(), &[eighth_variant(w)], None).unwrap();
    let (rw, rh, reference) = eighth_scale_reference(&jpeg);
    assert_eq!((copy.width(), copy.height()), (rw, rh));
    // Grey has no upsampling: every block's mean is the reference's (up to its rounding).
    let difference = mean_abs_difference(copy.pixels(), &reference);
    assert!(difference < 0.5, "mean difference {difference}");
}

#[test]
fn a_truncated_jpeg_is_corrupt_at_every_scale() {
    let (w, h) = (640, 480);
    let jpeg = jpeg_with(
        card(w, h).as_raw(),
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
        jpeg_encoder::SamplingFactor::F_2_2,
        false,
        0,
    );
    let cut = &jpeg[..jpeg.len() * 2 / 3];
    for variant in [
        eighth_variant(w),
        spec(Some(w), None, Fit::Inside, OutputFormat::Png),
    ] {
        match decode_working_copy(cut, &Limits::default(), &[variant], None) {
            Err(RenderError::Rejected(r)) => assert_eq!(r.code, RejectionCode::Corrupt, "{r}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn the_working_copy_is_what_the_most_demanding_variant_or_the_preview_needs() {
    let (w, h) = (1600, 1200);
    let rgb = card(w, h);
    let jpeg = jpeg_encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb, None);
    let png = png_encode(&DynamicImage::ImageRgb8(rgb));
    let thumb = spec(Some(300), Some(300), Fit::Cover, OutputFormat::Jpeg);
    let cover = spec(Some(600), Some(600), Fit::Cover, OutputFormat::Jpeg);
    let large = spec(Some(800), Some(800), Fit::Cover, OutputFormat::Jpeg);
    let limits = Limits::default();
    for source in [&jpeg, &png] {
        // The whole image at the copy's scale (without a preview the copy keeps only a part of it).
        let size = |variants: &[VariantSpec], preview: Option<u32>| {
            let copy = decode_working_copy(source, &limits, variants, preview).unwrap();
            assert_eq!(copy.upright_size(), (w, h));
            copy.full_size()
        };
        // 300×300 of a 1200-pixel-high crop needs 400×300, 600×600 800×600, 800×800 1067×800 (1066.7
        // rounded up; the JPEG decoded whole, then resampled down to it).
        assert_eq!(size(std::slice::from_ref(&thumb), None), (400, 300));
        assert_eq!(size(&[thumb.clone(), cover.clone()], None), (800, 600));
        assert_eq!(size(&[thumb.clone(), large.clone()], None), (1067, 800));
        // The preview's longest side.
        assert_eq!(size(std::slice::from_ref(&thumb), Some(1000)), (1000, 750));
        assert_eq!(size(std::slice::from_ref(&thumb), Some(500)), (500, 375));
        // Below the JPEG's 1/8 (200×150) the copy is resampled like any other format.
        assert_eq!(size(&[], Some(100)), (100, 75));
        // Within a fifth of the pixels a resample would save, the decoded size stays: 1500×1125 needs
        // 88 % of the whole.
        let near = spec(Some(1125), Some(1125), Fit::Cover, OutputFormat::Jpeg);
        assert_eq!(size(std::slice::from_ref(&near), None), (1600, 1200));
        // Nothing asked for: full size.
        assert_eq!(size(&[], None), (1600, 1200));
    }
}

#[test]
fn the_variant_the_working_copy_is_sized_for_is_cropped_from_it_not_resampled() {
    let (w, h) = (1600, 1200);
    let png = png_encode(&DynamicImage::ImageRgb8(card(w, h)));
    let cover = spec(Some(800), Some(800), Fit::Cover, OutputFormat::Png);
    let copy =
        decode_working_copy(&png, &Limits::default(), std::slice::from_ref(&cover), None).unwrap();
    assert_eq!(copy.full_size(), (1067, 800));
    let rendered = render_working(&copy, &cover, None).unwrap();
    let out = decode(&rendered.bytes).to_rgb8();
    // The centred 1200×1200 crop starts 200 source pixels in: 133.4 of the whole copy's, rounded to
    // 133; the stored part starts a few pixels before it.
    let row = copy.width() as usize * 3;
    let x = 133 - copy.origin().0 as usize;
    for y in 0..800usize {
        let expected = &copy.pixels()[y * row + x * 3..y * row + (x + 800) * 3];
        let got = &out.as_raw()[y * 2400..(y + 1) * 2400];
        assert!(expected == got, "row {y} differs from the copy's pixels");
    }
}

#[test]
fn without_a_detector_the_working_copy_keeps_only_what_the_variants_read() {
    let (w, h) = (1600, 1200);
    let png = png_encode(&DynamicImage::ImageRgb8(card(w, h)));
    let limits = Limits::default();
    let thumb = spec(Some(300), Some(300), Fit::Cover, OutputFormat::Jpeg);
    let large = spec(Some(800), Some(800), Fit::Cover, OutputFormat::Jpeg);
    let tall = spec(Some(200), Some(600), Fit::Cover, OutputFormat::Jpeg);
    let inside = spec(Some(400), None, Fit::Inside, OutputFormat::Jpeg);
    let copy = |variants: &[VariantSpec], preview: Option<u32>| {
        decode_working_copy(&png, &limits, variants, preview).unwrap()
    };
    // Two centred squares: the middle of the 1067×800 image, a kernel's reach wider on each side.
    let squares = copy(&[thumb.clone(), large.clone()], None);
    assert_eq!(squares.full_size(), (1067, 800));
    let (x, y) = squares.origin();
    assert_eq!((y, squares.height()), (0, 800));
    assert!(x > 100 && x < 134, "starts at {x}");
    assert!(
        x + squares.width() > 933 && x + squares.width() < 967,
        "ends at {}",
        x + squares.width()
    );
    assert!(!squares.is_whole());
    // A portrait crop beside them widens nothing (it is narrower) but is as tall as the image.
    let with_tall = copy(&[thumb.clone(), large.clone(), tall], None);
    assert_eq!(with_tall.origin(), squares.origin());
    assert_eq!(with_tall.width(), squares.width());
    // A variant that shows the whole image, or a detector that may move the crops: the whole image.
    assert!(copy(&[thumb.clone(), inside], None).is_whole());
    assert!(copy(&[thumb, large], Some(64)).is_whole());
}

#[test]
fn a_part_renders_every_variant_as_the_whole_copy_does_in_every_orientation() {
    let upright = card(901, 677);
    let variants = [
        spec(Some(300), Some(300), Fit::Cover, OutputFormat::Png),
        spec(Some(500), Some(500), Fit::Cover, OutputFormat::Png),
        spec(Some(120), Some(400), Fit::Cover, OutputFormat::Png),
        spec(Some(90), Some(90), Fit::Cover, OutputFormat::Png),
    ];
    let limits = Limits::default();
    for orientation in 1..=8u8 {
        let jpeg = oriented_jpeg(&upright, orientation);
        let part = decode_working_copy(&jpeg, &limits, &variants, None).unwrap();
        // A tiny preview changes no size but keeps the whole image.
        let whole = decode_working_copy(&jpeg, &limits, &variants, Some(8)).unwrap();
        assert!(whole.is_whole(), "orientation {orientation}");
        assert!(!part.is_whole(), "orientation {orientation}");
        assert_eq!(
            part.full_size(),
            whole.full_size(),
            "orientation {orientation}"
        );
        for variant in &variants {
            let from_part = decode(&render_working(&part, variant, None).unwrap().bytes).to_rgb8();
            let from_whole =
                decode(&render_working(&whole, variant, None).unwrap().bytes).to_rgb8();
            assert_eq!(from_part.dimensions(), from_whole.dimensions());
            // Equal but for the last bit of a float's rounding.
            assert!(
                close(from_part.as_raw(), from_whole.as_raw(), 1),
                "orientation {orientation}, {:?}: the part renders other pixels",
                (variant.width, variant.height)
            );
        }
        // The stored part reads back as the same part.
        let stored_part = WorkingCopy::decode(part.encode(), &limits).unwrap();
        assert_eq!(stored_part, part, "orientation {orientation}");
        assert!(face_preview(&part, 64).is_err());
    }
}

#[test]
fn variants_render_the_same_from_the_stored_working_copy_as_from_the_source() {
    let (w, h) = (1203, 907);
    let jpeg = jpeg_encode(
        card(w, h).as_raw(),
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
        Some(&orientation_exif(6)),
    );
    let limits = Limits::default();
    let variants = [
        VariantSpec {
            keep_metadata: true,
            ..spec(Some(300), Some(300), Fit::Cover, OutputFormat::Jpeg)
        },
        spec(Some(400), None, Fit::Inside, OutputFormat::Png),
        spec(Some(200), Some(100), Fit::Contain, OutputFormat::Webp),
    ];
    let copy = decode_working_copy(&jpeg, &limits, &variants, Some(256)).unwrap();
    assert_eq!(
        copy.upright_size(),
        (h, w),
        "orientation 6 turns the source"
    );
    let stored = WorkingCopy::decode(copy.encode(), &limits).unwrap();
    assert_eq!(stored, copy);
    let focus = Some(Focus::new(0.2, 0.8));
    for variant in &variants {
        let from_copy = render_working(&stored, variant, focus).unwrap();
        let from_source = render(&jpeg, variant, focus, &limits).unwrap();
        assert_eq!(
            (from_copy.width, from_copy.height),
            (from_source.width, from_source.height),
            "{}",
            variant.name
        );
        let (a, b) = (decode(&from_copy.bytes), decode(&from_source.bytes));
        let difference = mean_abs_difference(a.to_rgb8().as_raw(), b.to_rgb8().as_raw());
        assert!(difference < 3.0, "{}: {difference}", variant.name);
    }
    let with_metadata = render_working(&stored, &variants[0], focus).unwrap();
    let Ok(Probe::Complete(info)) = probe(
        &with_metadata.bytes,
        with_metadata.bytes.len() as u64,
        &limits,
    ) else {
        panic!()
    };
    assert_eq!(info.orientation, 1, "EXIF kept, orientation reset");
    assert!(with_metadata.bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let preview = face_preview(&stored, 256).unwrap();
    assert_eq!(preview.dimensions(), (193, 256));
}

// ---------------------------------------------------------------------------------------------
// CMYK as libvips converts it: through the embedded profile, else through its default CMYK profile.

/// The CMYK profile the core ships as libvips' default ("Chemical proof", public domain).
const CHEMICAL_PROOF: &[u8] = include_bytes!("../profiles/cmyk-chemical-proof.icm");

fn cmyk_tiff(w: u32, h: u32, cmyk: &[u8], icc: Option<&[u8]>) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out).unwrap();
    let mut image = encoder
        .new_image::<tiff::encoder::colortype::CMYK8>(w, h)
        .unwrap();
    if let Some(icc) = icc {
        image
            .encoder()
            .write_tag(tiff::tags::Tag::IccProfile, icc)
            .unwrap();
    }
    image.write_data(cmyk).unwrap();
    out.into_inner()
}

fn centre_rgb(src: &[u8]) -> [u8; 3] {
    let out = render(
        src,
        &spec(Some(16), Some(16), Fit::Fill, OutputFormat::Png),
        None,
        &Limits::default(),
    )
    .unwrap();
    decode(&out.bytes).to_rgb8().get_pixel(8, 8).0
}

#[test]
fn cmyk_converts_through_the_embedded_profile_or_libvips_default() {
    // Magenta and yellow ink, no cyan or black: a printed red, never sRGB's pure (255, 0, 0).
    let red_ink: Vec<u8> = [0u8, 255, 255, 0].repeat(16 * 16);
    let with_profile = centre_rgb(&cmyk_tiff(16, 16, &red_ink, Some(CHEMICAL_PROOF)));
    assert!(
        with_profile[0] < 245 && with_profile[1] < 60 && with_profile[2] < 60,
        "{with_profile:?}"
    );
    // Without a profile, the default one gives the same colour, for TIFF and for JPEG alike.
    let without_profile = centre_rgb(&cmyk_tiff(16, 16, &red_ink, None));
    assert!(
        close(&without_profile, &with_profile, 1),
        "{without_profile:?}"
    );
    let jpeg = jpeg_encode(&red_ink, 16, 16, jpeg_encoder::ColorType::Cmyk, None);
    let from_jpeg = centre_rgb(&jpeg);
    assert!(close(&from_jpeg, &with_profile, 4), "{from_jpeg:?}");
    // An embedded profile wins over the default: a profile that is not CMYK is ignored, not applied.
    let srgb_tagged = centre_rgb(&cmyk_tiff(
        16,
        16,
        &red_ink,
        Some(&moxcms::ColorProfile::new_srgb().encode().unwrap()),
    ));
    assert!(close(&srgb_tagged, &with_profile, 1), "{srgb_tagged:?}");
}
