//! Output object keys. Both are deterministic functions of the source key and the configuration, so a
//! retried or redriven render overwrites its earlier output instead of adding a second copy.

use crate::config::{Outputs, Profile};
use crate::spec::VariantSpec;

const PLACEHOLDERS: [&str; 5] = ["profile", "variant", "key", "stem", "ext"];

/// Where a variant of `source_key` is stored in the output bucket.
///
/// Placeholders: `{profile}`, `{variant}`, `{key}` (the source key after the profile prefix), `{stem}`
/// (that key without its extension) and `{ext}` (the output format's extension).
pub fn variant_key(
    outputs: &Outputs,
    profile: &Profile,
    variant: &VariantSpec,
    source_key: &str,
) -> String {
    let relative = source_key
        .strip_prefix(profile.prefix.as_str())
        .unwrap_or(source_key);
    let stem = strip_extension(relative);
    let mut key = outputs.variants_prefix.clone();
    let mut rest = profile.key_template.as_str();
    while let Some(open) = rest.find('{') {
        key.push_str(&rest[..open]);
        let close = open
            + rest[open..]
                .find('}')
                .expect("templates are checked on load");
        match &rest[open + 1..close] {
            "profile" => key.push_str(&profile.name),
            "variant" => key.push_str(&variant.name),
            "key" => key.push_str(relative),
            "stem" => key.push_str(stem),
            "ext" => key.push_str(variant.format.extension()),
            other => unreachable!("placeholder {{{other}}} passed the template check"),
        }
        rest = &rest[close + 1..];
    }
    key.push_str(rest);
    key
}

/// Where the manifest of `source_key` is stored in the output bucket: `<manifestsPrefix><source key>.json`.
pub fn manifest_key(outputs: &Outputs, source_key: &str) -> String {
    format!("{}{}.json", outputs.manifests_prefix, source_key)
}

/// `photos/cat.v2.jpg` → `photos/cat.v2`; a dot in a folder name or a leading dot is not an extension.
fn strip_extension(key: &str) -> &str {
    let name_start = key.rfind('/').map_or(0, |slash| slash + 1);
    match key[name_start..].rfind('.') {
        Some(dot) if dot > 0 => &key[..name_start + dot],
        _ => key,
    }
}

/// A template may only use known placeholders and must keep keys apart: `{variant}` so variants do not
/// overwrite each other, `{key}` or `{stem}` so sources do not. (`{stem}` lets `a.png` and `a.jpg`
/// share outputs; it is the conventional choice and `{key}` is there for those who mind.)
pub fn check_template(template: &str) -> Result<(), String> {
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if rest[..open].contains('}') {
            return Err(format!("{template:?} has a stray '}}'"));
        }
        let Some(len) = rest[open..].find('}') else {
            return Err(format!("{template:?} has an unclosed '{{'"));
        };
        let name = &rest[open + 1..open + len];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{template:?} uses unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            ));
        }
        used.push(name);
        rest = &rest[open + len + 1..];
    }
    if rest.contains('}') {
        return Err(format!("{template:?} has a stray '}}'"));
    }
    if !used.contains(&"variant") {
        return Err(format!(
            "{template:?} must contain {{variant}} so variants do not overwrite each other"
        ));
    }
    if !used.contains(&"key") && !used.contains(&"stem") {
        return Err(format!(
            "{template:?} must contain {{key}} or {{stem}} so sources do not overwrite each other"
        ));
    }
    if template.starts_with('/') {
        return Err(format!("{template:?} must not start with '/'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::from_json(include_str!("../../../ferrotype.json")).unwrap()
    }

    #[test]
    fn variant_keys_follow_the_template_and_are_deterministic() {
        let config = config();
        let profile = &config.profiles[0];
        let thumb = profile
            .variants
            .iter()
            .find(|v| v.name == "thumbnail")
            .unwrap();
        let webp = profile
            .variants
            .iter()
            .find(|v| v.name == "thumbnail-webp")
            .unwrap();
        let key = variant_key(
            &config.outputs,
            profile,
            thumb,
            "uploads/2024/red flower.JPG",
        );
        assert_eq!(key, "variants/default/thumbnail/2024/red flower.jpg");
        assert_eq!(
            key,
            variant_key(
                &config.outputs,
                profile,
                thumb,
                "uploads/2024/red flower.JPG"
            )
        );
        assert_eq!(
            variant_key(&config.outputs, profile, webp, "uploads/a.b/c.d.png"),
            "variants/default/thumbnail-webp/a.b/c.d.webp"
        );
        assert_eq!(
            variant_key(&config.outputs, profile, thumb, "uploads/dir.v1/noext"),
            "variants/default/thumbnail/dir.v1/noext.jpg"
        );
        assert_eq!(
            variant_key(&config.outputs, profile, thumb, "uploads/.hidden"),
            "variants/default/thumbnail/.hidden.jpg"
        );
    }

    #[test]
    fn other_placeholders_and_literals() {
        let mut config = config();
        config.profiles[0].key_template = "v1/{variant}-{key}".into();
        let profile = &config.profiles[0];
        let key = variant_key(
            &config.outputs,
            profile,
            &profile.variants[0],
            "uploads/x/y.png",
        );
        assert_eq!(key, "variants/v1/thumbnail-x/y.png");
    }

    #[test]
    fn manifest_key_keeps_the_whole_source_key() {
        assert_eq!(
            manifest_key(&config().outputs, "uploads/a (1).jpg"),
            "manifests/uploads/a (1).jpg.json"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("{profile}/{variant}/{stem}.{ext}").is_ok());
        assert!(check_template("{variant}/{key}").is_ok());
        assert!(check_template("{profile}/{stem}.{ext}")
            .unwrap_err()
            .contains("{variant}"));
        assert!(check_template("{variant}/x.{ext}")
            .unwrap_err()
            .contains("{key}"));
        assert!(check_template("{variant}/{size}/{key}")
            .unwrap_err()
            .contains("unknown"));
        assert!(check_template("{variant}/{key")
            .unwrap_err()
            .contains("unclosed"));
        assert!(check_template("{variant}}/{key}")
            .unwrap_err()
            .contains("stray"));
        assert!(check_template("/{variant}/{key}").is_err());
    }
}
