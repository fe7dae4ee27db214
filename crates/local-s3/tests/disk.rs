//! The disk store: the browsable mirror and version files, two processes sharing one folder, processes
//! killed with SIGKILL mid-write, what dead processes leave behind, and a full disk.
//!
//! Child processes are this test binary run again on one of the `child_*` helpers below (ignored, so a
//! normal run skips them; they do nothing without their environment).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use ferrotype_local_s3::LocalS3;
use sha2::{Digest, Sha256};

const ROLE: &str = "FERROTYPE_STORE_TEST_ROLE";
const ROOT: &str = "FERROTYPE_STORE_TEST_ROOT";
const WRITER: &str = "FERROTYPE_STORE_TEST_WRITER";
const START: &str = "FERROTYPE_STORE_TEST_START";

fn key_dir(root: &Path, key: &str) -> PathBuf {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    root.join(".store/buckets")
        .join(BUCKET)
        .join("objects")
        .join(&hash[..2])
        .join(hash)
}

fn mirror(root: &Path, key: &str) -> PathBuf {
    root.join(BUCKET).join(key)
}

#[tokio::test]
async fn the_mirror_and_version_files_show_what_the_store_holds() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    let root = server.root().to_path_buf();

    let (_, v1) = put(&client, "uploads/red flower.jpg", b"first").await;
    assert_eq!(
        std::fs::read(mirror(&root, "uploads/red flower.jpg")).unwrap(),
        b"first"
    );
    let (_, v2) = put(&client, "uploads/red flower.jpg", b"second").await;
    assert_eq!(
        std::fs::read(mirror(&root, "uploads/red flower.jpg")).unwrap(),
        b"second"
    );
    // Mirrors are read-only: an editor cannot change a stored version through them.
    assert!(std::fs::metadata(mirror(&root, "uploads/red flower.jpg"))
        .unwrap()
        .permissions()
        .readonly());

    // Version files are immutable and keep the key's extension; the old one survives the new version.
    let old = server
        .version_file(BUCKET, "uploads/red flower.jpg", &v1)
        .unwrap();
    assert_eq!(old.extension().unwrap(), "jpg");
    assert_eq!(std::fs::read(&old).unwrap(), b"first");
    let current = server
        .current_file(BUCKET, "uploads/red flower.jpg")
        .unwrap();
    assert_eq!(
        current,
        server
            .version_file(BUCKET, "uploads/red flower.jpg", &v2)
            .unwrap()
    );
    assert_eq!(std::fs::read(&current).unwrap(), b"second");
    assert!(current.starts_with(root.join(".store")));

    // A delete removes the mirror (and the folder it emptied); the versions stay.
    let marker = client
        .delete_object()
        .bucket(BUCKET)
        .key("uploads/red flower.jpg")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    assert!(!mirror(&root, "uploads").exists());
    assert_eq!(server.current_file(BUCKET, "uploads/red flower.jpg"), None);
    assert_eq!(
        server.version_file(BUCKET, "uploads/red flower.jpg", &marker),
        None
    );
    assert_eq!(std::fs::read(&old).unwrap(), b"first");

    // "a" and "a/b" both exist as keys; only the first one written can be a file in the mirror.
    put(&client, "a", b"file a").await;
    put(&client, "a/b", b"file a/b").await;
    assert_eq!(get(&client, "a").await, b"file a");
    assert_eq!(get(&client, "a/b").await, b"file a/b");
    assert_eq!(std::fs::read(mirror(&root, "a")).unwrap(), b"file a");
    assert_eq!(
        std::fs::read(server.current_file(BUCKET, "a/b").unwrap()).unwrap(),
        b"file a/b"
    );

    // Keys that are no safe path are stored, never mirrored, and never reach outside the bucket folder.
    for key in ["x/../../escape", "dir/", "x//y", "./dot"] {
        put(&client, key, key.as_bytes()).await;
        assert_eq!(get(&client, key).await, key.as_bytes());
    }
    assert!(!root.join("escape").exists());
    assert!(!root.parent().unwrap().join("escape").exists());
    assert!(!mirror(&root, "x").exists());
}

