//! `ferrotype render` as a user runs it: the real binary, real files, its exit status and its words.

use std::path::Path;
use std::process::{Command, Output};

use ferrotype_local_s3::testing;

fn ferrotype(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotype"))
        .args(args)
        // The repository root, so `--variant` finds the shipped ferrotype.json by default.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ferrotype binary runs")
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn renders_a_spec_given_by_flags() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jpg");
    let out = dir.path().join("out.webp");
    std::fs::write(&input, testing::jpeg(640, 480)).unwrap();
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--width",
        "200",
        "--height",
        "100",
        "--fit",
        "cover",
        "--focus",
        "0.2,0.5",
        "--format",
        "webp",
        "-o",
        arg(&out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let written = image::load_from_memory(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((written.width(), written.height()), (200, 100));
    assert_eq!(
        image::guess_format(&std::fs::read(&out).unwrap()).unwrap(),
        image::ImageFormat::WebP
    );
    let said = stdout(&output);
    assert!(said.contains("jpeg 640×480"), "{said}");
    assert!(said.contains("webp 200×100"), "{said}");
}

#[test]
fn renders_a_variant_named_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    let out = dir.path().join("thumb.jpg");
    std::fs::write(&input, testing::png(900, 600)).unwrap();
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--variant",
        "thumbnail",
        "-o",
        arg(&out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        image::ImageFormat::Jpeg
    );
    let written = image::load_from_memory(&bytes).unwrap();
    assert_eq!((written.width(), written.height()), (300, 300));
}

#[test]
fn an_unknown_variant_names_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(&input, testing::png(90, 60)).unwrap();
    let out = dir.path().join("x.jpg");
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--variant",
        "poster",
        "-o",
        arg(&out),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(said.contains("\"poster\""), "{said}");
    assert!(said.contains("default/thumbnail"), "{said}");
    assert!(!out.exists());
}

#[test]
fn flags_that_contradict_the_variant_are_refused() {
    let output = ferrotype(&[
        "render",
        "in.jpg",
        "--variant",
        "thumbnail",
        "--width",
        "10",
        "-o",
        "out.jpg",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_input_exits_3_with_its_rejection_code() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "notes.jpg",
            b"shopping: eggs, milk\n".to_vec(),
            "ImageRejected.NotAnImage",
        ),
        (
            "drawing.jpg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            "ImageRejected.UnsupportedFormat",
        ),
        ("empty.jpg", Vec::new(), "ImageRejected.Empty"),
        (
            "truncated.jpg",
            testing::jpeg_cut_in_data(400, 300),
            "ImageRejected.Corrupt",
        ),
    ];
    for (name, bytes, code) in cases {
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let out = dir.path().join(format!("{name}.out.jpg"));
        let output = ferrotype(&["render", arg(&input), "--width", "50", "-o", arg(&out)]);
        assert_eq!(output.status.code(), Some(3), "{name}: {}", stderr(&output));
        let said = stderr(&output);
        assert!(said.contains(code), "{name}: {said}");
        assert!(!out.exists(), "{name}: an output was written");
    }
}

fn ferrotype_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotype"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the ferrotype binary runs")
}

fn sample(name: &str) -> String {
    format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_output_format_follows_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("alpha.png");
    std::fs::write(&input, testing::png_with_alpha(120, 80)).unwrap();
    for (name, format) in [
        ("out.png", image::ImageFormat::Png),
        ("out.webp", image::ImageFormat::WebP),
        ("out.JPEG", image::ImageFormat::Jpeg),
    ] {
        let out = dir.path().join(name);
        let output = ferrotype(&["render", arg(&input), "--width", "60", "-o", arg(&out)]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), format, "{name}");
    }
    // The PNG kept the alpha the JPEG flattens.
    let png = image::open(dir.path().join("out.png")).unwrap();
    assert!(png.color().has_alpha());
}

