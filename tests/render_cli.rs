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
    assert!(!output.status.success());
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
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_input_exits_non_zero_with_its_rejection_code() {
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
        let out = dir.path().join(format!("{name}.out"));
        let output = ferrotype(&["render", arg(&input), "--width", "50", "-o", arg(&out)]);
        assert!(!output.status.success(), "{name} was accepted");
        let said = stderr(&output);
        assert!(said.contains(code), "{name}: {said}");
        assert!(!out.exists(), "{name}: an output was written");
    }
}
