//! The seed's job through the whole pipeline: one `ferrotype run` over a folder of photos, with a profile
//! of exactly the seed's two variants (smart crop off, enlarge on), against one Node process doing the
//! seed's sharp calls on the same photos (bench/seed-job.mjs). Both whole processes, pinned to one core
//! (`taskset -c 0`), one thread each, alternating which goes first; wall time, and peak RSS from
//! `/usr/bin/time`.
//! Beside it, the sum of the stages' compute on the same photos (the `stages` worker), so what the run
//! spends outside rendering (start-up, the executor, local S3, the journal) shows as the difference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::measure::median;
use crate::stages::StageTimes;

/// The seed's job as a Ferrotype profile: its two cover JPEGs at sharp's default quality, enlarged as
/// sharp does by default, no smart crop (the seed centred).
pub const SEED_JOB_CONFIG: &str = r#"{
  "outputs": { "variantsPrefix": "variants/", "manifestsPrefix": "manifests/" },
  "profiles": [
    {
      "name": "seed",
      "prefix": "uploads/",
      "smartCrop": "off",
      "variants": [
        { "name": "thumbnail", "width": 300, "height": 300, "fit": "cover", "format": "jpeg", "quality": 80, "enlarge": true },
        { "name": "coverphoto", "width": 800, "height": 800, "fit": "cover", "format": "jpeg", "quality": 80, "enlarge": true }
      ]
    }
  ]
}
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineComparison {
    pub images: Vec<String>,
    pub rounds: usize,
    pub pinned: bool,
    /// Medians over the rounds of the whole process.
    pub ours_ms: f64,
    pub sharp_ms: f64,
    pub ours_peak_rss_kib: u64,
    pub sharp_peak_rss_kib: u64,
    /// The stages' compute on one thread, summed over the photos (validate + each render).
    pub stage_sum_ms: f64,
    /// `ferrotype --version` with nothing else: the process start-up alone.
    pub ours_start_ms: f64,
}

impl PipelineComparison {
    pub fn ratio(&self) -> f64 {
        self.ours_ms / self.sharp_ms
    }
}

