//! What a variant asks for (VariantSpec), what a source may be (SourceFormat, Limits), and the focus point.
//! Shapes follow docs/CONTRACTS.md.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A variant spec that cannot be rendered (bad configuration, not a bad image).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variant {variant:?}: {message}")]
pub struct SpecError {
    pub variant: String,
    pub message: String,
}

/// Largest width or height a variant may ask for.
pub const MAX_VARIANT_SIDE: u32 = 16_384;

/// One output variant of a source image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default)]
    pub fit: Fit,
    #[serde(default)]
    pub enlarge: bool,
    #[serde(default)]
    pub format: OutputFormat,
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// The colour behind the image: JPEG flattens alpha onto it, and `contain` fills its letterbox with it.
    /// Absent: white for JPEG, a transparent letterbox for PNG and WebP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Rgb>,
    #[serde(default = "default_true")]
    pub follow_focus: bool,
    #[serde(default)]
    pub progressive: bool,
    #[serde(default)]
    pub keep_metadata: bool,
}

fn default_quality() -> u8 {
    80
}
fn default_true() -> bool {
    true
}

impl VariantSpec {
    /// A spec with the contract's defaults for everything but the name and the box.
    pub fn new(name: impl Into<String>, width: Option<u32>, height: Option<u32>) -> Self {
        VariantSpec {
            name: name.into(),
            width,
            height,
            fit: Fit::default(),
            enlarge: false,
            format: OutputFormat::default(),
            quality: default_quality(),
            background: None,
            follow_focus: true,
            progressive: false,
            keep_metadata: false,
        }
    }

    /// The colour alpha is flattened onto for formats without transparency.
    pub fn flatten_colour(&self) -> Rgb {
        self.background.unwrap_or(Rgb::WHITE)
    }

    /// Checks what serde cannot: a box to fit into, sane sizes and quality.
    pub fn validate(&self) -> Result<(), SpecError> {
        let problem = |message: String| {
            Err(SpecError {
                variant: self.name.clone(),
                message,
            })
        };
        if self.name.trim().is_empty() {
            return problem("the variant name is empty".into());
        }
        if self.width.is_none() && self.height.is_none() {
            return problem("at least one of width and height is required".into());
        }
        for (axis, value) in [("width", self.width), ("height", self.height)] {
            if let Some(v) = value {
                if !(1..=MAX_VARIANT_SIDE).contains(&v) {
                    return problem(format!("{axis} {v} is outside 1..={MAX_VARIANT_SIDE}"));
                }
            }
        }
        if !(1..=100).contains(&self.quality) {
            return problem(format!("quality {} is outside 1..=100", self.quality));
        }
        Ok(())
    }
}

/// How the image fills the width×height box (the same modes as sharp's `fit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box exactly, cropping what overflows (around the focus point).
    #[default]
    Cover,
    /// Fit inside the box and letterbox the rest.
    Contain,
    /// Stretch to the box, ignoring the aspect ratio.
    Fill,
    /// As large as possible while both sides stay within the box.
    Inside,
    /// As small as possible while both sides cover the box.
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Jpeg,
    Png,
    Webp,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
        }
    }

    /// Whether the format can carry transparency (else alpha is flattened onto the background).
    pub fn supports_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An sRGB colour, written `"#rrggbb"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    pub const BLACK: Rgb = Rgb(0, 0, 0);
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Rgb {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("colour {s:?} is not of the form \"#rrggbb\""))?;
        let channel =
            |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex digits");
        Ok(Rgb(channel(0), channel(2), channel(4)))
    }
}

impl Serialize for Rgb {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rgb {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The point a cover crop keeps in view, as fractions of the upright image (0,0 = top left).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Focus {
    pub x: f64,
    pub y: f64,
}

impl Focus {
    pub const CENTRE: Focus = Focus { x: 0.5, y: 0.5 };

    /// A focus with both coordinates clamped into 0..=1 (NaN becomes the centre).
    pub fn new(x: f64, y: f64) -> Self {
        Focus { x, y }.clamped()
    }

    pub fn clamped(self) -> Self {
        let clamp = |v: f64| if v.is_nan() { 0.5 } else { v.clamp(0.0, 1.0) };
        Focus {
            x: clamp(self.x),
            y: clamp(self.y),
        }
    }
}

impl Default for Focus {
    fn default() -> Self {
        Focus::CENTRE
    }
}

/// The real format of a source, as sniffed from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Bmp,
    Avif,
    Heif,
    Jpeg2000,
    Jxl,
    Svg,
    Pdf,
    Ico,
    Psd,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 14] = [
        SourceFormat::Jpeg,
        SourceFormat::Png,
        SourceFormat::Gif,
        SourceFormat::Webp,
        SourceFormat::Tiff,
        SourceFormat::Bmp,
        SourceFormat::Avif,
        SourceFormat::Heif,
        SourceFormat::Jpeg2000,
        SourceFormat::Jxl,
        SourceFormat::Svg,
        SourceFormat::Pdf,
        SourceFormat::Ico,
        SourceFormat::Psd,
    ];

    /// Whether this build can decode the format (the others are recognised only to be refused clearly).
    pub fn is_decodable(self) -> bool {
        matches!(
            self,
            SourceFormat::Jpeg
                | SourceFormat::Png
                | SourceFormat::Gif
                | SourceFormat::Webp
                | SourceFormat::Tiff
                | SourceFormat::Bmp
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Gif => "gif",
            SourceFormat::Webp => "webp",
            SourceFormat::Tiff => "tiff",
            SourceFormat::Bmp => "bmp",
            SourceFormat::Avif => "avif",
            SourceFormat::Heif => "heif",
            SourceFormat::Jpeg2000 => "jpeg2000",
            SourceFormat::Jxl => "jxl",
            SourceFormat::Svg => "svg",
            SourceFormat::Pdf => "pdf",
            SourceFormat::Ico => "ico",
            SourceFormat::Psd => "psd",
        }
    }

    pub fn decodable() -> Vec<SourceFormat> {
        SourceFormat::ALL
            .into_iter()
            .filter(|f| f.is_decodable())
            .collect()
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a source may be before it is decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted object size in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Largest accepted width×height, read from the header before any decoding.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Formats accepted; anything else is `UnsupportedFormat`.
    #[serde(default = "SourceFormat::decodable")]
    pub formats: Vec<SourceFormat>,
}

pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}
fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_pixels: DEFAULT_MAX_PIXELS,
            formats: SourceFormat::decodable(),
        }
    }
}