#[tokio::test]
async fn a_store_persists_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    let server = LocalS3::start(dir.path(), &[BUCKET]).await.unwrap();
    let (_, version) = put(&server.client(), "kept.jpg", b"kept").await;
    server.shutdown().await;

    let again = LocalS3::start(dir.path(), &[BUCKET]).await.unwrap();
    let got = again
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("kept.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(got.version_id(), Some(version.as_str()));
    assert_eq!(body(got).await, b"kept");
}

#[tokio::test]
async fn leftovers_of_a_dead_process_are_repaired_while_another_process_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let alive = LocalS3::start(root, &[BUCKET]).await.unwrap();
    let client = alive.client();
    put(&client, "k.jpg", b"committed").await;

    // What a process killed mid-commit leaves: its lock file (no longer locked), temp files, an intent
    // naming the key, a version file moved in but never referenced, and a stale mirror.
    let store = root.join(".store");
    std::fs::write(store.join("procs/424242-dead.lock"), b"").unwrap();
    let dead_tmp = store.join("tmp/424242-dead");
    std::fs::create_dir_all(dead_tmp.join("intents")).unwrap();
    std::fs::write(dead_tmp.join("half-written.jpg"), b"partial").unwrap();
    let hash = hex::encode(Sha256::digest(b"k.jpg"));
    std::fs::write(
        dead_tmp.join("intents").join(format!("{BUCKET}~{hash}")),
        b"",
    )
    .unwrap();
    let orphan = key_dir(root, "k.jpg").join("ffffffffffffffffffffffffffffffff.jpg");
    std::fs::write(&orphan, b"never committed").unwrap();
    let stale = mirror(root, "k.jpg");
    std::fs::remove_file(&stale).unwrap();
    std::fs::write(&stale, b"stale").unwrap();
    let alive_tmp: Vec<PathBuf> = std::fs::read_dir(store.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &dead_tmp)
        .collect();
    assert_eq!(alive_tmp.len(), 1);

    let second = LocalS3::start(root, &[BUCKET]).await.unwrap();
    assert!(!dead_tmp.exists());
    assert!(!store.join("procs/424242-dead.lock").exists());
    assert!(!orphan.exists());
    assert_eq!(std::fs::read(&stale).unwrap(), b"committed");
    // The live process was left alone and keeps working, and both see each other's writes.
    assert!(alive_tmp[0].is_dir());
    put(&client, "k.jpg", b"from the first").await;
    assert_eq!(get(&second.client(), "k.jpg").await, b"from the first");
    put(&second.client(), "k.jpg", b"from the second").await;
    assert_eq!(get(&client, "k.jpg").await, b"from the second");
}

/// A child process running one of the helpers below, its output lines collected.
struct ChildProcess {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ChildProcess {
    fn spawn(role: &str, root: &Path, env: &[(&str, String)]) -> ChildProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                role,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(ROOT, root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        ChildProcess::watch(command.spawn().unwrap())
    }

    fn watch(mut child: Child) -> ChildProcess {
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print "test <name> ... " on the same line first.
                if let Some(at) = line.find("RESULT ") {
                    if sender
                        .send(line[at + "RESULT ".len()..].to_owned())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        ChildProcess { child, lines }
    }

    fn expect(&self, wanted: &str) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the child never said {wanted:?}"));
        assert_eq!(line, wanted);
    }

    fn finish(mut self) -> Vec<String> {
        let status = self.child.wait().unwrap();
        let lines: Vec<String> = self.lines.iter().collect();
        assert!(
            status.success(),
            "the child failed: {status}; its results: {lines:?}"
        );
        lines
    }
}

fn child_env(role: &str) -> Option<PathBuf> {
    (std::env::var(ROLE).ok().as_deref() == Some(role))
        .then(|| PathBuf::from(std::env::var(ROOT).unwrap()))
}

const RACE_KEYS: usize = 200;
const SHARED_PUTS: usize = 40;

#[test]
fn two_processes_race_on_one_folder_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start");
    let root = dir.path().join("data");
    let writers: Vec<ChildProcess> = (0..2)
        .map(|writer| {
            ChildProcess::spawn(
                "child_racer",
                &root,
                &[
                    (WRITER, writer.to_string()),
                    (START, start.display().to_string()),
                ],
            )
        })
        .collect();
    for writer in &writers {
        writer.expect("ready");
    }
    std::fs::write(&start, b"go").unwrap();
    let outputs: Vec<Vec<String>> = writers.into_iter().map(ChildProcess::finish).collect();

