//! Test helpers shared by the functions' tests and the local runner's: fixture images generated in memory
//! (the tests never read files outside the repository) and S3 "Object Created" events as S3 would send them.

use std::io::Cursor;

use aws_sdk_s3::primitives::ByteStream;
use ferrotype_core::config::Config;
use ferrotype_core::event::{NewObject, ObjectEvent};
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use crate::LocalS3;

pub const INPUT_BUCKET: &str = "input";
pub const OUTPUT_BUCKET: &str = "output";

/// A small configuration for handler tests: one profile per smart-crop mode, limits small enough to
/// trip with tiny fixtures (1 MB, 4 megapixels), small variants so tests stay fast.
pub const TEST_CONFIG: &str = r##"{
  "outputs": { "variantsPrefix": "variants/", "manifestsPrefix": "manifests/", "cacheControl": "public, max-age=60" },
  "mapMaxConcurrency": 4,
  "profiles": [
    {
      "name": "default", "prefix": "uploads/", "smartCrop": "builtin",
      "keyTemplate": "{profile}/{key}/{version}/{variant}.{ext}",
      "limits": { "maxBytes": 1000000, "maxPixels": 4000000, "formats": ["jpeg", "png", "gif", "webp", "tiff", "bmp"] },
      "variants": [
        { "name": "thumb", "width": 32, "height": 32, "fit": "cover", "format": "jpeg", "quality": 80 },
        { "name": "wide", "width": 64, "fit": "inside", "format": "png" },
        { "name": "centred", "width": 24, "height": 48, "fit": "cover", "format": "webp", "followFocus": false }
      ]
    },
    {
      "name": "faces", "prefix": "faces/", "smartCrop": "rekognition",
      "limits": { "maxBytes": 1000000, "maxPixels": 4000000, "formats": ["jpeg", "png"] },
      "variants": [ { "name": "square", "width": 32, "height": 32 } ]
    },
    {
      "name": "plain", "prefix": "plain/", "smartCrop": "off",
      "variants": [ { "name": "small", "width": 16 } ]
    }
  ]
}"##;

pub fn test_config() -> Config {
    Config::from_json(TEST_CONFIG).expect("the test configuration is valid")
}

/// A server with the input and output buckets.
pub async fn start_server() -> LocalS3 {
    LocalS3::start_temporary(&[INPUT_BUCKET, OUTPUT_BUCKET])
        .await
        .expect("the local S3 server starts")
}

/// The in-memory store with the input and output buckets, for in-process clients (simulations): times
/// follow tokio's clock from `origin`, so a run under paused time replays exactly.
pub fn start_in_memory(origin: std::time::SystemTime) -> crate::InProcessS3 {
    crate::InProcessS3::in_memory_with_clock(
        &[INPUT_BUCKET, OUTPUT_BUCKET],
        std::sync::Arc::new(crate::TokioClock::starting_at(origin)),
    )
    .expect("the bucket names are valid")
}

/// Stores `body` at `key` in the input bucket; returns the ETag.
pub async fn upload(client: &aws_sdk_s3::Client, key: &str, body: &[u8]) -> String {
    client
        .put_object()
        .bucket(INPUT_BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("uploading {key}: {err:?}"))
        .e_tag()
        .expect("PutObject answers with an ETag")
        .to_owned()
}

/// Stores `body` at `key` in the input bucket; returns the ETag and the version id (buckets are versioned).
pub async fn upload_version(
    client: &aws_sdk_s3::Client,
    key: &str,
    body: &[u8],
) -> (String, String) {
    let output = client
        .put_object()
        .bucket(INPUT_BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("uploading {key}: {err:?}"));
    (
        output
            .e_tag()
            .expect("PutObject answers with an ETag")
            .to_owned(),
        output
            .version_id()
            .expect("the local store's buckets are versioned")
            .to_owned(),
    )
}

/// Stores `body` at `key` in the input bucket and returns the event S3 would send for it, as JSON.
pub async fn upload_with_event(
    client: &aws_sdk_s3::Client,
    key: &str,
    body: &[u8],
) -> serde_json::Value {
    let etag = upload(client, key, body).await;
    event_json(&object_created(
        INPUT_BUCKET,
        key,
        body.len() as u64,
        Some(etag.trim_matches('"')),
    ))
}

/// Every key in `bucket`, sorted.
pub async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|err| panic!("listing s3://{bucket}: {err:?}"));
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// An object's bytes, content type and cache control.
pub async fn download(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> (Vec<u8>, Option<String>, Option<String>) {
    let output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("downloading s3://{bucket}/{key}: {err:?}"));
    let content_type = output.content_type().map(str::to_owned);
    let cache_control = output.cache_control().map(str::to_owned);
    let bytes = output
        .body
        .collect()
        .await
        .expect("the body arrives")
        .into_bytes()
        .to_vec();
    (bytes, content_type, cache_control)
}

/// A Lambda invocation of `payload` with an empty context, as the local runner makes them.
pub fn lambda_event<T>(payload: T) -> lambda_runtime::LambdaEvent<T> {
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

/// Keys that trip naive key handling: a space, `+`, `%`, non-ASCII letters, `(1)`.
pub const ODD_KEYS: [&str; 5] = [
    "uploads/red flower.jpg",
    "uploads/a+b.jpg",
    "uploads/100% real.jpg",
    "uploads/café/naïve 写真.jpg",
    "uploads/photo (1).jpg",
];

/// A smooth gradient with a bright disc off-centre, so crops and resizes have something to show.
pub fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (
            x as f32 / width.max(1) as f32,
            y as f32 / height.max(1) as f32,
        );
        let disc = (fx - 0.7).powi(2) + (fy - 0.3).powi(2) < 0.02;
        if disc {
            Rgb([250, 240, 40])
        } else {
            Rgb([(fx * 255.0) as u8, (fy * 255.0) as u8, 128])
        }
    })
}

