//! `ferrotype render`: render one image file as one variant, locally, the way the pipeline would (same
//! limits, same smart crop), and say what happened.

use std::fmt;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};
use ferrotype_core::config::SmartCrop;
use ferrotype_core::faces::{BuiltinDetector, DetectorKind, FaceDetection};
use ferrotype_core::spec::MAX_VARIANT_SIDE;
use ferrotype_core::{
    decode_preview, probe, render, Fit, Focus, Limits, OutputFormat, Probe, Rejection, RenderError,
    Rgb, VariantSpec,
};

use super::config::load_config;
use ferrotype::text::count;

use super::output::UsageError;

const COMMAND: &[&str] = &["render"];

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The source image file.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write the result. Its extension (.jpg, .jpeg, .png, .webp) sets the format; "-" writes
    /// to standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Take the spec, the limits and the smart crop of this variant from the configuration instead of
    /// the flags below.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["width", "height", "fit", "format", "quality",
        "enlarge", "background", "progressive", "keep_metadata", "max_pixels", "max_bytes"])]
    pub variant: Option<String>,
    /// The profile to take --variant from (default: the first profile that has a variant of that name).
    #[arg(long, value_name = "NAME", requires = "variant")]
    pub profile: Option<String>,
    /// The configuration --variant reads (default: ./ferrotype.json, else the built-in one).
    #[arg(long, value_name = "PATH", requires = "variant")]
    pub config: Option<PathBuf>,
    /// Width of the box to fit into, in pixels.
    #[arg(long, value_parser = side_parser())]
    pub width: Option<u32>,
    /// Height of the box to fit into, in pixels.
    #[arg(long, value_parser = side_parser())]
    pub height: Option<u32>,
    /// How the image fills the box.
    #[arg(long, value_enum, default_value = "cover")]
    pub fit: FitArg,
    /// Focus point for cover crops as "x,y" fractions of the upright image, instead of smart crop.
    #[arg(long, value_name = "X,Y", value_parser = parse_focus, conflicts_with = "smart_crop")]
    pub focus: Option<Focus>,
    /// How cover crops find what to keep (default: the profile's setting with --variant, else builtin).
    #[arg(long, value_enum, value_name = "MODE")]
    pub smart_crop: Option<SmartCropArg>,
    /// Output format (default: from the output file's extension).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Encoder quality for JPEG and WebP.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Allow upscaling an image smaller than the box (off: the output is never larger than the source).
    #[arg(long)]
    pub enlarge: bool,
    /// Colour behind the image, "#rrggbb": JPEG flattens alpha onto it and --fit contain fills its
    /// letterbox with it (default: white for JPEG, a transparent letterbox for PNG and WebP).
    #[arg(long, value_name = "#RRGGBB")]
    pub background: Option<Rgb>,
    /// Write a progressive JPEG.
    #[arg(long)]
    pub progressive: bool,
    /// Keep the source's EXIF (orientation reset) and embed the sRGB profile.
    #[arg(long)]
    pub keep_metadata: bool,
    /// Refuse sources with more pixels than this, as validate does.
    #[arg(long, value_name = "PIXELS", default_value_t = Limits::default().max_pixels,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
    /// Refuse source files larger than this many bytes, as validate does.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_bytes,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: u64,
}

fn side_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_VARIANT_SIDE))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FitArg {
    /// Fill the box exactly, cropping what overflows around the focus.
    Cover,
    /// Fit inside the box and letterbox the rest.
    Contain,
    /// Stretch to the box, ignoring the aspect ratio.
    Fill,
    /// As large as possible with both sides within the box.
    Inside,
    /// As small as possible with both sides covering the box.
    Outside,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Jpeg,
    Png,
    Webp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmartCropArg {
    /// The pipeline's built-in face detector: cover crops keep the faces (without faces: attention).
    Builtin,
    /// No face detection: cover crops keep what draws the eye (detail, strong colour, skin).
    Attention,
    /// No detection: cover crops keep the centre.
    Off,
}

impl From<FormatArg> for OutputFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Jpeg => OutputFormat::Jpeg,
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Webp => OutputFormat::Webp,
        }
    }
}

/// The input was refused the way validate would refuse the upload (exit status 3).
#[derive(Debug)]
pub struct InputRejected {
    pub input: PathBuf,
    pub rejection: Rejection,
}

impl fmt::Display for InputRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} was rejected: {}: {}",
            self.input.display(),
            self.rejection.error_name(),
            self.rejection.message
        )
    }
}

impl std::error::Error for InputRejected {}

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

/// What to render: the spec, the limits, how the focus is found, and where the spec came from.
struct Job {
    spec: VariantSpec,
    limits: Limits,
    smart_crop: SmartCropArg,
    /// e.g. "variant thumbnail of profile default in ./ferrotype.json".
    origin: Option<String>,
}

enum Destination {
    File(PathBuf),
    Stdout,
}

