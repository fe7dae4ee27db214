//! Ours against sharp on the same images, same machine, alternating processes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::measure::{geometric_mean, load_average, median};
use crate::quality;
use crate::worker::WorkerResult;

/// How many threads each side may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One thread each: RAYON_NUM_THREADS=1 for ours, sharp.concurrency(1).
    Single,
    /// Each library's own default.
    Default,
    /// Every core for both: ours' default, sharp.concurrency(<cores>).
    Cores,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Single => "one thread each".into(),
            Mode::Default => "each library's default threading".into(),
            Mode::Cores => format!("all {} cores for both", cores()),
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Default => "default",
            Mode::Cores => "cores",
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub struct CompareOptions {
    pub images: Vec<PathBuf>,
    pub rounds: usize,
    pub runs: usize,
    pub warmup: usize,
    pub modes: Vec<Mode>,
    pub out: PathBuf,
    pub node: String,
    pub sharp_worker: PathBuf,
}

/// One side's figures on one image in one mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SideFigures {
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// Median wall time per variant, by name (ours only).
    pub variant_ms: Vec<(String, f64)>,
    pub peak_rss_kib: u64,
    pub bytes: Vec<(String, u64)>,
    pub threads: serde_json::Value,
    pub samples: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFigures {
    pub image: String,
    pub megapixels: f64,
    pub ours: SideFigures,
    pub sharp: SideFigures,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeFigures {
    pub mode: Mode,
    pub images: Vec<ImageFigures>,
    pub load_before: String,
    pub load_after: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityFigures {
    pub image: String,
    pub variant: String,
    pub ours_ssim: f64,
    pub sharp_ssim: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub modes: Vec<ModeFigures>,
    pub quality: Vec<QualityFigures>,
    pub sharp_version: Option<String>,
    pub rounds: usize,
    pub runs: usize,
}

impl ModeFigures {
    /// Mean over images of each side's median ms per image.
    pub fn mean_ms(&self, side: impl Fn(&ImageFigures) -> &SideFigures) -> f64 {
        self.images.iter().map(|i| side(i).wall_ms).sum::<f64>() / self.images.len().max(1) as f64
    }
    pub fn mean_cpu_ms(&self, side: impl Fn(&ImageFigures) -> &SideFigures) -> f64 {
        self.images.iter().map(|i| side(i).cpu_ms).sum::<f64>() / self.images.len().max(1) as f64
    }
    pub fn max_rss_kib(&self, side: impl Fn(&ImageFigures) -> &SideFigures) -> u64 {
        self.images
            .iter()
            .map(|i| side(i).peak_rss_kib)
            .max()
            .unwrap_or(0)
    }
    /// Mean over images of our median wall time of the named variant alone.
    pub fn mean_variant_ms(&self, name: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .images
            .iter()
            .filter_map(|i| {
                i.ours
                    .variant_ms
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, ms)| *ms)
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
}

fn run_worker(mut command: Command, what: &str) -> Result<WorkerResult> {
    let output = command
        .output()
        .with_context(|| format!("starting the {what} worker"))?;
    if !output.status.success() {
        bail!(
            "the {what} worker failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("no JSON line from worker")?;
    serde_json::from_str(line)
        .with_context(|| format!("parsing the {what} worker's report: {line}"))
}

fn ours_command(image: &Path, opts: &CompareOptions, mode: Mode, out: &Path) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe().context("locating ferrotype-bench")?);
    command
        .arg("ours")
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out);
    command.args([
        "--runs",
        &opts.runs.to_string(),
        "--warmup",
        &opts.warmup.to_string(),
    ]);
    match mode {
        Mode::Single => command.env("RAYON_NUM_THREADS", "1"),
        Mode::Default | Mode::Cores => command.env_remove("RAYON_NUM_THREADS"),
    };
    Ok(command)
}

fn sharp_command(image: &Path, opts: &CompareOptions, mode: Mode, out: &Path) -> Command {
    let mut command = Command::new(&opts.node);
    command
        .arg(&opts.sharp_worker)
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out);
    command.args([
        "--runs",
        &opts.runs.to_string(),
        "--warmup",
        &opts.warmup.to_string(),
    ]);
    let concurrency = match mode {
        Mode::Single => "1".to_string(),
        Mode::Default => "default".to_string(),
        Mode::Cores => cores().to_string(),
    };
    command.args(["--concurrency", &concurrency]);
    command
}

/// The name our per-stage figures give validate's work (the decode and the working copy's encoding).
const VALIDATE_STAGE: &str = "validate";

fn summarise(results: &[WorkerResult]) -> SideFigures {
    let wall: Vec<f64> = results
        .iter()
        .flat_map(|r| r.wall_ms.iter().copied())
        .collect();
    let cpu: Vec<f64> = results
        .iter()
        .flat_map(|r| r.cpu_ms.iter().copied())
        .collect();
    let last = results.last().expect("at least one round");
    let validate: Vec<f64> = results
        .iter()
        .flat_map(|r| r.validate_wall_ms.iter().copied())
        .collect();
    let variant_ms = (!validate.is_empty())
        .then(|| (VALIDATE_STAGE.to_string(), median(&validate)))
        .into_iter()
        .chain(last.variants.iter().enumerate().filter_map(|(i, v)| {
            let samples: Vec<f64> = results
                .iter()
                .filter_map(|r| r.variant_wall_ms.get(i))
                .flat_map(|s| s.iter().copied())
                .collect();
            (!samples.is_empty()).then(|| (v.name.clone(), median(&samples)))
        }))
        .collect();
    SideFigures {
        wall_ms: median(&wall),
        cpu_ms: median(&cpu),
        variant_ms,
        peak_rss_kib: results.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
        bytes: last
            .variants
            .iter()
            .map(|v| (v.name.clone(), v.bytes))
            .collect(),
        threads: last.threads.clone(),
        samples: wall.len(),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

fn megapixels(path: &Path) -> f64 {
    image::image_dimensions(path)
        .map(|(w, h)| w as f64 * h as f64 / 1e6)
        .unwrap_or(f64::NAN)
}

pub fn run(opts: &CompareOptions) -> Result<Comparison> {
    if opts.images.is_empty() {
        bail!("no images to compare");
    }
    let mut modes = Vec::new();
    let mut sharp_version = None;
    for &mode in &opts.modes {
        let load_before = load_average();
        let mut images = Vec::new();
        for image in &opts.images {
            let out = opts.out.join("outputs").join(mode.slug()).join(stem(image));
            let (mut ours, mut sharp) = (Vec::new(), Vec::new());
            for round in 0..opts.rounds {
                // Alternate which side goes first, so a drift in machine load hits both alike.
                for ours_turn in if round % 2 == 0 {
                    [true, false]
                } else {
                    [false, true]
                } {
                    if ours_turn {
                        ours.push(run_worker(
                            ours_command(image, opts, mode, &out)?,
                            "ferrotype",
                        )?);
                    } else {
                        let result = run_worker(sharp_command(image, opts, mode, &out), "sharp")?;
                        sharp_version = result.version.clone();
                        sharp.push(result);
                    }
                }
            }
            let figures = ImageFigures {
                image: image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                megapixels: megapixels(image),
                ours: summarise(&ours),
                sharp: summarise(&sharp),
            };
            eprintln!(
                "[{}] {}: ours {:.1} ms, sharp {:.1} ms ({:.2}x); RSS ours {} MiB, sharp {} MiB",
                mode.slug(),
                figures.image,
                figures.ours.wall_ms,
                figures.sharp.wall_ms,
                figures.ours.wall_ms / figures.sharp.wall_ms,
                figures.ours.peak_rss_kib / 1024,
                figures.sharp.peak_rss_kib / 1024
            );
            images.push(figures);
        }
        modes.push(ModeFigures {
            mode,
            images,
            load_before,
            load_after: load_average(),
        });
    }
    let quality_mode = opts.modes.first().copied().unwrap_or(Mode::Single);
    let quality = measure_quality(
        &opts.images,
        &opts.out.join("outputs").join(quality_mode.slug()),
    )?;
    Ok(Comparison {
        modes,
        quality,
        sharp_version,
        rounds: opts.rounds,
        runs: opts.runs,
    })
}

fn measure_quality(images: &[PathBuf], outputs: &Path) -> Result<Vec<QualityFigures>> {
    let mut figures = Vec::new();
    for image in images {
        let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
        let source = quality::Source::new(&quality::decode_upright(&bytes)?)?;
        let dir = outputs.join(stem(image));
        for variant in ["thumbnail", "coverphoto"] {
            let read = |side: &str| -> Result<image::RgbImage> {
                let path = dir.join(format!("{side}-{variant}.jpg"));
                quality::decode_upright(
                    &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )
            };
            let (ours, sharp) = (read("ours")?, read("sharp")?);
            let references = source.references(ours.width(), ours.height())?;
            let ours_ssim = quality::best_ssim(&ours, &references)?;
            let sharp_ssim = if sharp.dimensions() == ours.dimensions() {
                quality::best_ssim(&sharp, &references)?
            } else {
                quality::best_ssim(&sharp, &source.references(sharp.width(), sharp.height())?)?
            };
            eprintln!(
                "[quality] {} {variant}: SSIM ours {ours_ssim:.4}, sharp {sharp_ssim:.4}",
                stem(image)
            );
            figures.push(QualityFigures {
                image: image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                variant: variant.into(),
                ours_ssim,
                sharp_ssim,
            });
        }
    }
    Ok(figures)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn bytes_of(side: &SideFigures) -> String {
    side.bytes
        .iter()
        .map(|(_, b)| format!("{:.1}", *b as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The comparison as markdown.
pub fn markdown(c: &Comparison) -> String {
    let mut md = String::new();
    let sharp = c.sharp_version.as_deref().unwrap_or("?");
    let _ = writeln!(
        md,
        "Each figure is the median of {} timed runs per image ({} rounds of separate processes, ours and \
         sharp {} alternating, each run after one warm-up). A run renders both variants, each from the \
         encoded bytes. *ms* is wall time per image, *CPU* user+system time of all threads; peak RSS is \
         the process's VmHWM (Node's own runtime included for sharp {sharp}). Sizes are KiB of the \
         300×300 / 800×800 outputs.\n",
        c.rounds * c.runs,
        c.rounds,
        sharp
    );
    for m in &c.modes {
        let _ = writeln!(
            md,
            "#### {} (load average before: {}, after: {})\n",
            m.mode.label(),
            m.load_before,
            m.load_after
        );
        let _ = writeln!(
            md,
            "| image | MP | ours ms | sharp ms | ours/sharp | ours CPU ms | sharp CPU ms | ours peak RSS MiB | sharp peak RSS MiB | RSS ours/sharp | ours KiB | sharp KiB |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for i in &m.images {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | **{:.2}** | {:.1} | {:.1} | {:.0} | {:.0} | **{:.2}** | {} | {} |",
                i.image,
                i.megapixels,
                i.ours.wall_ms,
                i.sharp.wall_ms,
                i.ours.wall_ms / i.sharp.wall_ms,
                i.ours.cpu_ms,
                i.sharp.cpu_ms,
                mib(i.ours.peak_rss_kib),
                mib(i.sharp.peak_rss_kib),
                i.ours.peak_rss_kib as f64 / i.sharp.peak_rss_kib as f64,
                bytes_of(&i.ours),
                bytes_of(&i.sharp)
            );
        }
        let (ours_ms, sharp_ms) = (m.mean_ms(|i| &i.ours), m.mean_ms(|i| &i.sharp));
        let (ours_rss, sharp_rss) = (m.max_rss_kib(|i| &i.ours), m.max_rss_kib(|i| &i.sharp));
        let ratios: Vec<f64> = m
            .images
            .iter()
            .map(|i| i.ours.wall_ms / i.sharp.wall_ms)
            .collect();
        let _ = writeln!(
            md,
            "| **all ({} images)** | | **{:.1}** | **{:.1}** | **{:.2}** (geo-mean {:.2}) | {:.1} | {:.1} | **{:.0}** (max) | **{:.0}** (max) | **{:.2}** | | |\n",
            m.images.len(),
            ours_ms,
            sharp_ms,
            ours_ms / sharp_ms,
            geometric_mean(&ratios),
            m.mean_cpu_ms(|i| &i.ours),
            m.mean_cpu_ms(|i| &i.sharp),
            mib(ours_rss),
            mib(sharp_rss),
            ours_rss as f64 / sharp_rss as f64
        );
        let threads = m
            .images
            .first()
            .map(|i| (i.ours.threads.to_string(), i.sharp.threads.to_string()));
        if let Some((ours_threads, sharp_threads)) = threads {
            let _ = writeln!(
                md,
                "Threads: ours RAYON_NUM_THREADS={ours_threads}, sharp.concurrency()={sharp_threads}. Goal: time ≤ 0.50 × sharp, peak RSS ≤ 0.33 × sharp.\n"
            );
        }
        let per_stage: Vec<String> = [VALIDATE_STAGE, "thumbnail", "coverphoto"]
            .iter()
            .filter_map(|n| m.mean_variant_ms(n).map(|ms| format!("{n} {ms:.1} ms")))
            .collect();
        if !per_stage.is_empty() {
            let _ = writeln!(
                md,
                "Our time per stage (mean of medians; validate: the one decode and the working copy's \
                 encoding; each variant: reading the working copy and rendering from it): {}.\n",
                per_stage.join(", ")
            );
        }
    }
    if !c.quality.is_empty() {
        let _ = writeln!(
            md,
            "#### Quality: SSIM (luma) against a Lanczos3 f32 reference, 1.0 = identical\n"
        );
        let _ = writeln!(md, "| image | variant | ours | sharp | ours − sharp |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        for q in &c.quality {
            let _ = writeln!(
                md,
                "| {} | {} | {:.4} | {:.4} | {:+.4} |",
                q.image,
                q.variant,
                q.ours_ssim,
                q.sharp_ssim,
                q.ours_ssim - q.sharp_ssim
            );
        }
        let mean = |f: fn(&QualityFigures) -> f64| {
            c.quality.iter().map(f).sum::<f64>() / c.quality.len() as f64
        };
        let _ = writeln!(
            md,
            "| **mean** | | **{:.4}** | **{:.4}** | **{:+.4}** |\n",
            mean(|q| q.ours_ssim),
            mean(|q| q.sharp_ssim),
            mean(|q| q.ours_ssim - q.sharp_ssim)
        );
    }
    md
}
