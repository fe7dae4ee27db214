//! `ferrotype run`, `executions`, `redrive` and `aws` as a user meets them: the real binary in a fresh
//! folder, its words, its files and its exit status.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use ferrotype_local_s3::testing;

/// The binary in `dir`, keeping its data in `dir/.ferrotype`.
fn ferrotype(dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .output()
        .expect("the ferrotype binary runs")
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrotype"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("FERROTYPE_DATA_DIR", dir.join(".ferrotype"));
    command
}

/// `ferrotype watch images <args>` running in `dir`, its output captured.
fn spawn_watch(dir: &Path, args: &[&str]) -> Child {
    let mut all = vec!["watch", "images"];
    all.extend_from_slice(args);
    command(dir, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A project folder with an empty `images` folder for `watch` to scan.
fn watched_folder() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    (dir, images)
}

/// Polls `ready` until it holds; fails the test after two minutes, saying what never happened.
fn wait_until(never: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{never}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether any file in `dir` (if it exists) is a `.json` file whose text satisfies `matches`.
fn any_json(dir: &Path, matches: impl Fn(&str) -> bool) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().any(|entry| {
        let path = entry.unwrap().path();
        path.extension().is_some_and(|ext| ext == "json")
            && std::fs::read_to_string(&path).is_ok_and(|text| matches(&text))
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A folder of uploads: a good JPEG, a text file pretending to be one, and two files that are skipped.
fn uploads(dir: &Path) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("good.jpg"), testing::jpeg(400, 300)).unwrap();
    std::fs::write(images.join("notes.jpg"), testing::text()).unwrap();
    std::fs::write(images.join("README.txt"), "about these pictures").unwrap();
    std::fs::write(images.join(".hidden.jpg"), testing::jpeg(10, 10)).unwrap();
}

fn reports(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(".ferrotype/reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".html"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_says_what_it_used_skipped_and_produced() {
    let dir = tempfile::tempdir().unwrap();
    uploads(dir.path());
    let output = ferrotype(dir.path(), &["run", "images"]);
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{said}{}", stderr(&output));
    assert!(
        said.starts_with("Configuration: the built-in configuration"),
        "{said}"
    );
    assert!(
        said.contains("2 images in") && said.contains("1 succeeded, 1 rejected, 0 failed."),
        "{said}"
    );
    assert!(
        said.contains("Skipped 2 files: images/.hidden.jpg, images/README.txt"),
        "{said}"
    );
    assert!(said.contains("ImageRejected.NotAnImage"), "{said}");
    // Nothing from the local S3 server or the SDK reaches the terminal.
    assert_eq!(stderr(&output), "", "stderr");

    // A second run a moment later gets a sheet of its own; latest.html follows.
    let output = ferrotype(dir.path(), &["run", "images/good.jpg"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let names = reports(dir.path());
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"latest.html".to_owned()));
    let latest =
        std::fs::read_to_string(dir.path().join(".ferrotype/reports/latest.html")).unwrap();
    assert!(latest.contains("1 source: 1 succeeded"), "{latest}");
}

#[test]
fn a_ferrotype_json_in_the_current_folder_is_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.jpg"), testing::jpeg(400, 300)).unwrap();
    let config = include_str!("../ferrotype.json");
    let start = config.find("\"variants\": [").unwrap();
    let end = start + config[start..].find(']').unwrap() + 1;
    let config = format!(
        "{}\"variants\": [{{ \"name\": \"tiny\", \"width\": 40, \"height\": 30 }}]{}",
        &config[..start],
        &config[end..]
    );
    std::fs::write(dir.path().join("ferrotype.json"), config).unwrap();
    let output = ferrotype(dir.path(), &["run", "small.jpg"]);
    let said = stdout(&output);
    assert!(output.status.success(), "{said}{}", stderr(&output));
    assert!(
        said.starts_with("Configuration: ferrotype.json\n"),
        "{said}"
    );
    assert!(said.contains("tiny 40×30"), "{said}");
    assert!(said.contains("1 image in"), "{said}");
}

#[test]
fn json_lines_are_one_object_per_execution() {
    let dir = tempfile::tempdir().unwrap();
    uploads(dir.path());
    let output = ferrotype(dir.path(), &["run", "--json", "images"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let mut statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["rejected", "succeeded"]);
    // The skipped files are still said, on stderr, once.
    assert_eq!(
        stderr(&output).matches("Skipped 2 files").count(),
        1,
        "{}",
        stderr(&output)
    );
}

/// The command with its standard output already closed (the reader is gone, as after `| head -1`).
fn with_closed_stdout(dir: &Path, args: &[&str]) -> Output {
    let mut child = command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    uploads(dir.path());
    let output = with_closed_stdout(dir.path(), &["run", "--json", "images"]);
    assert_eq!(output.status.code(), Some(141), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");

    assert!(ferrotype(dir.path(), &["run", "images/good.jpg"])
        .status
        .success());
    let list = stdout(&ferrotype(dir.path(), &["executions", "list"]));
    let name = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .to_owned();
    for args in [
        vec!["executions", "list"],
        vec!["executions", "show", &name],
        vec!["executions", "show", &name, "--json"],
    ] {
        let output = with_closed_stdout(dir.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(141),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

#[test]
fn the_execution_list_lines_up() {
    let dir = tempfile::tempdir().unwrap();
    uploads(dir.path());
    assert!(ferrotype(dir.path(), &["run", "images"]).status.success());
    let output = ferrotype(dir.path(), &["executions", "list"]);
    let said = stdout(&output);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 3, "{said}");
    for column in ["started (UTC)", "redrives", "name", "error"] {
        let at = lines[0].find(column).unwrap();
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.len() >= at && l[at - 2..at] == *"  "),
            "{column} is not a column:\n{said}"
        );
    }
    // `started` is a fixed-width UTC time, e.g. 2026-11-28 23:15:01.
    let started = &lines[1][lines[0].find("started").unwrap()..][..19];
    assert!(time_like(started), "{started:?}");
}

fn time_like(text: &str) -> bool {
    text.len() == 19
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn redrive_needs_ids_and_refreshes_the_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let output = ferrotype(dir.path(), &["redrive"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("Usage: ferrotype redrive"),
        "{}",
        stderr(&output)
    );

    // A definition that fails on purpose gives a failed execution to redrive.
    std::fs::write(
        dir.path().join("fail.asl.json"),
        r#"{"StartAt":"Boom","States":{"Boom":{"Type":"Fail","Error":"Test.Boom","Cause":"on purpose"}}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("a.jpg"), testing::jpeg(32, 32)).unwrap();
    let output = ferrotype(
        dir.path(),
        &["run", "--definition", "fail.asl.json", "a.jpg"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("Test.Boom: on purpose"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("ferrotype redrive --all-failed"),
        "{}",
        stdout(&output)
    );

    let output = ferrotype(
        dir.path(),
        &["redrive", "--all-failed", "--definition", "fail.asl.json"],
    );
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{said}{}", stderr(&output));
    assert!(
        said.contains("FAILED") && said.contains("(redrive 1): Test.Boom"),
        "{said}"
    );
    let latest =
        std::fs::read_to_string(dir.path().join(".ferrotype/reports/latest.html")).unwrap();
    assert!(
        latest.contains("<title>Ferrotype redrive</title>"),
        "{latest}"
    );
    assert_eq!(reports(dir.path()).len(), 3, "run, redrive, latest");
}

#[test]
fn aws_without_credentials_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferrotype"))
        .args([
            "aws",
            "executions",
            "list",
            "--region",
            "us-east-1",
            "--state-machine",
            "arn:aws:states:us-east-1:123456789012:stateMachine:Pipeline",
        ])
        .env_clear()
        .env("HOME", dir.path())
        // No instance metadata service to ask on a test machine.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert_eq!(said.lines().count(), 1, "{said}");
    // The first call it makes (it asks the state machine's type: Standard and Express list differently).
    assert!(
        said.starts_with("error: DescribeStateMachine: no AWS credentials found: set AWS_PROFILE"),
        "{said}"
    );
}

#[test]
fn watch_writes_and_refreshes_a_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    uploads(dir.path());
    let output = ferrotype(
        dir.path(),
        &[
            "watch",
            "images",
            "--initial",
            "--interval-ms",
            "50",
            "--max-executions",
            "2",
        ],
    );
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{said}{}", stderr(&output));
    assert_eq!(said.matches("Skipped 2 files").count(), 1, "{said}");
    let names = reports(dir.path());
    let watch = names
        .iter()
        .find(|n| n.starts_with("watch-"))
        .unwrap_or_else(|| panic!("no watch sheet: {names:?}"));
    let sheet = std::fs::read_to_string(dir.path().join(".ferrotype/reports").join(watch)).unwrap();
    assert!(
        sheet.contains("2 sources: 1 succeeded, 1 rejected"),
        "{sheet}"
    );
    let latest =
        std::fs::read_to_string(dir.path().join(".ferrotype/reports/latest.html")).unwrap();
    assert_eq!(latest, sheet);
}

/// The manifest of `key` in the local output bucket.
fn manifest(dir: &Path, key: &str) -> serde_json::Value {
    let path = dir
        .join(".ferrotype/buckets/output/manifests")
        .join(format!("{key}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn sources_that_differ_only_in_extension_never_share_an_output() {
    let (dir, images) = watched_folder();
    std::fs::write(images.join("p.jpg"), testing::jpeg(300, 200)).unwrap();
    std::fs::write(images.join("p.png"), testing::png(200, 300)).unwrap();
    let output = ferrotype(dir.path(), &["run", "images"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let jpg = manifest(dir.path(), "uploads/p.jpg");
    let png = manifest(dir.path(), "uploads/p.png");
    let keys = |m: &serde_json::Value| -> Vec<String> {
        m["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&jpg).len(), 3);
    for key in keys(&jpg) {
        assert!(!keys(&png).contains(&key), "{key} is shared");
    }
    // Each manifest's variants are its own source's renders (one is landscape, the other portrait).
    let whole =
        |m: &serde_json::Value| (m["source"]["width"].clone(), m["source"]["height"].clone());
    assert_eq!(whole(&jpg), (300.into(), 200.into()));
    assert_eq!(whole(&png), (200.into(), 300.into()));
}

#[test]
fn files_that_would_share_a_key_are_refused_before_anything_is_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join("p.jpg"), testing::jpeg(64, 48)).unwrap();
    }
    let output = ferrotype(dir.path(), &["run", "a/p.jpg", "b/p.jpg"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains("a/p.jpg and b/p.jpg would all be uploaded as p.jpg")
            && said.contains("Nothing was uploaded"),
        "{said}"
    );
    assert!(
        !dir.path().join(".ferrotype/buckets/input").exists() || {
            let uploads = dir.path().join(".ferrotype/buckets/input/uploads");
            !uploads.exists() || std::fs::read_dir(uploads).unwrap().next().is_none()
        }
    );
    // Given as folders, they keep their folder names and both run.
    let output = ferrotype(dir.path(), &["run", "a", "b"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = ferrotype(dir.path(), &["run", "."]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        manifest(dir.path(), "uploads/a/p.jpg")["status"],
        "succeeded"
    );
    assert_eq!(
        manifest(dir.path(), "uploads/b/p.jpg")["status"],
        "succeeded"
    );
}

#[test]
fn a_key_of_420_bytes_works_locally() {
    let dir = tempfile::tempdir().unwrap();
    // Four nested folders of 100 bytes each and a file: a key of 420 bytes under uploads/.
    let mut folder = dir.path().join("images");
    let mut relative = String::new();
    for i in 0..4 {
        let name = format!("{i}{}", "d".repeat(99));
        folder = folder.join(&name);
        relative.push_str(&name);
        relative.push('/');
    }
    std::fs::create_dir_all(&folder).unwrap();
    let file = format!("{}.jpg", "f".repeat(4));
    std::fs::write(folder.join(&file), testing::jpeg(64, 48)).unwrap();
    let key = format!("uploads/{relative}{file}");
    assert_eq!(key.len(), 420);
    let output = ferrotype(dir.path(), &["run", "images"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(manifest(dir.path(), &key)["status"], "succeeded");
}

/// A folder of `count` distinct photos.
fn photos(dir: &Path, count: u32) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..count {
        std::fs::write(
            images.join(format!("p{i:02}.jpg")),
            testing::jpeg(900 + i, 700),
        )
        .unwrap();
    }
}

/// Every file under `images/` has a succeeded manifest of exactly its bytes, and its variants exist.
fn every_photo_is_done(dir: &Path, count: u32) {
    use md5::Digest as _;
    for i in 0..count {
        let bytes = std::fs::read(dir.join(format!("images/p{i:02}.jpg"))).unwrap();
        let manifest = manifest(dir, &format!("uploads/p{i:02}.jpg"));
        assert_eq!(manifest["status"], "succeeded", "p{i:02}: {manifest}");
        let etag = format!("\"{:x}\"", md5::Md5::digest(&bytes));
        assert_eq!(manifest["source"]["etag"], etag.as_str(), "p{i:02}");
        for variant in manifest["variants"].as_array().unwrap() {
            let key = variant["key"].as_str().unwrap();
            assert!(
                dir.join(".ferrotype/buckets/output").join(key).is_file(),
                "{key} is missing"
            );
        }
    }
}

#[test]
fn a_killed_run_leaves_its_executions_listed_and_the_same_command_finishes_them() {
    let dir = tempfile::tempdir().unwrap();
    photos(dir.path(), 10);
    let mut child = command(dir.path(), &["run", "images", "--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once an execution is journaled as running.
    let executions = dir.path().join(".ferrotype/executions");
    wait_until("no execution started", || {
        any_json(&executions, |text| text.contains("\"status\":\"RUNNING\""))
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let listed = ferrotype(dir.path(), &["executions", "list"]);
    let said = stdout(&listed);
    assert!(
        said.contains("RUNNING") || said.contains("ABORTED"),
        "{said}"
    );

    let again = ferrotype(dir.path(), &["run", "images"]);
    let said = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{said}{}", stderr(&again));
    assert!(
        said.contains("10 succeeded, 0 rejected, 0 failed"),
        "{said}"
    );
    every_photo_is_done(dir.path(), 10);
    // Nothing is left running or aborted: the interrupted executions were redriven to their end.
    let failed = ferrotype(dir.path(), &["executions", "list", "--status", "aborted"]);
    assert!(!stdout(&failed).contains("ABORTED"), "{}", stdout(&failed));
    // A third run finds everything done and runs nothing.
    let third = ferrotype(dir.path(), &["run", "images"]);
    let said = stdout(&third);
    assert_eq!(
        said.matches("unchanged since the last run").count(),
        10,
        "{said}"
    );
}

#[test]
fn two_runs_on_one_data_dir_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    photos(dir.path(), 6);
    let first = command(dir.path(), &["run", "images"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = command(dir.path(), &["run", "images/p00.jpg", "images/p01.jpg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let waited = format!("{}{}", stderr(&first), stderr(&second));
    assert!(
        waited.contains("Waiting for the other ferrotype process"),
        "{waited}"
    );
    every_photo_is_done(dir.path(), 6);
}

#[test]
fn watch_turns_a_removed_file_into_a_deletion() {
    let (dir, images) = watched_folder();
    let child = spawn_watch(
        dir.path(),
        &["--initial", "--interval-ms", "50", "--max-executions", "2"],
    );
    std::fs::write(images.join("gone.jpg"), testing::jpeg(200, 150)).unwrap();
    let manifests = dir
        .path()
        .join(".ferrotype/buckets/output/manifests/uploads/gone.jpg.json");
    wait_until("the upload never ran", || manifests.is_file());
    let rendered = manifest(dir.path(), "uploads/gone.jpg");
    std::fs::remove_file(images.join("gone.jpg")).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("deleted"), "{}", stdout(&output));
    assert_eq!(
        manifest(dir.path(), "uploads/gone.jpg")["status"],
        "deleted"
    );
    for variant in rendered["variants"].as_array().unwrap() {
        let key = variant["key"].as_str().unwrap();
        assert!(
            !dir.path()
                .join(".ferrotype/buckets/output")
                .join(key)
                .exists(),
            "{key} is still there"
        );
    }
}

#[test]
fn watch_leaves_existing_files_alone_unless_initial() {
    let (dir, images) = watched_folder();
    std::fs::write(images.join("old.jpg"), testing::jpeg(120, 90)).unwrap();
    let mut child = command(
        dir.path(),
        &[
            "watch",
            "images",
            "--interval-ms",
            "50",
            "--max-executions",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Once it says what it left alone, a new file is what it runs.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut said = String::new();
    while !said.contains("left alone") {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0,
            "{said}"
        );
        said.push_str(&line);
    }
    assert!(
        said.contains("1 file already in the folder left alone (--initial processes them too)."),
        "{said}"
    );
    std::fs::write(images.join("new.jpg"), testing::jpeg(120, 90)).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.contains("new.jpg") && !rest.contains("old.jpg"),
        "{rest}"
    );
    assert!(!dir
        .path()
        .join(".ferrotype/buckets/output/manifests/uploads/old.jpg.json")
        .exists());
}

/// The start and stop of every execution the data dir holds, with its status.
fn execution_spans(dir: &Path) -> Vec<(time::OffsetDateTime, time::OffsetDateTime, String)> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    std::fs::read_dir(dir.join(".ferrotype/executions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let date = |field: &str| {
                time::OffsetDateTime::parse(record[field].as_str().unwrap(), rfc3339).unwrap()
            };
            (
                date("startDate"),
                date("stopDate"),
                record["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether any two of the executions ran at the same time.
fn any_overlap(spans: &[(time::OffsetDateTime, time::OffsetDateTime, String)]) -> bool {
    spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1))
}

#[test]
fn watch_runs_as_many_executions_at_once_as_asked() {
    for (concurrency, overlap) in [("1", false), ("4", true)] {
        let dir = tempfile::tempdir().unwrap();
        photos(dir.path(), 4);
        let output = ferrotype(
            dir.path(),
            &[
                "watch",
                "images",
                "--initial",
                "--interval-ms",
                "50",
                "--max-executions",
                "4",
                "--concurrency",
                concurrency,
            ],
        );
        let said = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{said}{}", stderr(&output));
        assert_eq!(said.matches("succeeded ").count(), 4, "{said}");
        every_photo_is_done(dir.path(), 4);
        let spans = execution_spans(dir.path());
        assert_eq!(spans.len(), 4);
        assert!(spans.iter().all(|(.., status)| status == "SUCCEEDED"));
        // One at a time never overlaps (a slot is held for the whole execution); four slots and four
        // photos found in one scan start them together (an upload takes milliseconds, an execution
        // of a 900×700 photo with the default profile far longer).
        assert_eq!(
            any_overlap(&spans),
            overlap,
            "--concurrency {concurrency}: {spans:?}"
        );
    }
}

#[test]
fn watch_uploads_a_replaced_file_while_its_execution_runs_and_ends_with_the_new_one() {
    let (dir, images) = watched_folder();
    let child = spawn_watch(
        dir.path(),
        &["--interval-ms", "20", "--max-executions", "2"],
    );
    std::fs::write(images.join("p00.jpg"), testing::jpeg(1600, 1200)).unwrap();
    // Replace it as soon as its first execution is journaled (usually while it still runs).
    let executions = dir.path().join(".ferrotype/executions");
    wait_until("no execution started", || any_json(&executions, |_| true));
    std::fs::write(images.join("p00.jpg"), testing::jpeg(640, 480)).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{said}{}", stderr(&output));
    // Whichever way the two overlapped, the key ends with the second file's outputs only.
    every_photo_is_done(dir.path(), 1);
    let spans = execution_spans(dir.path());
    assert_eq!(spans.len(), 2, "{said}");
    assert!(
        spans.iter().all(|(.., status)| status == "SUCCEEDED"),
        "{spans:?}"
    );
}