    let mut winners: HashMap<String, usize> = HashMap::new();
    let mut versions = HashSet::new();
    for (writer, lines) in outputs.iter().enumerate() {
        for line in lines {
            let mut words = line.split(' ');
            match (words.next(), words.next()) {
                (Some("won"), Some(key)) => {
                    assert!(
                        winners.insert(key.to_owned(), writer).is_none(),
                        "{key} won twice"
                    );
                }
                (Some("lost"), Some(_)) => {}
                (Some("put"), Some(version)) => assert!(versions.insert(version.to_owned())),
                other => panic!("unexpected child output {other:?}"),
            }
        }
    }
    assert_eq!(winners.len(), RACE_KEYS, "every key has exactly one winner");
    assert_eq!(
        versions.len(),
        2 * SHARED_PUTS,
        "every unconditional PUT is a version of its own"
    );
    let contested = outputs
        .iter()
        .map(|lines| lines.iter().filter(|l| l.starts_with("lost")).count())
        .sum::<usize>();
    assert_eq!(contested, RACE_KEYS);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = LocalS3::start(&root, &[BUCKET]).await.unwrap();
        let client = server.client();
        for (key, writer) in &winners {
            assert_eq!(
                get(&client, key).await,
                format!("writer {writer} {key}").as_bytes()
            );
        }
        let listed = client
            .list_object_versions()
            .bucket(BUCKET)
            .prefix("shared")
            .send()
            .await
            .unwrap();
        let stored: HashSet<String> = listed
            .versions()
            .iter()
            .map(|v| v.version_id().unwrap().to_owned())
            .collect();
        assert_eq!(stored, versions);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper run in a child process by two_processes_race_on_one_folder_without_losing_anything"]
async fn child_racer() {
    let Some(root) = child_env("child_racer") else {
        return;
    };
    let writer: usize = std::env::var(WRITER).unwrap().parse().unwrap();
    let start = PathBuf::from(std::env::var(START).unwrap());
    let server = LocalS3::start(&root, &[BUCKET]).await.unwrap();
    let client = server.client();
    println!("RESULT ready");
    while !start.exists() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for i in 0..RACE_KEYS {
        let key = format!("race/{i}");
        let result = client
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(
                format!("writer {writer} {key}").into_bytes(),
            ))
            .send()
            .await;
        match result {
            Ok(_) => println!("RESULT won {key}"),
            Err(err) if status(&err) == Some(412) => println!("RESULT lost {key}"),
            Err(err) => panic!("{key}: {err:?}"),
        }
    }
    for i in 0..SHARED_PUTS {
        let (_, version) = put(
            &client,
            "shared",
            format!("writer {writer} put {i}").as_bytes(),
        )
        .await;
        println!("RESULT put {version}");
    }
}

const CRASH_KEYS: usize = 6;

/// A body that proves itself: the key, a serial, filler, then the MD5 of all that.
fn self_checking_body(key: &str, serial: u64, len: usize) -> Vec<u8> {
    let mut body = format!("{key}\n{serial}\n").into_bytes();
    body.extend((0..len).map(|i| (i as u64 ^ serial) as u8));
    let digest = md5::Md5::digest(&body);
    body.extend_from_slice(&digest);
    body
}

fn check_body(key: &str, body: &[u8]) {
    assert!(body.len() > 16, "{key}: a truncated body");
    let (content, digest) = body.split_at(body.len() - 16);
    assert_eq!(&md5::Md5::digest(content)[..], digest, "{key}: a torn body");
    assert!(
        content.starts_with(format!("{key}\n").as_bytes()),
        "{key}: another key's body"
    );
}

