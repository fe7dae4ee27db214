//! The built-in detector on a real photo (fixtures/README.md) and on images without faces.

use ferrotype_core::{BuiltinDetector, DetectorKind, FaceDetector};
use image::{Rgb, RgbImage};

fn obama() -> RgbImage {
    image::load_from_memory(include_bytes!("fixtures/obama-480.jpg"))
        .expect("fixture decodes")
        .to_rgb8()
}

#[tokio::test]
async fn finds_the_face_where_it_is() {
    let detection = BuiltinDetector::new()
        .detect_focus(&obama())
        .await
        .expect("detection runs");
    assert_eq!(detection.detector, DetectorKind::Builtin);
    assert_eq!(detection.faces.len(), 1, "{detection:?}");
    let face = detection.faces[0];
    // The face spans about x 0.44..0.60, y 0.08..0.36 of the frame.
    let (centre_x, centre_y) = (face.left + face.width / 2.0, face.top + face.height / 2.0);
    assert!(
        (centre_x - 0.52).abs() < 0.05 && (centre_y - 0.22).abs() < 0.06,
        "{face:?}"
    );
    assert!(
        (0.10..0.25).contains(&face.width) && (0.18..0.40).contains(&face.height),
        "{face:?}"
    );
    assert!(face.confidence > 0.5 && face.confidence <= 1.0, "{face:?}");
    assert!(
        (detection.focus.x - centre_x).abs() < 1e-9 && (detection.focus.y - centre_y).abs() < 1e-9
    );
}

#[tokio::test]
async fn the_same_face_is_found_in_a_larger_image() {
    // Enlarged past the detection size, the photo is scanned downscaled; the fractions still match.
    let large =
        image::imageops::resize(&obama(), 1920, 1080, image::imageops::FilterType::Triangle);
    let faces = BuiltinDetector::new()
        .detect(&large)
        .await
        .expect("detection runs");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let centre_x = faces[0].left + faces[0].width / 2.0;
    assert!((centre_x - 0.52).abs() < 0.05, "{faces:?}");
}

#[tokio::test]
async fn finds_the_face_when_it_is_off_centre() {
    // The photo pasted into the right half of a wider grey canvas: the face moves with it.
    let photo = obama();
    let mut canvas = RgbImage::from_pixel(960, 270, Rgb([128, 128, 128]));
    image::imageops::replace(&mut canvas, &photo, 480, 0);
    let faces = BuiltinDetector::new()
        .detect(&canvas)
        .await
        .expect("detection runs");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let centre_x = faces[0].left + faces[0].width / 2.0;
    assert!((centre_x - 0.76).abs() < 0.03, "{faces:?}");
}

#[tokio::test]
async fn blank_and_patterned_images_have_no_faces() {
    let blank = RgbImage::from_pixel(640, 480, Rgb([240, 240, 240]));
    let gradient = RgbImage::from_fn(800, 600, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) / 6) as u8])
    });
    for image in [blank, gradient] {
        let detection = BuiltinDetector::new()
            .detect_focus(&image)
            .await
            .expect("detection runs");
        assert!(detection.faces.is_empty(), "{detection:?}");
        assert_eq!(detection.focus, ferrotype_core::Focus::CENTRE);
    }
}
