//! One side's work on one image, in its own process so its peak RSS is that image's. Our worker runs
//! here; sharp's is bench/sharp-worker.mjs. Both print one JSON line of the same shape.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferrotype_core::{
    decode_working_copy, render_working, Focus, Limits, VariantSpec, WorkingCopy,
};
use serde::{Deserialize, Serialize};

use crate::measure::{cpu_time, millis, peak_rss_kib};

/// The seed's two variants in our contract's shape: 300×300 and 800×800 `cover` JPEGs at sharp's default
/// quality (80), keeping metadata as `withMetadata()` does.
pub const SEED_VARIANTS_JSON: &str = r#"[
  { "name": "thumbnail", "width": 300, "height": 300, "fit": "cover", "format": "jpeg", "quality": 80, "keepMetadata": true },
  { "name": "coverphoto", "width": 800, "height": 800, "fit": "cover", "format": "jpeg", "quality": 80, "keepMetadata": true }
]"#;

pub fn seed_variants() -> Result<Vec<VariantSpec>> {
    serde_json::from_str(SEED_VARIANTS_JSON).context("the seed's variant specs")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputInfo {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingCopyInfo {
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// What a worker prints (sharp-worker.mjs prints the same fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerResult {
    pub side: String,
    pub image: String,
    /// Wall time of each timed run (all variants of the image, one after the other), ms.
    pub wall_ms: Vec<f64>,
    /// CPU time (user + system, all threads) of each timed run, ms.
    pub cpu_ms: Vec<f64>,
    /// Wall time of each variant in each timed run, ms (ours: render-variant's work, reading the
    /// working copy and rendering from it; sharp: its call for that variant).
    #[serde(default)]
    pub variant_wall_ms: Vec<Vec<f64>>,
    /// Ours only: validate's work in each timed run, ms (the one decode and the working copy's encode).
    #[serde(default)]
    pub validate_wall_ms: Vec<f64>,
    /// Ours only: the working copy's size in pixels and encoded bytes.
    #[serde(default)]
    pub working_copy: Option<WorkingCopyInfo>,
    pub variants: Vec<OutputInfo>,
    #[serde(rename = "peakRssKiB")]
    pub peak_rss_kib: u64,
    /// Worker threads the imaging library was allowed.
    pub threads: serde_json::Value,
    #[serde(default)]
    pub version: Option<String>,
}

pub struct WorkerArgs<'a> {
    pub image: &'a Path,
    pub runs: usize,
    pub warmup: usize,
    pub out: Option<&'a Path>,
    /// Render only the variant of this name.
    pub only: Option<&'a str>,
    /// A JSON array of VariantSpec to render instead of the seed's two.
    pub specs: Option<&'a Path>,
}

/// Does the pipeline's image work on `image` `warmup + runs` times — validate's one decode into a
/// working copy and its encoding, then for each variant what a Map iteration does: decode the working
/// copy and render from it — and measures the timed runs.
pub fn run_ours(args: &WorkerArgs) -> Result<WorkerResult> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let source =
        std::fs::read(args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let mut specs = match args.specs {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a JSON array of variant specs", path.display()))?,
        None => seed_variants()?,
    };
    if let Some(only) = args.only {
        specs.retain(|s| s.name == only);
        if specs.is_empty() {
            bail!("no variant named {only:?}");
        }
    }
    let limits = Limits::default();
    let focus = Some(Focus::CENTRE);

    let mut wall_ms = Vec::new();
    let mut cpu_ms = Vec::new();
    let mut variant_wall_ms = vec![Vec::new(); specs.len()];
    let mut validate_wall_ms = Vec::new();
    let mut outputs = Vec::new();
    let mut working_copy = None;
    for run in 0..args.warmup + args.runs {
        let cpu_start = cpu_time();
        let start = Instant::now();
        let stored = decode_working_copy(&source, &limits, &specs, None)
            .with_context(|| format!("decoding {}", args.image.display()))?;
        let encoded = stored.encode();
        let validated = millis(start.elapsed());
        working_copy = Some(WorkingCopyInfo {
            width: stored.width(),
            height: stored.height(),
            bytes: encoded.len() as u64,
        });
        drop(stored);
        let mut rendered = Vec::with_capacity(specs.len());
        let mut per_variant = Vec::with_capacity(specs.len());
        for spec in &specs {
            let variant_start = Instant::now();
            // The clone stands for the stage's S3 read, a fresh buffer that decoding takes over.
            let copy = WorkingCopy::decode(encoded.clone(), &limits)
                .map_err(|e| anyhow::anyhow!("reading the working copy: {e}"))?;
            let output = render_working(&copy, spec, focus)
                .with_context(|| format!("rendering {} of {}", spec.name, args.image.display()))?;
            per_variant.push(millis(variant_start.elapsed()));
            rendered.push(output);
        }
        let elapsed = millis(start.elapsed());
        let cpu = millis(cpu_time().saturating_sub(cpu_start));
        if run >= args.warmup {
            wall_ms.push(elapsed);
            cpu_ms.push(cpu);
            validate_wall_ms.push(validated);
            for (samples, ms) in variant_wall_ms.iter_mut().zip(per_variant) {
                samples.push(ms);
            }
        }
        outputs = rendered;
    }

    let mut variants = Vec::new();
    for (spec, output) in specs.iter().zip(&outputs) {
        let path = match args.out {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("ours-{}.{}", spec.name, output.format.extension()));
                std::fs::write(&path, &output.bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        variants.push(OutputInfo {
            name: spec.name.clone(),
            width: output.width,
            height: output.height,
            bytes: output.bytes.len() as u64,
            path,
        });
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(serde_json::Value::from)
        .unwrap_or_else(|| serde_json::Value::from("default"));
    Ok(WorkerResult {
        side: "ours".into(),
        image: args
            .image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        wall_ms,
        cpu_ms,
        variant_wall_ms,
        validate_wall_ms,
        working_copy,
        variants,
        peak_rss_kib: peak_rss_kib(),
        threads,
        version: Some(env!("CARGO_PKG_VERSION").into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_variants_parse_as_the_contract_says() {
        let specs = seed_variants().unwrap();
        let boxes: Vec<_> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.width, s.height, s.quality))
            .collect();
        assert_eq!(
            boxes,
            [
                ("thumbnail", Some(300), Some(300), 80),
                ("coverphoto", Some(800), Some(800), 80)
            ]
        );
        assert!(specs
            .iter()
            .all(|s| s.keep_metadata && s.validate().is_ok()));
    }

    #[test]
    fn worker_renders_both_variants_and_measures_them() {
        let dir =
            std::env::temp_dir().join(format!("ferrotype-bench-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("src.jpg");
        let photo = crate::synthetic::photo_like(1200, 900, 11, true);
        std::fs::write(&image, crate::synthetic::encode_jpeg(&photo, 90).unwrap()).unwrap();
        let result = run_ours(&WorkerArgs {
            image: &image,
            runs: 2,
            warmup: 0,
            out: Some(&dir),
            only: None,
            specs: None,
        })
        .unwrap();
        assert_eq!(result.wall_ms.len(), 2);
        assert_eq!(result.variant_wall_ms.len(), 2);
        assert_eq!(result.validate_wall_ms.len(), 2);
        let copy = result.working_copy.as_ref().unwrap();
        // 800×800 cover of a 1200×900 photo needs 800 of its 900 rows: no DCT scale serves it, so it
        // is decoded whole and resampled down to 1067×800 (1066.7 columns rounded up), of which the
        // copy keeps the centred columns both covers read: the 800 of the cover and the thumbnail
        // kernel's reach on each side (11 columns: 3 × 800/300, rounded up, plus 2).
        assert_eq!((copy.width, copy.height), (823, 800));
        let sizes: Vec<_> = result
            .variants
            .iter()
            .map(|v| (v.width, v.height))
            .collect();
        assert_eq!(sizes, [(300, 300), (800, 800)]);
        for v in &result.variants {
            let written = std::fs::read(v.path.as_ref().unwrap()).unwrap();
            assert_eq!(written.len() as u64, v.bytes);
        }
        assert!(result.peak_rss_kib > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
