//! The processing configuration (`ferrotype.json`): one file read by the CLI and local runner, by the
//! CDK app, and by every Lambda (through the `FERROTYPE_CONFIG` environment variable).
//!
//! Loading checks the shape (serde, unknown fields refused) and then the meaning (unique names, prefixes
//! that cannot shadow each other's outputs, templates that keep keys distinct); every error names the
//! field it is about, e.g. `profiles[0].variants[1].quality: must be 1..=100`.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::{Limits, SourceFormat, VariantSpec};

/// The environment variable through which the Lambdas (and the local runner's handlers) get the config.
pub const CONFIG_ENV: &str = "FERROTYPE_CONFIG";

/// Inline Map states run at most 40 iterations at once (FACTS.md).
pub const MAX_MAP_CONCURRENCY: u32 = 40;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Optional JSON-schema pointer; ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub outputs: Outputs,
    #[serde(default = "default_map_max_concurrency")]
    pub map_max_concurrency: u32,
    pub profiles: Vec<Profile>,
}

/// Where results go in the output bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outputs {
    pub variants_prefix: String,
    pub manifests_prefix: String,
    /// Working copies: what validate decoded, read by the later stages; never served.
    #[serde(default = "default_work_prefix")]
    pub work_prefix: String,
    /// Of variants only (their keys never change content); manifests are always `no-cache`.
    #[serde(default = "default_cache_control")]
    pub cache_control: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Input-bucket key prefix this profile applies to (the EventBridge rule listens on these).
    pub prefix: String,
    #[serde(default)]
    pub smart_crop: SmartCrop,
    /// Relative to `outputs.variantsPrefix`; see [`crate::keys`] for the placeholders.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    #[serde(default)]
    pub limits: Limits,
    pub variants: Vec<VariantSpec>,
}

/// How the focus point of `cover` crops is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmartCrop {
    /// Amazon Rekognition DetectFaces (costs money per image; AWS only).
    Rekognition,
    /// The built-in offline detector (SeetaFace frontal model), runs anywhere.
    #[default]
    Builtin,
    /// No face detection: each cover crop keeps the region that draws the eye (detail, strong colour,
    /// skin), as sharp's `attention` strategy does. The face detectors fall back to it when they find no
    /// face.
    Attention,
    /// No detection: crops are centred.
    Off,
}

/// Rekognition finds faces of at least 40×40 px in a 1920×1080 image (FACTS.md): a larger preview gains
/// nothing, and ratios are scale-invariant.
pub const REKOGNITION_PREVIEW_SIDE: u32 = 1920;
/// Attention is scored on a reduced picture anyway (crate::saliency); this is ample for it.
pub const ATTENTION_PREVIEW_SIDE: u32 = 512;

impl SmartCrop {
    pub fn as_str(self) -> &'static str {
        match self {
            SmartCrop::Rekognition => "rekognition",
            SmartCrop::Builtin => "builtin",
            SmartCrop::Attention => "attention",
            SmartCrop::Off => "off",
        }
    }

    /// The longest side of the upright preview this mode's detector looks at (None: no detection). The
    /// working copy is kept large enough to make it.
    pub fn preview_side(self) -> Option<u32> {
        match self {
            SmartCrop::Rekognition => Some(REKOGNITION_PREVIEW_SIDE),
            SmartCrop::Builtin => Some(crate::faces::BuiltinDetector::PREVIEW_SIDE),
            SmartCrop::Attention => Some(ATTENTION_PREVIEW_SIDE),
            SmartCrop::Off => None,
        }
    }
}

fn default_map_max_concurrency() -> u32 {
    8
}

fn default_cache_control() -> String {
    "public, max-age=31536000, immutable".to_owned()
}

fn default_key_template() -> String {
    "{profile}/{key}/{version}/{variant}.{ext}".to_owned()
}

fn default_work_prefix() -> String {
    "work/".to_owned()
}