/// One child's wall time and peak RSS in KiB. The command runs under `/usr/bin/time -f %M`: the kernel
/// charges a child the peak RSS of the process it was forked from until its exec, so wait4's ru_maxrss of
/// a child of this (large) benchmark process would report our own peak; `time` is small.
fn timed_child(mut command: Command) -> Result<(f64, u64)> {
    if !Path::new("/usr/bin/time").exists() {
        // Wall time alone; peak RSS reported as 0 (not measured).
        let start = Instant::now();
        let output = command
            .stdout(std::process::Stdio::null())
            .output()
            .with_context(|| format!("starting {command:?}"))?;
        if !output.status.success() {
            bail!(
                "{command:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        return Ok((start.elapsed().as_secs_f64() * 1000.0, 0));
    }
    let report = std::env::temp_dir().join(format!(
        "ferrotype-bench-rss-{}-{}",
        std::process::id(),
        next_report_number()
    ));
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let start = Instant::now();
    let output = timed
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("starting {command:?} under /usr/bin/time"))?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    let rss = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let rss_kib = rss
        .lines()
        .rev()
        .find_map(|line| line.trim().parse().ok())
        .with_context(|| format!("no peak RSS from /usr/bin/time for {command:?}: {rss:?}"))?;
    Ok((elapsed, rss_kib))
}

/// Distinguishes report files of one process.
fn next_report_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn pinned(program: &Path, pin: bool) -> Command {
    if pin {
        let mut command = Command::new("taskset");
        command.arg("-c").arg("0").arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub struct PipelineArgs<'a> {
    pub ferrotype: &'a Path,
    pub node: &'a str,
    pub seed_job: &'a Path,
    pub images: &'a [PathBuf],
    pub work: &'a Path,
    pub rounds: usize,
    pub stage_times: &'a [StageTimes],
}

pub fn measure(args: &PipelineArgs) -> Result<PipelineComparison> {
    if args.images.is_empty() {
        bail!("no images for the pipeline run");
    }
    let pin = Command::new("taskset")
        .args(["-c", "0", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let ferrotype = std::fs::canonicalize(args.ferrotype)
        .with_context(|| format!("{} (build it with --release)", args.ferrotype.display()))?;
    let seed_job = std::fs::canonicalize(args.seed_job)?;
    let (mut ours, mut sharp, mut ours_rss, mut sharp_rss) = (vec![], vec![], vec![], vec![]);
    let rounds: Vec<PathBuf> = (0..args.rounds.max(1))
        .map(|round| args.work.join(format!("round-{round}")))
        .collect();
    for dir in &rounds {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
    }
    // Each round's folder is kept until every round has run. Deleted between rounds, its ~200 files and
    // folders made the next round's file creations slower on file systems that avoid reusing recently
    // freed inodes (ext4 without a journal, as on our bench machine, scans past inodes freed in the last
    // 60–360 s): the harness's cleanup was charged to the next `ferrotype run`.
    for (round, dir) in rounds.iter().enumerate() {
        std::fs::create_dir_all(dir.join("uploads"))?;
        // Absolute: the sharp process runs in the script's folder, and its --out is under this one.
        let dir = std::fs::canonicalize(dir)?;
        let uploads = dir.join("uploads");
        for image in args.images {
            let name = image.file_name().context("an image without a name")?;
            std::fs::copy(image, uploads.join(name))?;
        }
        // The run takes ./ferrotype.json, as a user's would.
        std::fs::write(dir.join("ferrotype.json"), SEED_JOB_CONFIG)?;
        let run_ours = || -> Result<(f64, u64)> {
            let mut command = pinned(&ferrotype, pin);
            command
                .args(["run", "uploads", "--concurrency", "1"])
                .env("RAYON_NUM_THREADS", "1")
                .current_dir(&dir);
            timed_child(command)
        };
        let run_sharp = || -> Result<(f64, u64)> {
            let mut command = pinned(Path::new(args.node), pin);
            command
                .arg(&seed_job)
                .arg("--out")
                .arg(dir.join("sharp"))
                .args(args.images)
                .env("UV_THREADPOOL_SIZE", "1")
                // sharp is found from bench/node_modules beside the script.
                .current_dir(seed_job.parent().context("the script's folder")?);
            timed_child(command)
        };
        let (first, second) = if round % 2 == 0 {
            let a = run_ours()?;
            (a, run_sharp()?)
        } else {
            let b = run_sharp()?;
            (run_ours()?, b)
        };
        ours.push(first.0);
        ours_rss.push(first.1 as f64);
        sharp.push(second.0);
        sharp_rss.push(second.1 as f64);
    }
    for dir in &rounds {
        std::fs::remove_dir_all(dir)?;
    }
    let mut start = Vec::new();
    for _ in 0..5 {
        let mut command = pinned(&ferrotype, pin);
        command.arg("--version");
        start.push(timed_child(command)?.0);
    }
    let stage_sum_ms = args
        .stage_times
        .iter()
        .map(|t| t.validate_ms() + t.variants.iter().map(|v| v.1).sum::<f64>())
        .sum();
    Ok(PipelineComparison {
        images: args
            .images
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into())
            .collect(),
        rounds: args.rounds.max(1),
        pinned: pin,
        ours_ms: median(&ours),
        sharp_ms: median(&sharp),
        ours_peak_rss_kib: median(&ours_rss) as u64,
        sharp_peak_rss_kib: median(&sharp_rss) as u64,
        stage_sum_ms,
        ours_start_ms: median(&start),
    })
}

pub fn markdown(run: &PipelineComparison) -> String {
    let overhead = run.ours_ms - run.stage_sum_ms;
    format!(
        "## The seed's job through the whole pipeline\n\n\
         {} photos ({}); a 300×300 and an 800×800 cover JPEG of each, smart crop off, enlarged. Whole \
         processes, {}one thread each, median of {} rounds alternating which side goes first: \
         `ferrotype run uploads --concurrency 1` with that profile in ./ferrotype.json (the local runner: \
         the ASL executor, validate's one decode, a render-variant per variant, record-result, the local \
         S3 store and the journal) against one Node process making the seed's two sharp calls per photo \
         (bench/seed-job.mjs).\n\n\
         | | ours | sharp | ours/sharp |\n|---|---:|---:|---:|\n\
         | wall ms | {:.0} | {:.0} | **{:.2}×** |\n\
         | peak RSS MiB | {:.0} | {:.0} | {:.2}× |\n\n\
         Of our {:.0} ms, {:.0} ms are the stages' compute (validate's probe, decode and working copy, and \
         each render from the working copy, one thread, summed), {:.0} ms the process start (`ferrotype \
         --version`), and {:.0} ms the rest: the executor, the local S3 round trips, the journal and \
         the report.\n",
        run.images.len(),
        run.images.join(", "),
        if run.pinned {
            "pinned to one core (`taskset -c 0`), "
        } else {
            "not pinned (no taskset here), "
        },
        run.rounds,
        run.ours_ms,
        run.sharp_ms,
        run.ratio(),
        run.ours_peak_rss_kib as f64 / 1024.0,
        run.sharp_peak_rss_kib as f64 / 1024.0,
        run.ours_peak_rss_kib as f64 / run.sharp_peak_rss_kib.max(1) as f64,
        run.ours_ms,
        run.stage_sum_ms,
        run.ours_start_ms,
        (overhead - run.ours_start_ms).max(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_job_profile_is_a_valid_configuration_of_the_seeds_two_variants() {
        let config: ferrotype_core::config::Config = serde_json::from_str(SEED_JOB_CONFIG).unwrap();
        let profile = &config.profiles[0];
        assert_eq!(profile.smart_crop, ferrotype_core::config::SmartCrop::Off);
        let sizes: Vec<_> = profile
            .variants
            .iter()
            .map(|v| (v.width, v.height, v.enlarge))
            .collect();
        assert_eq!(
            sizes,
            [(Some(300), Some(300), true), (Some(800), Some(800), true)]
        );
    }

    #[test]
    fn a_failing_child_is_an_error_with_its_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo broken >&2; exit 3"]);
        let err = timed_child(command).unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
        let (ms, rss) = timed_child(Command::new("true")).unwrap();
        assert!(ms > 0.0);
        assert_eq!(rss > 0, Path::new("/usr/bin/time").exists());
    }
}