#[test]
fn a_format_that_contradicts_the_file_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jpg");
    std::fs::write(&input, testing::jpeg(64, 64)).unwrap();
    let out = dir.path().join("x.jpg");
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--width",
        "10",
        "--format",
        "webp",
        "-o",
        arg(&out),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(said.contains("--format webp contradicts"), "{said}");
    assert!(said.contains("Usage: ferrotype render"), "{said}");
    assert!(!out.exists());
    // A variant's format and a file name that disagree, and a name that names no format.
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--variant",
        "thumbnail",
        "-o",
        "x.png",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("name it .jpg"),
        "{}",
        stderr(&output)
    );
    let output = ferrotype(&["render", arg(&input), "--width", "10", "-o", "x.gif"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot tell the format"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn dash_writes_the_image_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jpg");
    std::fs::write(&input, testing::jpeg(64, 48)).unwrap();
    let output = ferrotype(&[
        "render",
        arg(&input),
        "--width",
        "32",
        "--format",
        "png",
        "-o",
        "-",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let image =
        image::load_from_memory_with_format(&output.stdout, image::ImageFormat::Png).unwrap();
    assert_eq!((image.width(), image.height()), (32, 24));
    // What is said about it goes to stderr, and no file called "-" appears.
    assert!(
        stderr(&output).contains("output standard output: png 32×24"),
        "{}",
        stderr(&output)
    );
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("-").exists());
}

#[test]
fn flag_values_out_of_range_exit_2_and_say_the_range() {
    for (flag, value, range) in [
        ("--quality", "500", "1..=100"),
        ("--quality", "0", "1..=100"),
        ("--width", "0", "1..=16384"),
        ("--height", "99999", "1..=16384"),
    ] {
        let output = ferrotype(&["render", "in.jpg", flag, value, "-o", "out.jpg"]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        assert!(
            stderr(&output).contains(range),
            "{flag} {value}: {}",
            stderr(&output)
        );
    }
    let output = ferrotype(&["render", "in.jpg", "-o", "out.jpg"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("give --width, --height or both"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn variants_crop_around_faces_as_the_pipeline_does() {
    let dir = tempfile::tempdir().unwrap();
    let smart = dir.path().join("smart.jpg");
    let centred = dir.path().join("centred.jpg");
    let output = ferrotype(&[
        "render",
        &sample("portrait.jpg"),
        "--variant",
        "thumbnail",
        "-o",
        arg(&smart),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(
        said.contains("1 face found by the built-in detector"),
        "{said}"
    );
    // The face is in the top fifth of this tall portrait: the focus follows it, not the centre.
    let focus_y: f64 = said
        .lines()
        .find_map(|l| l.strip_prefix("focus  "))
        .and_then(|l| l.split(':').next())
        .and_then(|xy| xy.split(',').nth(1))
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| panic!("no focus line: {said}"));
    assert!(focus_y < 0.3, "{said}");

    let output = ferrotype(&[
        "render",
        &sample("portrait.jpg"),
        "--variant",
        "thumbnail",
        "--smart-crop",
        "off",
        "-o",
        arg(&centred),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("focus  centre (smart crop off)"),
        "{}",
        stdout(&output)
    );
    assert_ne!(
        std::fs::read(&smart).unwrap(),
        std::fs::read(&centred).unwrap()
    );
}

#[test]
fn without_faces_a_cover_crop_keeps_what_draws_the_eye() {
    let dir = tempfile::tempdir().unwrap();
    // A plain 2:1 picture with a small red subject near its left edge; no face.
    let source = dir.path().join("subject.png");
    image::RgbImage::from_fn(800, 400, |x, y| {
        if (40..120).contains(&x) && (160..240).contains(&y) {
            image::Rgb([230, 30, 30])
        } else {
            image::Rgb([130, 130, 130])
        }
    })
    .save(&source)
    .unwrap();
    let red_share = |path: &Path| {
        let out = image::open(path).unwrap().to_rgb8();
        let red = out.pixels().filter(|p| p[0] > 180 && p[1] < 90).count();
        red as f64 / f64::from(out.width() * out.height())
    };
    for (mode, expect_subject, says) in [
        (
            None,
            true,
            "no face found by the built-in detector; attention",
        ),
        (Some("attention"), true, ": attention in"),
        (Some("off"), false, "focus  centre (smart crop off)"),
    ] {
        let out = dir
            .path()
            .join(format!("{}.png", mode.unwrap_or("default")));
        let mut args = vec![
            "render",
            arg(&source),
            "--width",
            "100",
            "--height",
            "100",
            "-o",
            arg(&out),
        ];
        if let Some(mode) = mode {
            args.extend(["--smart-crop", mode]);
        }
        let output = ferrotype(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains(says), "{}", stdout(&output));
        let share = red_share(&out);
        assert_eq!(share > 0.02, expect_subject, "{mode:?}: red share {share}");
    }
}

#[test]
fn a_named_background_fills_the_letterbox_of_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.png");
    std::fs::write(&input, testing::png_with_alpha(200, 100)).unwrap();
    let render = |out: &Path, background: Option<&str>| {
        let mut args = vec![
            "render",
            arg(&input),
            "--width",
            "100",
            "--height",
            "100",
            "--fit",
            "contain",
            "-o",
            arg(out),
        ];
        if let Some(colour) = background {
            args.extend(["--background", colour]);
        }
        let output = ferrotype(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        image::open(out).unwrap().to_rgba8()
    };
    let blue = render(&dir.path().join("blue.png"), Some("#0000ff"));
    assert_eq!(
        blue.get_pixel(50, 2).0,
        [0, 0, 255, 255],
        "the bar is the named colour"
    );
    let clear = render(&dir.path().join("clear.png"), None);
    assert_eq!(
        clear.get_pixel(50, 2).0[3],
        0,
        "without one the bar is transparent"
    );
}

#[test]
fn the_configuration_comes_from_the_current_folder_or_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(&input, testing::png(400, 200)).unwrap();
    // No ferrotype.json here: the built-in configuration, and it says so.
    let output = ferrotype_in(
        dir.path(),
        &["render", "in.png", "--variant", "thumbnail", "-o", "t.jpg"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("in the built-in configuration"),
        "{}",
        stdout(&output)
    );
    // A ferrotype.json in the current folder is the one used.
    let config = include_str!("../ferrotype.json").replace(
        r#"{ "name": "thumbnail", "width": 300, "height": 300"#,
        r#"{ "name": "thumbnail", "width": 40, "height": 20"#,
    );
    assert!(
        config.contains(r#""width": 40"#),
        "the shipped configuration changed shape"
    );
    std::fs::write(dir.path().join("ferrotype.json"), config).unwrap();
    let output = ferrotype_in(
        dir.path(),
        &["render", "in.png", "--variant", "thumbnail", "-o", "t.jpg"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("in ferrotype.json"),
        "{}",
        stdout(&output)
    );
    let written = image::open(dir.path().join("t.jpg")).unwrap();
    assert_eq!((written.width(), written.height()), (40, 20));
}