/// A configuration that cannot be used, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// e.g. `profiles[0].variants[1].quality`; empty for a whole-document problem.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration: {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    /// Parses and checks a configuration document.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." { String::new() } else { path };
            invalid(field, err.into_inner().to_string())
        })?;
        config.check()?;
        Ok(config)
    }

    /// Reads the configuration from `FERROTYPE_CONFIG` (what CDK and the local runner set).
    pub fn from_env() -> Result<Config, ConfigError> {
        let text = std::env::var(CONFIG_ENV)
            .map_err(|_| invalid(CONFIG_ENV, "environment variable is not set"))?;
        Config::from_json(&text)
    }

    /// Compact JSON, as passed through the environment.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Config always serialises")
    }

    /// The profile whose prefix is the longest one the key starts with.
    pub fn profile_for_key(&self, key: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .filter(|profile| key.starts_with(&profile.prefix))
            .max_by_key(|profile| profile.prefix.len())
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|profile| profile.name == name)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let outputs = &self.outputs;
        check_prefix("outputs.variantsPrefix", &outputs.variants_prefix)?;
        check_prefix("outputs.manifestsPrefix", &outputs.manifests_prefix)?;
        check_prefix("outputs.workPrefix", &outputs.work_prefix)?;
        let prefixes = [
            ("outputs.variantsPrefix", &outputs.variants_prefix),
            ("outputs.manifestsPrefix", &outputs.manifests_prefix),
            ("outputs.workPrefix", &outputs.work_prefix),
        ];
        for (i, (field, prefix)) in prefixes.iter().enumerate() {
            for (other_field, other) in &prefixes[..i] {
                if prefix.starts_with(other.as_str()) || other.starts_with(prefix.as_str()) {
                    return Err(invalid(
                        *field,
                        format!(
                            "must not overlap {other_field} (they are served, cached and permitted \
                             differently)"
                        ),
                    ));
                }
            }
        }
        if !(1..=MAX_MAP_CONCURRENCY).contains(&self.map_max_concurrency) {
            return Err(invalid(
                "mapMaxConcurrency",
                format!("must be 1..={MAX_MAP_CONCURRENCY} (the inline Map limit)"),
            ));
        }
        if self.profiles.is_empty() {
            return Err(invalid("profiles", "at least one profile is needed"));
        }
        let mut names = HashSet::new();
        let mut prefixes = HashSet::new();
        for (index, profile) in self.profiles.iter().enumerate() {
            let at = format!("profiles[{index}]");
            check_name(&format!("{at}.name"), &profile.name)?;
            if !names.insert(profile.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("duplicate profile name {:?}", profile.name),
                ));
            }
            check_prefix(&format!("{at}.prefix"), &profile.prefix)?;
            if !prefixes.insert(profile.prefix.as_str()) {
                return Err(invalid(
                    format!("{at}.prefix"),
                    format!("duplicate prefix {:?}", profile.prefix),
                ));
            }
            crate::keys::check_template(&profile.key_template)
                .map_err(|message| invalid(format!("{at}.keyTemplate"), message))?;
            check_limits(&format!("{at}.limits"), &profile.limits)?;
            if profile.variants.is_empty() {
                return Err(invalid(
                    format!("{at}.variants"),
                    "at least one variant is needed",
                ));
            }
            let mut variant_names = HashSet::new();
            for (v, variant) in profile.variants.iter().enumerate() {
                let vat = format!("{at}.variants[{v}]");
                check_name(&format!("{vat}.name"), &variant.name)?;
                if !variant_names.insert(variant.name.as_str()) {
                    return Err(invalid(
                        format!("{vat}.name"),
                        format!("duplicate variant name {:?}", variant.name),
                    ));
                }
                variant
                    .validate()
                    .map_err(|err| invalid(vat.clone(), err.message))?;
            }
        }
        Ok(())
    }
}

fn check_limits(field: &str, limits: &Limits) -> Result<(), ConfigError> {
    if limits.max_bytes == 0 {
        return Err(invalid(
            format!("{field}.maxBytes"),
            "must be greater than 0",
        ));
    }
    if limits.max_pixels == 0 {
        return Err(invalid(
            format!("{field}.maxPixels"),
            "must be greater than 0",
        ));
    }
    if limits.formats.is_empty() {
        return Err(invalid(
            format!("{field}.formats"),
            "at least one format is needed",
        ));
    }
    if let Some(format) = limits.formats.iter().find(|f| !f.is_decodable()) {
        return Err(invalid(
            format!("{field}.formats"),
            format!(
                "{format} cannot be decoded by this build; decodable: {:?}",
                SourceFormat::decodable()
            ),
        ));
    }
    Ok(())
}