impl Destination {
    fn of(path: &Path) -> Destination {
        if path == Path::new("-") {
            Destination::Stdout
        } else {
            Destination::File(path.to_path_buf())
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::File(path) => write!(f, "{}", path.display()),
            Destination::Stdout => f.write_str("standard output"),
        }
    }
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    let destination = Destination::of(&args.output);
    if matches!(destination, Destination::Stdout) && std::io::stdout().is_terminal() {
        return Err(UsageError::new(
            COMMAND,
            ErrorKind::InvalidValue,
            "-o - writes the image to standard output, which is a terminal here: redirect it \
             (> out.jpg, | other-tool) or give a file name",
        )
        .into());
    }
    let mut job = match &args.variant {
        Some(name) => configured_job(&args, name)?,
        None => flag_job(&args)?,
    };
    job.spec.format = output_format(&args, &job, &destination)?;
    job.spec
        .validate()
        .map_err(|err| UsageError::new(COMMAND, ErrorKind::InvalidValue, err.to_string()))?;
    // The image goes to stdout with `-o -`; what we say about it goes to stderr then.
    let mut said: Box<dyn Write> = match destination {
        Destination::Stdout => Box::new(std::io::stderr()),
        Destination::File(_) => Box::new(std::io::stdout()),
    };
    render_file(&args, &job, &destination, &mut said)
}

/// The spec, limits and smart crop of a variant in the configuration.
fn configured_job(args: &RenderArgs, name: &str) -> anyhow::Result<Job> {
    let loaded = load_config(args.config.as_deref())?;
    let config = &loaded.config;
    let found = config
        .profiles
        .iter()
        .filter(|profile| args.profile.as_deref().is_none_or(|p| p == profile.name))
        .find_map(|profile| {
            let spec = profile.variants.iter().find(|spec| spec.name == name)?;
            Some((profile, spec))
        });
    let Some((profile, spec)) = found else {
        let known: Vec<String> = config
            .profiles
            .iter()
            .flat_map(|p| {
                p.variants
                    .iter()
                    .map(move |v| format!("{}/{}", p.name, v.name))
            })
            .collect();
        return Err(UsageError::new(
            COMMAND,
            ErrorKind::InvalidValue,
            format!(
                "no variant {name:?}{} in {} (profile/variant: {})",
                args.profile
                    .as_deref()
                    .map(|p| format!(" in profile {p:?}"))
                    .unwrap_or_default(),
                loaded.origin,
                known.join(", ")
            ),
        )
        .into());
    };
    // Rekognition cannot be reached from here; the built-in detector stands in, as in `ferrotype run`.
    let profile_choice = match profile.smart_crop {
        SmartCrop::Off => SmartCropArg::Off,
        SmartCrop::Attention => SmartCropArg::Attention,
        SmartCrop::Builtin | SmartCrop::Rekognition => SmartCropArg::Builtin,
    };
    Ok(Job {
        spec: spec.clone(),
        limits: profile.limits.clone(),
        smart_crop: args.smart_crop.unwrap_or(profile_choice),
        origin: Some(format!(
            "variant {} of profile {} in {}",
            spec.name, profile.name, loaded.origin
        )),
    })
}

fn flag_job(args: &RenderArgs) -> anyhow::Result<Job> {
    let spec = VariantSpec {
        fit: match args.fit {
            FitArg::Cover => Fit::Cover,
            FitArg::Contain => Fit::Contain,
            FitArg::Fill => Fit::Fill,
            FitArg::Inside => Fit::Inside,
            FitArg::Outside => Fit::Outside,
        },
        quality: args.quality,
        enlarge: args.enlarge,
        background: args.background,
        progressive: args.progressive,
        keep_metadata: args.keep_metadata,
        ..VariantSpec::new("render", args.width, args.height)
    };
    if spec.width.is_none() && spec.height.is_none() {
        return Err(UsageError::new(
            COMMAND,
            ErrorKind::MissingRequiredArgument,
            "give --width, --height or both (or --variant NAME to take them from the configuration)",
        )
        .into());
    }
    Ok(Job {
        spec,
        limits: Limits {
            max_pixels: args.max_pixels,
            max_bytes: args.max_bytes,
            ..Limits::default()
        },
        smart_crop: args.smart_crop.unwrap_or(SmartCropArg::Builtin),
        origin: None,
    })
}

/// The format an output file name asks for, when its extension names one.
fn format_of_name(path: &Path) -> Option<OutputFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" | "jpe" | "jfif" => Some(OutputFormat::Jpeg),
        "png" => Some(OutputFormat::Png),
        "webp" => Some(OutputFormat::Webp),
        _ => None,
    }
}

