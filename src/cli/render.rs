//! `ferrotype render`: render one image file as one variant, locally, and say what happened.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use ferrotype_core::{
    probe, render, Fit, Focus, Limits, OutputFormat, Probe, RenderError, Rgb, VariantSpec,
};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The source image.
    pub input: PathBuf,
    /// Where to write the output.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
    #[arg(long, value_enum, default_value = "cover")]
    pub fit: FitArg,
    /// Focus point for cover crops as "x,y" fractions of the upright image (default: centre).
    #[arg(long, value_parser = parse_focus)]
    pub focus: Option<Focus>,
    #[arg(long, value_enum, default_value = "jpeg")]
    pub format: FormatArg,
    #[arg(long, default_value_t = 80)]
    pub quality: u8,
    /// Allow upscaling.
    #[arg(long)]
    pub enlarge: bool,
    /// Background for JPEG alpha and contain letterboxing, "#rrggbb".
    #[arg(long, default_value = "#ffffff")]
    pub background: Rgb,
    #[arg(long)]
    pub progressive: bool,
    #[arg(long)]
    pub keep_metadata: bool,
    #[arg(long, default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FitArg {
    Cover,
    Contain,
    Fill,
    Inside,
    Outside,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Jpeg,
    Png,
    Webp,
}

fn parse_focus(text: &str) -> Result<Focus, String> {
    let (x, y) = text
        .split_once(',')
        .ok_or("expected \"x,y\", e.g. 0.3,0.4")?;
    let parse = |v: &str| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}"));
    let (x, y) = (parse(x)?, parse(y)?);
    if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
        return Err("focus coordinates are fractions between 0 and 1".into());
    }
    Ok(Focus::new(x, y))
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    let spec = VariantSpec {
        fit: match args.fit {
            FitArg::Cover => Fit::Cover,
            FitArg::Contain => Fit::Contain,
            FitArg::Fill => Fit::Fill,
            FitArg::Inside => Fit::Inside,
            FitArg::Outside => Fit::Outside,
        },
        format: match args.format {
            FormatArg::Jpeg => OutputFormat::Jpeg,
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Webp => OutputFormat::Webp,
        },
        quality: args.quality,
        enlarge: args.enlarge,
        background: args.background,
        progressive: args.progressive,
        keep_metadata: args.keep_metadata,
        ..VariantSpec::new("cli", args.width, args.height)
    };
    spec.validate()?;
    let limits = Limits {
        max_pixels: args.max_pixels,
        max_bytes: args.max_bytes,
        ..Limits::default()
    };
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let started = Instant::now();
    match probe(&bytes, bytes.len() as u64, &limits) {
        Ok(Probe::Complete(info)) => println!(
            "input  {}: {} {}×{} orientation {} (upright {}×{}){}{}",
            args.input.display(),
            info.format,
            info.width,
            info.height,
            info.orientation,
            info.upright_width,
            info.upright_height,
            if info.has_alpha { ", alpha" } else { "" },
            if info.animated {
                ", animated (first frame)"
            } else {
                ""
            },
        ),
        Ok(Probe::NeedMoreBytes) => {
            bail!("unexpected: the whole file was read but its header is incomplete")
        }
        Err(rejection) => bail!("rejected {}: {rejection}", args.input.display()),
    }
    let rendered = match render(&bytes, &spec, args.focus, &limits) {
        Ok(rendered) => rendered,
        Err(RenderError::Rejected(rejection)) => {
            bail!("rejected {}: {rejection}", args.input.display())
        }
        Err(other) => return Err(other).context("rendering failed"),
    };
    let elapsed = started.elapsed();
    std::fs::write(&args.output, &rendered.bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "output {}: {} {}×{}, {} bytes, {:.1} ms",
        args.output.display(),
        rendered.format,
        rendered.width,
        rendered.height,
        rendered.bytes.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}
