//! `ferrotype render`: render one image file as one variant, locally, and say what happened.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use ferrotype_core::{
    config::Config, probe, render, Fit, Focus, Limits, OutputFormat, Probe, RenderError, Rgb,
    VariantSpec,
};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The source image.
    pub input: PathBuf,
    /// Where to write the output.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Take the spec (and the profile's limits) of this variant from the configuration instead of the
    /// flags below.
    #[arg(long, conflicts_with_all = ["width", "height", "fit", "format", "quality", "enlarge",
        "background", "progressive", "keep_metadata", "max_pixels", "max_bytes"])]
    pub variant: Option<String>,
    /// The profile to take `--variant` from (default: the first profile that has a variant of that name).
    #[arg(long, requires = "variant")]
    pub profile: Option<String>,
    /// The configuration file `--variant` reads.
    #[arg(long, default_value = "ferrotype.json", requires = "variant")]
    pub config: PathBuf,
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

/// The spec and limits named by `--variant` in the configuration file.
fn configured_variant(args: &RenderArgs, name: &str) -> anyhow::Result<(VariantSpec, Limits)> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config =
        Config::from_json(&text).with_context(|| format!("loading {}", args.config.display()))?;
    let mut profiles = config
        .profiles
        .iter()
        .filter(|profile| args.profile.as_deref().is_none_or(|p| p == profile.name));
    let found = profiles.find_map(|profile| {
        let spec = profile.variants.iter().find(|spec| spec.name == name)?;
        Some((spec.clone(), profile.limits.clone()))
    });
    found.with_context(|| {
        let known: Vec<String> = config
            .profiles
            .iter()
            .flat_map(|p| {
                p.variants
                    .iter()
                    .map(move |v| format!("{}/{}", p.name, v.name))
            })
            .collect();
        format!(
            "no variant {name:?}{} in {} (profile/variant: {})",
            args.profile
                .as_deref()
                .map(|p| format!(" in profile {p:?}"))
                .unwrap_or_default(),
            args.config.display(),
            known.join(", ")
        )
    })
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    let (spec, limits) = match &args.variant {
        Some(name) => configured_variant(&args, name)?,
        None => flag_spec(&args)?,
    };
    render_file(&args, &spec, &limits)
}

fn flag_spec(args: &RenderArgs) -> anyhow::Result<(VariantSpec, Limits)> {
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
    Ok((spec, limits))
}

fn render_file(args: &RenderArgs, spec: &VariantSpec, limits: &Limits) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let started = Instant::now();
    match probe(&bytes, bytes.len() as u64, limits) {
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
    let rendered = match render(&bytes, spec, args.focus, limits) {
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
