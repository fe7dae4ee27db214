//! `ferrotype-bench all`: every measurement, assembled into one markdown report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cold_start::{self, ColdStart, Target};
use crate::compare::{self, Comparison, Mode};
use crate::cost::{self, Stage};
use crate::measure::{cpu_model, load_average};
use crate::stages::StageTimes;
use crate::{largest, pipeline, throughput, CompareArgs};

const LAMBDAS: [&str; 4] = [
    "validate",
    "detect-faces",
    "render-variant",
    "record-result",
];
/// The seed's Lambda: Node.js on x86_64 (the runtime's default architecture) at 1536 MB.
const SEED_MEMORY_MIB: u32 = 1536;

#[derive(clap::Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub(crate) compare: CompareArgs,
    /// Where the release binaries are: the four Lambda bootstraps and `ferrotype`.
    #[arg(long, default_value = "target/release")]
    pub(crate) bin_dir: PathBuf,
    /// The repository root (ferrotype.json, statemachine/, cdk/).
    #[arg(long, default_value = ".")]
    pub(crate) repo: PathBuf,
    /// Cold starts timed per binary.
    #[arg(long, default_value_t = 10)]
    cold_starts: usize,
    /// Images pushed through `ferrotype run` for the throughput figure.
    #[arg(long, default_value_t = 24)]
    throughput_images: usize,
    /// Skip the 100-megapixel measurement (it generates ~100 MB of images).
    #[arg(long)]
    skip_largest: bool,
}

