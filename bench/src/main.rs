//! Ferrotype against the seed's sharp Lambda: speed, peak memory, output quality, cold start, cost.
//! `make bench` (bench/run.sh) runs `ferrotype-bench all`; see bench/README.md.

mod alloc_peak;
mod cold_start;
mod compare;
mod cost;
mod crops;
mod faces;
mod largest;
mod measure;
mod pipeline;
mod quality;
mod report;
mod stages;
mod synthetic;
mod throughput;
mod wc_formats;
mod worker;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use compare::{CompareOptions, Mode};

#[derive(Parser)]
#[command(about = "Benchmarks of Ferrotype against sharp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
pub(crate) struct CompareArgs {
    /// Images or folders of images (default: synthetic photos generated into <out>/synthetic).
    pub(crate) paths: Vec<PathBuf>,
    /// Separate processes per side and image, alternating ours and sharp.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Timed runs per process.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Untimed runs per process before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub(crate) warmup: usize,
    #[arg(long, value_delimiter = ',', default_value = "single,default,cores")]
    pub(crate) modes: Vec<Mode>,
    #[arg(long, default_value = "bench/out")]
    pub(crate) out: PathBuf,
    #[arg(long, default_value = "node")]
    pub(crate) node: String,
    #[arg(long, default_value = "bench/sharp-worker.mjs")]
    pub(crate) sharp_worker: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Everything: the comparison, the largest image, cold starts, bootstrap sizes, the local pipeline's
    /// throughput and the cost model; writes <out>/report.md.
    All(report::AllArgs),
    /// Time ours against sharp on the same images and compare output quality; prints markdown.
    Compare(CompareArgs),
    /// Worker: render the seed's variants of one image with ferrotype-core and print one JSON line.
    Ours {
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Render only this variant (render-variant renders one per invocation).
        #[arg(long)]
        only: Option<String>,
        /// A JSON array of VariantSpec to render instead of the seed's two.
        #[arg(long)]
        specs: Option<PathBuf>,
    },
    /// The seed's job through the whole pipeline (`ferrotype run`) against the seed's sharp process, one
    /// core each; prints markdown. `all` includes it.
    Pipeline(report::AllArgs),
    /// Smart crop on photos: square crops by ferrotype, the centre and sharp's strategies; faces kept
    /// whole or cut, and agreement without faces (markdown). `--sheet DIR` writes the crops side by side.
    Crops {
        images: Vec<PathBuf>,
        #[arg(long, default_value = "node")]
        node: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Writes crops-NN.png (ferrotype | centre | sharp attention | sharp entropy per row) and a per-photo TSV.
        #[arg(long)]
        sheet: Option<PathBuf>,
    },
    /// Write the default synthetic photo set into a folder.
    Generate {
        #[arg(long, default_value = "bench/out/synthetic")]
        out: PathBuf,
    },
    /// The built-in face detector on images: time and faces found under each settings
    /// (`side:min_face:pyramid:step`; the first is the reference for recall).
    Faces {
        images: Vec<PathBuf>,
        #[arg(long, value_delimiter = ',', default_value = "1280:40:0.8:4")]
        settings: Vec<String>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The working copy's candidate formats on images: encode/decode time, size, peak memory (markdown).
    WorkingCopyFormats {
        images: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Worker: time each pipeline stage's compute on images (for the cost model); prints JSON lines.
    Stages {
        images: Vec<PathBuf>,
        #[arg(long, default_value = "ferrotype.json")]
        config: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp"];

/// The images named, with folders expanded to their image files (sorted).
pub(crate) fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            found.sort();
            images.extend(found);
        } else {
            images.push(path.clone());
        }
    }
    Ok(images)
}

pub(crate) fn compare_options(args: &CompareArgs) -> Result<CompareOptions> {
    let images = if args.paths.is_empty() {
        synthetic::ensure_default_set(&args.out.join("synthetic"))?
    } else {
        collect_images(&args.paths)?
    };
    Ok(CompareOptions {
        images,
        rounds: args.rounds.max(1),
        runs: args.runs.max(1),
        warmup: args.warmup,
        modes: args.modes.clone(),
        out: args.out.clone(),
        node: args.node.clone(),
        sharp_worker: args.sharp_worker.clone(),
    })
}

pub(crate) fn write_report(out: &Path, name: &str, markdown: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(name);
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::All(args) => report::all(&args)?,
        Command::Pipeline(args) => {
            let images = compare_options(&args.compare)?.images;
            let times = report::seed_job_stage_times(&args, &images)?;
            let run = report::seed_job_through_the_pipeline(
                &args,
                &args.bin_dir.join("ferrotype"),
                &images,
                &times,
            )?;
            print!("{}", pipeline::markdown(&run));
        }
        Command::Stages {
            images,
            config,
            runs,
        } => {
            let (variants, limits) = stages::default_profile(&config)?;
            for image in collect_images(&images)? {
                println!(
                    "{}",
                    serde_json::to_string(&stages::measure(&image, &variants, &limits, runs)?)?
                );
            }
        }
        Command::Faces {
            images,
            settings,
            runs,
        } => {
            let settings = settings
                .iter()
                .map(|s| faces::parse_settings(s))
                .collect::<Result<Vec<_>>>()?;
            println!("| image | settings | preview ms | detect ms | faces (centre, size) |\n|---|---|---:|---:|---|");
            for image in collect_images(&images)? {
                for row in faces::measure(&image, &settings, runs)? {
                    print!("{}", faces::markdown_row(&image, &row));
                }
            }
        }
        Command::WorkingCopyFormats { images, runs } => {
            for image in collect_images(&images)? {
                let (copy, rows) = wc_formats::measure(&image, runs)?;
                print!("{}", wc_formats::markdown(&image, &copy, &rows));
            }
        }
        Command::Compare(args) => {
            let options = compare_options(&args)?;
            let comparison = compare::run(&options)?;
            let markdown = compare::markdown(&comparison);
            print!("{markdown}");
            std::fs::create_dir_all(&args.out)?;
            std::fs::write(
                args.out.join("compare.json"),
                serde_json::to_vec_pretty(&comparison)?,
            )?;
            write_report(&args.out, "compare.md", &markdown)?;
        }
        Command::Ours {
            image,
            runs,
            warmup,
            out,
            only,
            specs,
        } => {
            let result = worker::run_ours(&worker::WorkerArgs {
                image: &image,
                runs,
                warmup,
                out: out.as_deref(),
                only: only.as_deref(),
                specs: specs.as_deref(),
            })?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Command::Crops {
            images,
            node,
            repo,
            sheet,
        } => {
            let images = collect_images(&images)?;
            let results = crops::measure(&images, &node, &repo)?;
            print!("{}", crops::markdown(&results));
            if let Some(dir) = sheet {
                for path in crops::write_sheets(&images, &results, &dir, 8)? {
                    eprintln!("{}", path.display());
                }
                std::fs::write(dir.join("crops.tsv"), crops::per_image(&results))?;
            }
        }
        Command::Generate { out } => {
            for path in synthetic::ensure_default_set(&out)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}