#[test]
fn a_process_killed_at_any_moment_never_wedges_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut writes_seen, mut interrupted_commits, mut interrupted_uploads) = (0, 0, 0);
    let rounds = 20;
    for round in 0..rounds {
        let mut writer = ChildProcess::spawn("child_crasher", &root, &[]);
        writer.expect("ready");
        // Let it finish a few writes (four are in flight at any time), then kill it wherever it is.
        for _ in 0..fastrand::usize(1..12) {
            writer.expect("wrote");
            writes_seen += 1;
        }
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..20_000)));
        writer.child.kill().unwrap();
        writer.child.wait().unwrap();
        writes_seen += writer.lines.try_iter().filter(|l| l == "wrote").count();
        let (intents, staged) = dead_process_leftovers(&root);
        interrupted_commits += intents;
        interrupted_uploads += staged;

        runtime.block_on(async {
            // Opening repairs what the killed process left; then every key reads consistently.
            let server = LocalS3::start(&root, &[BUCKET]).await.unwrap();
            let client = server.client();
            let mut present = Vec::new();
            for k in 0..CRASH_KEYS {
                let key = format!("k{k}.bin");
                match client.get_object().bucket(BUCKET).key(&key).send().await {
                    Ok(out) => {
                        let etag = out.e_tag().unwrap().to_owned();
                        let bytes = body(out).await;
                        check_body(&key, &bytes);
                        assert_eq!(etag, format!("\"{}\"", md5_hex(&bytes)), "round {round}");
                        assert_eq!(
                            std::fs::read(mirror(&root, &key)).unwrap(),
                            bytes,
                            "round {round}"
                        );
                        present.push(key);
                    }
                    Err(err) => {
                        assert_eq!(status(&err), Some(404), "round {round} {key}: {err:?}");
                        assert!(
                            !mirror(&root, &key).exists(),
                            "round {round}: a stale mirror"
                        );
                    }
                }
            }
            assert_eq!(list_keys(&client, "").await, present, "round {round}");
            check_no_leftovers(&root, round);
            server.shutdown().await;
        });
    }
    assert!(
        writes_seen >= rounds,
        "the writers barely wrote: {writes_seen} writes"
    );
    println!(
        "{rounds} writers killed after {writes_seen} completed writes in all; they left \
         {interrupted_commits} commits and {interrupted_uploads} staged bodies unfinished, all repaired"
    );
}

/// What the killed process left in its temp folder: (keys it was committing, bodies it was staging).
fn dead_process_leftovers(root: &Path) -> (usize, usize) {
    let mut counts = (0, 0);
    for temp in std::fs::read_dir(root.join(".store/tmp")).unwrap() {
        let temp = temp.unwrap().path();
        counts.0 += std::fs::read_dir(temp.join("intents")).map_or(0, |d| d.count());
        counts.1 += std::fs::read_dir(&temp)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count();
    }
    counts
}