/// The output format: the file name's, which must agree with --format or the variant; else theirs.
fn output_format(
    args: &RenderArgs,
    job: &Job,
    destination: &Destination,
) -> Result<OutputFormat, UsageError> {
    let conflict = |message: String| UsageError::new(COMMAND, ErrorKind::ArgumentConflict, message);
    let asked = args.format.map(OutputFormat::from);
    let by_name = match destination {
        Destination::File(path) => format_of_name(path),
        Destination::Stdout => None,
    };
    match (by_name, asked, &args.variant) {
        (Some(named), Some(asked), _) if named != asked => Err(conflict(format!(
            "--format {asked} contradicts the output name {} (a {named} name): rename the file or drop --format",
            args.output.display()
        ))),
        (Some(named), None, Some(variant)) if named != job.spec.format => Err(conflict(format!(
            "variant {variant} renders {}, but the output name {} asks for {named}: name it .{}",
            job.spec.format,
            args.output.display(),
            job.spec.format.extension()
        ))),
        (Some(named), _, _) => Ok(named),
        (None, Some(asked), _) => Ok(asked),
        (None, None, Some(_)) => Ok(job.spec.format),
        (None, None, None) => match destination {
            Destination::Stdout => Err(conflict(
                "-o - has no extension to take the format from: add --format jpeg, png or webp".into(),
            )),
            Destination::File(path) => Err(conflict(format!(
                "cannot tell the format from the output name {}: end it in .jpg, .png or .webp, or add --format",
                path.display()
            ))),
        },
    }
}

fn render_file(
    args: &RenderArgs,
    job: &Job,
    destination: &Destination,
    said: &mut dyn Write,
) -> anyhow::Result<()> {
    let rejected = |rejection: Rejection| InputRejected {
        input: args.input.clone(),
        rejection,
    };
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let started = Instant::now();
    if let Some(origin) = &job.origin {
        writeln!(said, "spec   {origin}")?;
    }
    let upright = match probe(&bytes, bytes.len() as u64, &job.limits) {
        Ok(Probe::Complete(info)) => {
            writeln!(
                said,
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
            )?;
            (info.upright_width, info.upright_height)
        }
        Ok(Probe::NeedMoreBytes) => {
            return Err(rejected(Rejection::corrupt("the header is truncated")).into())
        }
        Err(rejection) => return Err(rejected(rejection).into()),
    };
    let focus = match args.focus {
        Some(focus) => Some(focus),
        None if crops_around_focus(&job.spec) => {
            let detection = smart_focus(&bytes, job, said).map_err(|err| match err {
                RenderError::Rejected(rejection) => anyhow::Error::from(rejected(rejection)),
                other => anyhow::Error::from(other).context("decoding for face detection"),
            })?;
            // The same per-crop choice as render-variant: the faces that fit this crop's window.
            Some(ferrotype_core::variant_focus(
                &detection, upright, &job.spec,
            ))
        }
        None => None,
    };
    let rendered = match render(&bytes, &job.spec, focus, &job.limits) {
        Ok(rendered) => rendered,
        Err(RenderError::Rejected(rejection)) => return Err(rejected(rejection).into()),
        Err(other) => return Err(other).context("rendering failed"),
    };
    let elapsed = started.elapsed();
    match destination {
        Destination::File(path) => std::fs::write(path, &rendered.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        Destination::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&rendered.bytes)?;
            stdout.flush()?;
        }
    }
    writeln!(
        said,
        "output {destination}: {} {}×{}, {} bytes, {:.1} ms",
        rendered.format,
        rendered.width,
        rendered.height,
        rendered.bytes.len(),
        elapsed.as_secs_f64() * 1000.0
    )?;
    Ok(())
}

/// Whether the focus steers this spec's crop (only cover crops cut anything away).
fn crops_around_focus(spec: &VariantSpec) -> bool {
    spec.fit == Fit::Cover && spec.follow_focus && spec.width.is_some() && spec.height.is_some()
}

/// The detection the pipeline would make: detect-faces' built-in detector on the same preview size and,
/// without a face, attention; attention alone for `attention`; the centre when smart crop is off or the
/// detector fails (the state machine falls back the same way).
fn smart_focus(
    bytes: &[u8],
    job: &Job,
    said: &mut dyn Write,
) -> Result<FaceDetection, RenderError> {
    let mode = match job.smart_crop {
        SmartCropArg::Off => {
            let _ = writeln!(said, "focus  centre (smart crop off)");
            return Ok(FaceDetection::none());
        }
        SmartCropArg::Builtin => SmartCrop::Builtin,
        SmartCropArg::Attention => SmartCrop::Attention,
    };
    let started = Instant::now();
    let preview_side = mode.preview_side().unwrap_or(BuiltinDetector::PREVIEW_SIDE);
    let preview = decode_preview(bytes, preview_side, &job.limits)?;
    let detection = if mode == SmartCrop::Builtin {
        match BuiltinDetector::new().detect_blocking(&preview) {
            Ok(faces) => FaceDetection::new(DetectorKind::Builtin, faces),
            Err(err) => {
                let _ = writeln!(said, "focus  centre: {err}");
                return Ok(FaceDetection::none());
            }
        }
    } else {
        FaceDetection::none()
    }
    .or_attention(&preview);
    let found = match (mode, detection.faces.len()) {
        (SmartCrop::Builtin, 0) => "no face found by the built-in detector; attention".to_owned(),
        (SmartCrop::Builtin, n) => format!("{} found by the built-in detector", count(n, "face")),
        _ => "attention".to_owned(),
    };
    let _ = writeln!(
        said,
        "focus  {:.3},{:.3}: {found} in {:.0} ms",
        detection.focus.x,
        detection.focus.y,
        started.elapsed().as_secs_f64() * 1000.0,
    );
    Ok(detection)
}