fn encode(image: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, format)
        .unwrap_or_else(|err| panic!("encoding a {format:?} fixture: {err}"));
    bytes.into_inner()
}

/// Three vertical bands, red, green and blue, as a PNG: where a crop was taken shows in its colour.
pub fn three_bands_png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, _| match x * 3 / width {
        0 => Rgb([255, 0, 0]),
        1 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    encode(&image.into(), ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::Jpeg)
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::Png)
}

/// A PNG whose left half is transparent.
pub fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, y| {
        let Rgb([r, g, b]) = *picture(width, height).get_pixel(x, y);
        Rgba([r, g, b, if x < width / 2 { 0 } else { 255 }])
    });
    encode(&image.into(), ImageFormat::Png)
}

pub fn gif(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::Gif)
}

pub fn bmp(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::Bmp)
}

pub fn tiff(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::Tiff)
}

pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height).into(), ImageFormat::WebP)
}

/// A JPEG whose EXIF Orientation tag is `orientation` (1..=8); the stored pixels are `width`×`height`.
pub fn jpeg_with_orientation(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let plain = jpeg(width, height);
    // APP1 "Exif\0\0" + big-endian TIFF header + one IFD with the Orientation tag (0x0112, SHORT, 1).
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A JPEG cut off inside its frame header (SOF): recognisably a JPEG, but its size cannot be read.
pub fn jpeg_cut_in_header(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = jpeg(width, height);
    let frame = bytes
        .windows(2)
        .position(|marker| marker[0] == 0xFF && (0xC0..=0xC2).contains(&marker[1]))
        .expect("a baseline or progressive frame header");
    bytes.truncate(frame + 5);
    bytes
}

/// The first half of a valid JPEG: the header parses, the pixel data ends early.
pub fn jpeg_cut_in_data(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = jpeg(width, height);
    bytes.truncate(bytes.len() / 2);
    bytes
}

/// A valid PNG signature and IHDR chunk claiming `width`×`height`, and no image data: probing must refuse
/// it from the header alone, before any allocation for the pixels.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&ihdr);
    bytes.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    bytes
}

/// The start of an ISO-BMFF file with the given brand (`heic`, `avif`…): recognised, not decodable here.
pub fn iso_bmff(brand: &[u8; 4]) -> Vec<u8> {
    let mut bytes = 24u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(b"ftyp");
    bytes.extend_from_slice(brand);
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(b"mif1");
    bytes.extend_from_slice(brand);
    bytes.extend_from_slice(&[0; 64]);
    bytes
}

pub fn heic() -> Vec<u8> {
    iso_bmff(b"heic")
}

pub fn avif() -> Vec<u8> {
    iso_bmff(b"avif")
}

/// Bytes that are no image at all.
pub fn text() -> Vec<u8> {
    b"This is a shopping list, not a photograph.\nmilk\neggs\n".to_vec()
}

/// CRC-32 (IEEE), as PNG chunks need.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The EventBridge event S3 sends for a new object (key form-encoded as S3 does).
pub fn object_created(bucket: &str, key: &str, size: u64, etag: Option<&str>) -> ObjectEvent {
    ObjectEvent::for_object(&NewObject {
        bucket,
        key,
        size,
        etag,
        version_id: None,
        region: crate::REGION,
        account: "000000000000",
        time: "2026-11-28T00:00:00Z",
        id: "00000000-0000-0000-0000-000000000001",
        reason: "PutObject",
        sequencer: None,
    })
}

/// The same event with the key exactly as given, not encoded (in case EventBridge delivers raw keys).
pub fn object_created_raw_key(
    bucket: &str,
    key: &str,
    size: u64,
    etag: Option<&str>,
) -> ObjectEvent {
    let mut event = object_created(bucket, key, size, etag);
    event.detail.object.key = key.to_owned();
    event
}

/// As a Lambda receives it: JSON.
pub fn event_json(event: &ObjectEvent) -> serde_json::Value {
    serde_json::to_value(event).expect("events serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn fixtures_are_what_they_claim() {
        assert_eq!(image::guess_format(&jpeg(8, 8)).unwrap(), ImageFormat::Jpeg);
        assert_eq!(image::load_from_memory(&png(9, 7)).unwrap().width(), 9);
        assert!(image::load_from_memory(&png_with_alpha(4, 4))
            .unwrap()
            .color()
            .has_alpha());
        assert_eq!(image::guess_format(&gif(4, 4)).unwrap(), ImageFormat::Gif);
        assert_eq!(image::guess_format(&webp(4, 4)).unwrap(), ImageFormat::WebP);
        assert_eq!(image::guess_format(&tiff(4, 4)).unwrap(), ImageFormat::Tiff);
        assert_eq!(image::guess_format(&bmp(4, 4)).unwrap(), ImageFormat::Bmp);
        assert!(image::load_from_memory(&jpeg_cut_in_header(64, 64)).is_err());
        assert_eq!(&jpeg_cut_in_header(64, 64)[..3], &[0xFF, 0xD8, 0xFF]);
        let oriented = image::load_from_memory(&jpeg_with_orientation(20, 10, 6)).unwrap();
        assert_eq!((oriented.width(), oriented.height()), (20, 10));
        let huge = png_header_claiming(65536, 65536);
        assert_eq!(&huge[16..24], &[0, 1, 0, 0, 0, 1, 0, 0]);
        assert_eq!(&heic()[4..12], b"ftypheic");
    }
}
