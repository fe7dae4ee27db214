//! Output object keys, and the version tag that makes every one of them belong to exactly one upload.
//!
//! Every key is a deterministic function of the source key, the version tag and the configuration, so a
//! retried or redriven task finds its own earlier write, while two uploads of one key never share an
//! output (docs/CONTRACTS.md, "The integrity rule").

use sha2::{Digest, Sha256};

use crate::config::{Outputs, Profile};
use crate::event::VersionIdentity;
use crate::spec::VariantSpec;

const PLACEHOLDERS: [&str; 6] = ["profile", "variant", "key", "stem", "ext", "version"];

/// Bumped when the same source and settings would render materially different pixels (a new resizer,
/// another encoder), so outputs of the old code are never taken for outputs of the new one.
pub const RENDER_GENERATION: u32 = 1;

/// The extension of working copies (`work/<source key>/<tag>.ftwc`).
pub const WORKING_COPY_EXTENSION: &str = "ftwc";

/// 16 hex digits naming one upload of a key rendered with one profile's settings: a SHA-256 over the
/// version's identity, the profile's name, smart-crop mode and variants, and [`RENDER_GENERATION`].
/// A re-upload, or a change of the profile's variants, gives a new tag (and so new output keys).
pub fn version_tag(identity: &VersionIdentity, profile: &Profile) -> String {
    let settings = serde_json::json!({
        "profile": profile.name,
        "smartCrop": profile.smart_crop,
        "variants": profile.variants,
        "generation": RENDER_GENERATION,
    });
    let mut hash = Sha256::new();
    hash.update(b"ferrotype-version-tag-v1\0");
    hash.update(identity.canonical().as_bytes());
    hash.update(b"\0");
    hash.update(settings.to_string().as_bytes());
    hash.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Where a variant of `source_key`'s version `tag` is stored in the output bucket.
///
/// Placeholders: `{profile}`, `{variant}`, `{key}` (the source key after the profile prefix), `{stem}`
/// (that key without its extension), `{ext}` (the output format's extension) and `{version}` (the tag).
pub fn variant_key(
    outputs: &Outputs,
    profile: &Profile,
    variant: &VariantSpec,
    source_key: &str,
    tag: &str,
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
            "version" => key.push_str(tag),
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

/// Where validate stores the working copy of `source_key`'s version `tag`:
/// `<workPrefix><source key>/<tag>.ftwc`.
pub fn working_copy_key(outputs: &Outputs, source_key: &str, tag: &str) -> String {
    format!(
        "{}{source_key}/{tag}.{WORKING_COPY_EXTENSION}",
        outputs.work_prefix
    )
}

/// Every key an execution of `source_key`'s version `tag` may write: each variant of the profile, then
/// the working copy. What a superseded or rejected version removes.
pub fn owned_keys(
    outputs: &Outputs,
    profile: &Profile,
    source_key: &str,
    tag: &str,
) -> Vec<String> {
    profile
        .variants
        .iter()
        .map(|variant| variant_key(outputs, profile, variant, source_key, tag))
        .chain(std::iter::once(working_copy_key(outputs, source_key, tag)))
        .collect()
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
/// overwrite each other, `{key}` so sources do not (`{stem}` alone would let `a.png` and `a.jpg` share
/// outputs), and `{version}` so uploads of one key do not (which is what lets variants be immutable).
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
    if !used.contains(&"key") {
        return Err(format!(
            "{template:?} must contain {{key}} (the source key with its extension) so sources do not \
             overwrite each other; {{stem}} alone would let a.jpg and a.png share outputs"
        ));
    }
    if !used.contains(&"version") {
        return Err(format!(
            "{template:?} must contain {{version}} so uploads of one key never overwrite each other's \
             outputs (variants are immutable)"
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

    const TAG: &str = "0123456789abcdef";

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
        let key = |variant, source| variant_key(&config.outputs, profile, variant, source, TAG);
        assert_eq!(
            key(thumb, "uploads/2024/red flower.JPG"),
            "variants/default/2024/red flower.JPG/0123456789abcdef/thumbnail.jpg"
        );
        assert_eq!(
            key(thumb, "uploads/2024/red flower.JPG"),
            key(thumb, "uploads/2024/red flower.JPG")
        );
        assert_eq!(
            key(webp, "uploads/a.b/c.d.png"),
            "variants/default/a.b/c.d.png/0123456789abcdef/thumbnail-webp.webp"
        );
        // The source's extension keeps same-stem sources apart.
        assert_ne!(
            key(thumb, "uploads/same.jpg"),
            key(thumb, "uploads/same.png")
        );
    }

    #[test]
    fn other_placeholders_and_literals() {
        let mut config = config();
        config.profiles[0].key_template = "v1/{variant}-{stem}-{key}@{version}.{ext}".into();
        let profile = &config.profiles[0];
        let key = variant_key(
            &config.outputs,
            profile,
            &profile.variants[0],
            "uploads/x/y.png",
            TAG,
        );
        assert_eq!(
            key,
            "variants/v1/thumbnail-x/y-x/y.png@0123456789abcdef.jpg"
        );
    }

    #[test]
    fn manifest_and_working_copy_keys_keep_the_whole_source_key() {
        let outputs = &config().outputs;
        assert_eq!(
            manifest_key(outputs, "uploads/a (1).jpg"),
            "manifests/uploads/a (1).jpg.json"
        );
        assert_eq!(
            working_copy_key(outputs, "uploads/a (1).jpg", TAG),
            "work/uploads/a (1).jpg/0123456789abcdef.ftwc"
        );
    }

    #[test]
    fn a_version_owns_its_variants_and_its_working_copy() {
        let config = config();
        let profile = &config.profiles[0];
        let owned = owned_keys(&config.outputs, profile, "uploads/a.jpg", TAG);
        assert_eq!(owned.len(), profile.variants.len() + 1);
        assert!(owned.iter().all(|key| key.contains(TAG)));
        assert_eq!(
            owned.last().unwrap(),
            &working_copy_key(&config.outputs, "uploads/a.jpg", TAG)
        );
    }

    #[test]
    fn tags_tell_uploads_and_settings_apart() {
        let config = config();
        let profile = &config.profiles[0];
        let v1 = VersionIdentity::VersionId("v1".into());
        let tag = version_tag(&v1, profile);
        assert_eq!(tag.len(), 16);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, version_tag(&v1, profile), "deterministic");
        assert_ne!(
            tag,
            version_tag(&VersionIdentity::VersionId("v2".into()), profile)
        );
        let by_etag = |sequencer: Option<&str>| {
            version_tag(
                &VersionIdentity::Etag {
                    etag: "abc".into(),
                    sequencer: sequencer.map(str::to_owned),
                },
                profile,
            )
        };
        assert_ne!(by_etag(Some("01")), by_etag(Some("02")));
        assert_ne!(by_etag(None), by_etag(Some("01")));
        let mut changed = profile.clone();
        changed.variants[0].quality = 90;
        assert_ne!(
            tag,
            version_tag(&v1, &changed),
            "a settings change is a new tag"
        );
        let mut limits_only = profile.clone();
        limits_only.limits.max_bytes -= 1;
        assert_eq!(
            tag,
            version_tag(&v1, &limits_only),
            "limits decide acceptance, not pixels"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("{profile}/{key}/{version}/{variant}.{ext}").is_ok());
        assert!(check_template("{variant}/{key}@{version}").is_ok());
        assert!(check_template("{profile}/{key}/{version}.{ext}")
            .unwrap_err()
            .contains("{variant}"));
        assert!(check_template("{variant}/{stem}/{version}.{ext}")
            .unwrap_err()
            .contains("{key}"));
        assert!(check_template("{variant}/{key}.{ext}")
            .unwrap_err()
            .contains("{version}"));
        assert!(check_template("{variant}/{size}/{key}/{version}")
            .unwrap_err()
            .contains("unknown"));
        assert!(check_template("{variant}/{version}/{key")
            .unwrap_err()
            .contains("unclosed"));
        assert!(check_template("{variant}}/{key}/{version}")
            .unwrap_err()
            .contains("stray"));
        assert!(check_template("/{variant}/{key}/{version}").is_err());
    }
}
