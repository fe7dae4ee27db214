//! `ferrotype run`, `executions`, `redrive` and `aws` as a user meets them: the real binary in a fresh
//! folder, its words, its files and its exit status.

use std::path::Path;
use std::process::{Command, Output, Stdio};

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