/// Names end up in object keys and metric dimensions: keep them plain.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if plain {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{name:?} must be 1-64 characters of a-z, 0-9, '-' or '_'"),
        ))
    }
}

/// Prefixes become IAM resource patterns and EventBridge filters: non-empty, ending in '/', no wildcards.
fn check_prefix(field: &str, prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || !prefix.ends_with('/') || prefix.starts_with('/') {
        return Err(invalid(
            field,
            format!("{prefix:?} must be non-empty, end with '/' and not start with '/'"),
        ));
    }
    if prefix.contains(['*', '?', '$', '{', '}']) {
        return Err(invalid(
            field,
            format!("{prefix:?} must not contain '*', '?', '$', '{{' or '}}'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../ferrotype.json");

    #[test]
    fn the_shipped_config_loads_and_reproduces_the_seed() {
        let config = Config::from_json(SHIPPED).unwrap();
        let profile = config.profile_for_key("uploads/cat.jpg").unwrap();
        assert_eq!(profile.name, "default");
        let sizes: Vec<_> = profile
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.width, v.height))
            .collect();
        assert!(sizes.contains(&("thumbnail", Some(300), Some(300))));
        assert!(sizes.contains(&("coverphoto", Some(800), Some(800))));
        assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    }

    #[test]
    fn keys_outside_every_prefix_have_no_profile_and_the_longest_prefix_wins() {
        let mut config = Config::from_json(SHIPPED).unwrap();
        assert!(config.profile_for_key("elsewhere/cat.jpg").is_none());
        let mut avatars = config.profiles[0].clone();
        avatars.name = "avatars".into();
        avatars.prefix = "uploads/avatars/".into();
        config.profiles.push(avatars);
        assert_eq!(
            config
                .profile_for_key("uploads/avatars/me.png")
                .unwrap()
                .name,
            "avatars"
        );
        assert_eq!(
            config.profile_for_key("uploads/me.png").unwrap().name,
            "default"
        );
    }

    fn error_for(edit: impl FnOnce(&mut serde_json::Value)) -> ConfigError {
        let mut doc: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
        edit(&mut doc);
        Config::from_json(&doc.to_string()).unwrap_err()
    }

    #[test]
    fn errors_name_the_bad_field() {
        let err = error_for(|d| d["profiles"][0]["variants"][1]["quality"] = 0.into());
        assert_eq!(err.field, "profiles[0].variants[1]");
        assert!(err.message.contains("quality"), "{err}");

        let err = error_for(|d| d["profiles"][0]["variants"][0]["fit"] = "squash".into());
        assert_eq!(err.field, "profiles[0].variants[0].fit");

        let err = error_for(|d| d["profiles"][0]["smartCrop"] = "maybe".into());
        assert_eq!(err.field, "profiles[0].smartCrop");

        let err = error_for(|d| d["profiles"][0]["colour"] = "red".into());
        assert!(err.message.contains("colour"), "{err}");

        let err = error_for(|d| d["mapMaxConcurrency"] = 41.into());
        assert_eq!(err.field, "mapMaxConcurrency");

        let err = error_for(|d| d["profiles"][0]["prefix"] = "uploads".into());
        assert_eq!(err.field, "profiles[0].prefix");

        let err = error_for(|d| d["profiles"][0]["variants"][1]["name"] = "thumbnail".into());
        assert_eq!(err.field, "profiles[0].variants[1].name");

        let err = error_for(|d| d["profiles"][0]["keyTemplate"] = "{profile}/{stem}.{ext}".into());
        assert_eq!(err.field, "profiles[0].keyTemplate");

        let err = error_for(|d| d["outputs"]["manifestsPrefix"] = "variants/manifests/".into());
        assert_eq!(err.field, "outputs.manifestsPrefix");

        let err = Config::from_json("{").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid configuration"),
            "{err}"
        );
    }
}