fn git_commit(repo: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn stage_times(images: &[PathBuf], config: &Path) -> Result<Vec<StageTimes>> {
    let output = Command::new(std::env::current_exe()?)
        .arg("stages")
        .args(images)
        .arg("--config")
        .arg(config)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .context("starting the stages worker")?;
    if !output.status.success() {
        anyhow::bail!(
            "the stages worker failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("parsing stage times"))
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

struct Memories {
    small: u32,
    decode: u32,
}

fn memories(repo: &Path, max_pixels: u64) -> (Memories, String) {
    let stack =
        std::fs::read_to_string(repo.join("cdk/lib/ferrotype-stack.ts")).unwrap_or_default();
    let (small, note) = match cost::small_stage_memory_mib(&stack) {
        Some(mib) => (mib, "read from cdk/lib/ferrotype-stack.ts"),
        None => (
            256,
            "SMALL_STAGE_MEMORY_MIB not found in cdk/lib/ferrotype-stack.ts; assumed 256",
        ),
    };
    let decode = cost::decode_memory_mib(max_pixels);
    (
        Memories { small, decode },
        format!(
            "validate and record-result {small} MiB ({note}); detect-faces and render-variant {decode} MiB \
             (cdk/lib/memory.ts for maxPixels {max_pixels})"
        ),
    )
}

fn cold_start_of(cold: &[ColdStart], name: &str, fallback_ms: f64) -> (f64, &'static str) {
    match cold.iter().find(|c| c.name == name) {
        Some(c) => (c.median_ms, "measured"),
        None => (fallback_ms, "published figure (FACTS.md)"),
    }
}

/// The cost model's inputs from this run's measurements (bench/src/cost.rs has the model): validate's
/// probe, single decode and working-copy encode, and each later stage's time including its decode of
/// the working copy, all measured by `stages.rs` on one thread; `log_event_bytes` from a local run's
/// histories. Rows for the project's default profile on every path, then the seed's own job (two
/// variants, smart crop off) on the Express paths, beside the seed.
fn cost_model(
    repo: &Path,
    comparison: &Comparison,
    times: &[StageTimes],
    seed_job_times: &[StageTimes],
    cold: &[ColdStart],
    log_event_bytes: (f64, &str),
) -> Result<(Vec<cost::PathCost>, cost::PathCost)> {
    let asl = cost::read_asl(&repo.join("statemachine/pipeline.asl.json"))?;
    let (specs, limits) = crate::stages::default_profile(&repo.join("ferrotype.json"))?;
    let largest_variant = specs
        .iter()
        .map(|spec| {
            let width = spec.width.or(spec.height).unwrap_or(0);
            let height = spec.height.or(spec.width).unwrap_or(0);
            u64::from(width) * u64::from(height)
        })
        .max()
        .unwrap_or(0);
    let working_copy_mib = cost::working_copy_memory_mib(limits.max_pixels, largest_variant, true);
    let memories = cost::Memories {
        validate: cost::decode_memory_mib(limits.max_pixels),
        faces: working_copy_mib,
        render: working_copy_mib,
        record: cost::RECORD_RESULT_MEMORY_MIB,
    };
    let (rust_cold, rust_cold_basis) = cold_start_of(cold, "render-variant", 14.0);
    let workload = |times: &[StageTimes], faces: bool| cost::Workload {
        source_bytes: mean(times.iter().map(|t| t.source_bytes as f64)),
        // Measured: validate probes, decodes once and encodes the working copy; every later stage
        // decodes the working copy, and its measured time includes that.
        working_copy_bytes: mean(times.iter().map(|t| t.working_copy_bytes as f64)),
        validate_cpu_ms: mean(times.iter().map(StageTimes::validate_ms)),
        faces_cpu_ms: if faces {
            mean(times.iter().map(|t| t.faces_ms))
        } else {
            0.0
        },
        variants: times
            .first()
            .map(|t| t.variants.iter().map(|v| v.0.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    name.clone(),
                    mean(times.iter().map(|t| t.variants[i].1)),
                    mean(times.iter().map(|t| t.variants[i].2 as f64)),
                )
            })
            .collect(),
        record_cpu_ms: 5.0,
        cold_start_ms: rust_cold,
        log_event_bytes: log_event_bytes.0,
        basis: format!(
            "this run's stage timings (cold starts: {rust_cold_basis}; log events: {})",
            log_event_bytes.1
        ),
    };
    let default_profile = workload(times, true);
    let mut paths = [
        cost::PipelinePath::Standard,
        cost::PipelinePath::Express,
        cost::PipelinePath::ExpressErrorLogs,
        cost::PipelinePath::Backfill,
    ]
    .into_iter()
    .map(|path| cost::path_cost(path, &asl, &default_profile, &memories))
    .collect::<Result<Vec<_>>>()?;
    for path in &mut paths {
        path.title = format!(
            "Default profile (3 variants, built-in faces): {}",
            path.title
        );
    }
    if !seed_job_times.is_empty() {
        let seed_job = workload(seed_job_times, false);
        for path in [
            cost::PipelinePath::Express,
            cost::PipelinePath::ExpressErrorLogs,
        ] {
            let mut cost = cost::path_cost(path, &asl, &seed_job, &memories)?;
            cost.title = format!(
                "The seed's job (2 variants, smart crop off): {}",
                cost.title
            );
            paths.push(cost);
        }
    }
    let source_bytes = default_profile.source_bytes;

    let single = comparison
        .modes
        .iter()
        .find(|m| m.mode == Mode::Single)
        .or(comparison.modes.first());
    let sharp_ms = single.map(|m| m.mean_ms(|i| &i.sharp)).unwrap_or(f64::NAN);
    let seed_out_bytes = single
        .map(|m| {
            mean(
                m.images
                    .iter()
                    .map(|i| i.sharp.bytes.iter().map(|b| b.1 as f64).sum::<f64>()),
            )
        })
        .unwrap_or(0.0);
    let (seed_cold, seed_cold_basis) = cold_start_of(cold, "seed-node-sharp", 425.0);
    let seed = cost::seed_cost(&Stage {
        name: format!("seed (sharp; cold start: {seed_cold_basis})"),
        memory_mib: SEED_MEMORY_MIB,
        invocations: 1.0,
        cpu_ms: sharp_ms,
        io_ms: cost::s3_get_ms(source_bytes)
            + 2.0 * cost::S3_ROUND_TRIP_MS
            + cost::s3_transfer_ms(seed_out_bytes),
        cold_start_ms: seed_cold,
        gb_second_price: cost::X86_64_GB_SECOND,
        basis: "sharp measured (1 thread) + 1 S3 GET and 2 PUTs assumed".into(),
    });
    Ok((paths, seed))
}

fn cold_starts(
    bin_dir: &Path,
    repo: &Path,
    args: &AllArgs,
    memories: &Memories,
) -> (Vec<ColdStart>, Vec<String>) {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let config = std::fs::read_to_string(repo.join("ferrotype.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut targets = Vec::new();
    for name in LAMBDAS {
        let program = bin_dir.join(name);
        if !program.exists() {
            notes.push(format!(
                "{name}: not built ({} missing; `cargo build --release -p {name}`)",
                program.display()
            ));
            continue;
        }
        let memory_mib = if name == "record-result" {
            memories.small
        } else {
            memories.decode
        };
        targets.push(Target {
            name: name.into(),
            program,
            args: vec![],
            env: vec![
                ("FERROTYPE_CONFIG".into(), config.clone()),
                ("OUTPUT_BUCKET".into(), "bench-output".into()),
            ],
            memory_mib,
        });
    }
    targets.push(Target {
        name: "seed-node-sharp".into(),
        program: PathBuf::from(&args.compare.node),
        args: vec![repo
            .join("bench/seed-cold-start.mjs")
            .to_string_lossy()
            .into_owned()],
        env: vec![],
        memory_mib: SEED_MEMORY_MIB,
    });
    for target in targets {
        match cold_start::measure(&target, args.cold_starts) {
            Ok(c) => {
                eprintln!("[cold start] {}: {:.1} ms", c.name, c.median_ms);
                results.push(c)
            }
            Err(e) => notes.push(format!("{}: {e:#}", target.name)),
        }
    }
    (results, notes)
}

/// The stages' compute on `images` with the seed's profile (the `stages` worker, one thread).
pub(crate) fn seed_job_stage_times(args: &AllArgs, images: &[PathBuf]) -> Result<Vec<StageTimes>> {
    let work = args.compare.out.join("pipeline");
    std::fs::create_dir_all(&work)?;
    let config = work.join("seed-job.json");
    std::fs::write(&config, pipeline::SEED_JOB_CONFIG)?;
    stage_times(images, &config)
}

/// [`pipeline::measure`] on `images` with the seed's profile; `times` from [`seed_job_stage_times`].
pub(crate) fn seed_job_through_the_pipeline(
    args: &AllArgs,
    ferrotype: &Path,
    images: &[PathBuf],
    times: &[StageTimes],
) -> Result<pipeline::PipelineComparison> {
    let work = args.compare.out.join("pipeline");
    pipeline::measure(&pipeline::PipelineArgs {
        ferrotype,
        node: &args.compare.node,
        seed_job: &args.repo.join("bench/seed-job.mjs"),
        images,
        work: &work,
        rounds: args.compare.rounds.max(3),
        stage_times: times,
    })
}

pub fn all(args: &AllArgs) -> Result<()> {
    let out = &args.compare.out;
    let repo = &args.repo;
    let options = crate::compare_options(&args.compare)?;
    let load_start = load_average();
    let mut md = String::new();
    let _ = writeln!(md, "# Ferrotype against the seed's sharp Lambda\n");
    let _ = writeln!(
        md,
        "Commit {} · {} · {} cores · load average at start {} · run by `make bench` (bench/run.sh).\n",
        git_commit(repo),
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        load_start
    );
    let names: Vec<String> = options
        .images
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let _ = writeln!(md, "Images: {}.\n", names.join(", "));

    // 1. Speed, memory, size and quality against sharp.
    let comparison = compare::run(&options)?;
    std::fs::write(
        out.join("compare.json"),
        serde_json::to_vec_pretty(&comparison)?,
    )?;
    let _ = writeln!(
        md,
        "## Ours against sharp: time, peak memory, output size, quality\n"
    );
    md.push_str(&compare::markdown(&comparison));

    // 2. Stage compute, for the cost model.
    let times = stage_times(&options.images, &repo.join("ferrotype.json"))?;
    let (_, limits) = crate::stages::default_profile(&repo.join("ferrotype.json"))?;
    let (memories, _) = memories(repo, limits.max_pixels);
    let _ = writeln!(
        md,
        "## Compute per stage (one thread, default profile, mean over the images; every stage after \
         validate reads the working copy, and its time includes decoding it)\n"
    );
    let _ = writeln!(
        md,
        "| image | probe ms | decode ms | working copy (encode ms, KiB) | faces ms (found) | {} |",
        times
            .first()
            .map(|t| t
                .variants
                .iter()
                .map(|v| format!("{} ms", v.0))
                .collect::<Vec<_>>()
                .join(" | "))
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|{}",
        "---:|".repeat(times.first().map(|t| t.variants.len()).unwrap_or(0))
    );
    for t in &times {
        let variants: Vec<String> = t.variants.iter().map(|v| format!("{:.1}", v.1)).collect();
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.1} | {}×{} ({:.1} ms, {}) | {:.1} ({}) | {} |",
            t.image,
            t.probe_ms,
            t.decode_ms,
            t.working_copy_size.0,
            t.working_copy_size.1,
            t.encode_ms,
            t.working_copy_bytes / 1024,
            t.faces_ms,
            t.faces_found,
            variants.join(" | ")
        );
    }
    md.push('\n');

    // 3. The largest image the default profile accepts.
    let _ = writeln!(
        md,
        "## The largest accepted image (100 MP), one variant per process\n"
    );
    if args.skip_largest {
        let _ = writeln!(md, "Skipped (--skip-largest).\n");
    } else {
        match largest::measure(
            &out.join("largest"),
            &args.compare.node,
            &args.compare.sharp_worker,
        ) {
            Ok(runs) => {
                md.push_str(&largest::markdown(&runs, memories.decode));
                let _ = writeln!(md, "\nMedian of 3 runs after an untimed one, in one process per side and variant. Ours at the default threading; sharp with concurrency 1. Generated images without sensor grain (a grainy 100 MP PNG exceeds the 50 MB object limit).\n");
            }
            Err(e) => {
                let _ = writeln!(md, "Not measured: {e:#}\n");
            }
        }
    }

    // 4. Cold starts and sizes.
    let (cold, cold_notes) = cold_starts(&args.bin_dir, repo, args, &memories);
    let _ = writeln!(
        md,
        "## Cold start: process start until the first poll of the Runtime API\n"
    );
    let _ = writeln!(md, "Against a stand-in Runtime API on 127.0.0.1 (bench/src/cold_start.rs), median of {} starts after one untimed start; host build (x86_64), not the arm64 bootstrap.\n", args.cold_starts);
    let _ = writeln!(
        md,
        "| binary | median ms | min | max | RSS at first poll MiB |\n|---|---:|---:|---:|---:|"
    );
    for c in &cold {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.name,
            c.median_ms,
            c.min_ms,
            c.max_ms,
            c.rss_at_poll_kib as f64 / 1024.0
        );
    }
    for note in &cold_notes {
        let _ = writeln!(md, "\n- {note}");
    }
    let _ = writeln!(md, "\nseed-node-sharp is Node starting, importing sharp and polling (bench/seed-cold-start.mjs): it leaves out the managed runtime's client and the AWS SDK, so the seed's real cold start is longer.\n");
    let _ = writeln!(
        md,
        "## Release bootstrap sizes ({})\n",
        args.bin_dir.display()
    );
    let _ = writeln!(md, "| binary | MiB |\n|---|---:|");
    for name in LAMBDAS {
        match std::fs::metadata(args.bin_dir.join(name)) {
            Ok(m) => {
                let _ = writeln!(md, "| {name} | {:.1} |", m.len() as f64 / (1024.0 * 1024.0));
            }
            Err(_) => {
                let _ = writeln!(md, "| {name} | not built |");
            }
        }
    }
    let _ = writeln!(md, "\nHost (x86_64) release builds with the workspace's release profile (thin LTO, symbols stripped); the deployed arm64 bootstraps come from `make lambdas`.\n");

    // 5. The local pipeline's throughput.
    let _ = writeln!(md, "## Local pipeline throughput (`ferrotype run`)\n");
    let ferrotype = args.bin_dir.join("ferrotype");
    if ferrotype.exists() && throughput::has_run_command(&ferrotype) {
        match throughput::measure(
            &ferrotype,
            &options.images,
            args.throughput_images,
            &out.join("throughput"),
        ) {
            Ok(t) => {
                let _ = writeln!(
                    md,
                    "{} images in {:.1} s on {} cores: **{:.0} images per minute** (default profile: validate, builtin faces, {} variants, manifest).\n",
                    t.images, t.seconds, t.cores, t.images_per_minute, times.first().map(|t| t.variants.len()).unwrap_or(0)
                );
            }
            Err(e) => {
                let _ = writeln!(md, "Not measured: {e:#}\n");
            }
        }
    } else {
        let _ = writeln!(
            md,
            "Not measured: {} has no `run` command yet.\n",
            ferrotype.display()
        );
    }

    // 6. The seed's job through the whole pipeline against the seed's process.
    let seed_job_times = seed_job_stage_times(args, &options.images).unwrap_or_else(|e| {
        eprintln!("[seed job] stage times not measured: {e:#}");
        Vec::new()
    });
    if ferrotype.exists() {
        match seed_job_through_the_pipeline(args, &ferrotype, &options.images, &seed_job_times) {
            Ok(run) => md.push_str(&pipeline::markdown(&run)),
            Err(e) => {
                let _ = writeln!(
                    md,
                    "## The seed's job through the whole pipeline\n\nNot measured: {e:#}\n"
                );
            }
        }
    }

    // 7. Cost.
    let _ = writeln!(md, "## Cost per million images\n");
    // Each Lambda line of the cost tables names its memory (cdk/lib/memory.ts, mirrored in cost.rs).
    let log_event_bytes = throughput::history_event_bytes(&out.join("throughput"))
        .map(|bytes| (bytes, "bytes measured on the throughput run's histories"))
        .unwrap_or((1000.0, "1,000 bytes assumed (no local history to measure)"));
    match cost_model(
        repo,
        &comparison,
        &times,
        &seed_job_times,
        &cold,
        log_event_bytes,
    ) {
        Ok((paths, seed)) => md.push_str(&cost::markdown(&paths, &seed)),
        Err(e) => {
            let _ = writeln!(md, "Not computed: {e:#}");
        }
    }
    let _ = writeln!(md, "\n\nLoad average at the end: {}.", load_average());
    print!("{md}");
    crate::write_report(out, "report.md", &md)
}