/// After a repairing open: the only temp folder is the live process's, with no intent and no staged file;
/// every key folder holds its record and the version files it references, nothing else.
fn check_no_leftovers(root: &Path, round: usize) {
    let store = root.join(".store");
    let temps: Vec<PathBuf> = std::fs::read_dir(store.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(temps.len(), 1, "round {round}: {temps:?}");
    let leftover: Vec<_> = std::fs::read_dir(&temps[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(leftover, [temps[0].join("intents")], "round {round}");
    assert_eq!(
        std::fs::read_dir(temps[0].join("intents")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(store.join("procs")).unwrap().count(), 1);
    for k in 0..CRASH_KEYS {
        let dir = key_dir(root, &format!("k{k}.bin"));
        let Ok(record) = std::fs::read(dir.join("record.json")) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        let mut expected: Vec<String> = record["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["object"]["blob"].as_str().map(str::to_owned))
            .collect();
        expected.push("record.json".to_owned());
        expected.sort();
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, expected, "round {round}: k{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper run in a child process by a_process_killed_at_any_moment_never_wedges_a_key"]
async fn child_crasher() {
    let Some(root) = child_env("child_crasher") else {
        return;
    };
    let server = LocalS3::start(&root, &[BUCKET]).await.unwrap();
    let client = server.client();
    println!("RESULT ready");
    let serial = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(fastrand::u64(..1 << 40)));
    let workers = (0..4).map(|_| {
        let (client, serial) = (client.clone(), serial.clone());
        tokio::spawn(async move {
            let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
            loop {
                let key = format!("k{}.bin", fastrand::usize(..CRASH_KEYS));
                let n = serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match fastrand::u8(..10) {
                    0 => {
                        client
                            .delete_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .send()
                            .await
                            .unwrap();
                    }
                    1 => {
                        // Delete one old version for good, if this worker made one.
                        if let Some(version) = versions.get_mut(&key).and_then(|v| v.pop()) {
                            client
                                .delete_object()
                                .bucket(BUCKET)
                                .key(&key)
                                .version_id(version)
                                .send()
                                .await
                                .unwrap();
                        }
                    }
                    _ => {
                        let body = self_checking_body(&key, n, fastrand::usize(..256 * 1024));
                        let (_, version) = put(&client, &key, &body).await;
                        versions.entry(key).or_default().push(version);
                    }
                }
                println!("RESULT wrote");
            }
        })
    });
    futures::future::join_all(workers).await;
}

#[test]
fn a_full_disk_is_a_clear_error_that_changes_nothing() {
    // A 3 MiB tmpfs in a private mount namespace of a child process: a real ENOSPC, gone with the child.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("small-disk");
    std::fs::create_dir_all(&root).unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = "mount -t tmpfs -o size=3m tmpfs \"$FERROTYPE_STORE_TEST_ROOT\" && exec \"$0\" child_full_disk --exact --ignored --nocapture --test-threads=1";
    let attempts: [&[&str]; 2] = [
        &["--mount", "--propagation", "private"],
        &[
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
        ],
    ];
    for flags in attempts {
        let spawned = Command::new("unshare")
            .args(flags)
            .args(["sh", "-c", script])
            .arg(&exe)
            .env(ROLE, "child_full_disk")
            .env(ROOT, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else { continue };
        let child = ChildProcess::watch(child);
        let status_and_lines = {
            let mut child = child;
            let status = child.child.wait().unwrap();
            (status, child.lines.iter().collect::<Vec<_>>())
        };
        match status_and_lines {
            (status, lines) if lines.first().map(String::as_str) == Some("mounted") => {
                assert!(status.success(), "the full-disk checks failed: {lines:?}");
                assert_eq!(lines.last().map(String::as_str), Some("all checks passed"));
                return;
            }
            // Mounting was not permitted this way: try the next.
            _ => continue,
        }
    }
    assert!(
        std::env::var_os("FERROTYPE_SKIP_TMPFS_TESTS").is_some(),
        "cannot mount a small tmpfs for the full-disk test (needs root or user namespaces); set \
         FERROTYPE_SKIP_TMPFS_TESTS=1 to skip it knowingly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper run in a child process by a_full_disk_is_a_clear_error_that_changes_nothing"]
async fn child_full_disk() {
    let Some(root) = child_env("child_full_disk") else {
        return;
    };
    println!("RESULT mounted");
    let server = LocalS3::start(&root, &[BUCKET]).await.unwrap();
    let client = server.client();
    put(&client, "k.jpg", b"the old version").await;

    // Larger than the disk: refused with a 500 that says why; the old version is intact.
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k.jpg")
        .body(ByteStream::from(vec![7u8; 4 * 1024 * 1024]))
        .send()
        .await
        .unwrap_err();
    let (status, code) = failure(&err);
    assert_eq!(
        (status, code.as_deref()),
        (Some(500), Some("InternalError"))
    );
    let message = aws_sdk_s3::error::ProvideErrorMetadata::message(&err).unwrap_or_default();
    assert!(
        message.to_lowercase().contains("no space left on device"),
        "{message}"
    );
    assert_eq!(get(&client, "k.jpg").await, b"the old version");

    // Fill the disk key by key: the write that fails leaves no trace, the others read back whole.
    let mut stored = Vec::new();
    for i in 0.. {
        let key = format!("fill/{i}.bin");
        let bytes = vec![(i % 256) as u8; 97 * 1024];
        match client
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
        {
            Ok(_) => stored.push((key, bytes)),
            Err(err) => {
                assert_eq!(failure(&err).0, Some(500));
                let err = client
                    .head_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_err();
                assert_eq!(common::status(&err), Some(404));
                break;
            }
        }
        assert!(i < 100, "the small disk never filled");
    }
    assert!(!stored.is_empty());
    for (key, bytes) in &stored {
        assert_eq!(&get(&client, key).await, bytes);
    }
    let mut listed = list_keys(&client, "fill/").await;
    let mut expected: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    // No staged bytes are left behind by the failed writes.
    let temps: Vec<PathBuf> = std::fs::read_dir(root.join(".store/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for temp in temps {
        let files: Vec<_> = std::fs::read_dir(&temp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files, [temp.join("intents")]);
    }
    println!("RESULT all checks passed");
}
