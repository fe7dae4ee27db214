//! The contact sheet of a local run: one self-contained HTML page, each source beside its variants with
//! the focus point, the faces and the region each cover variant keeps drawn on it, so a person sees at a
//! glance that the crops are right.
//!
//! Images are linked, not copied: the page sits in `<data dir>/reports/` and every image's address comes
//! from one function, [`image_href`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ferrotype_core::config::Config;
use ferrotype_core::pipeline::{Manifest, ManifestStatus, RenderedVariant, Source};
use ferrotype_core::{crop_window, DetectorKind, Fit, Focus, SaliencyGrid, SourceFormat};

use crate::text::count as plural;

/// One source image of the run.
pub struct ReportRow<'a> {
    /// What the user gave (`samples/cat.jpg`), or the key when there is no file (a redrive).
    pub file: &'a str,
    pub input_bucket: &'a str,
    pub key: &'a str,
    /// The manifest record-result wrote, when there is one.
    pub manifest: Option<&'a Manifest>,
    /// Why it was rejected or failed when no manifest says so (the execution's error, or the runner's).
    pub error: Option<String>,
    pub duration_ms: u128,
}

/// An image a report shows: an object of a local bucket, at a version when the manifest names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

/// Where the page finds an image: `../buckets/<bucket>/<key>`, every path segment percent-encoded (keys
/// may hold spaces, `#`, `?`, `%`). This is the one place that decides it: the live object today, so a
/// later upload of the same key shows in an older report; an immutable per-version file once the local
/// store keeps them.
pub fn image_href(image: ImageRef<'_>) -> String {
    let mut href = String::from("../buckets/");
    href.push_str(&encode_segment(image.bucket));
    for segment in image.key.split('/') {
        href.push('/');
        href.push_str(&encode_segment(segment));
    }
    href
}

/// Writes the page to `path` (inside `<data dir>/reports/`) atomically, so a browser refreshing it
/// (`watch` rewrites it after every execution) never reads half a page.
pub fn write_contact_sheet(
    path: &Path,
    title: &str,
    config: &Config,
    rows: &[ReportRow<'_>],
) -> std::io::Result<()> {
    write_atomically(path, contact_sheet(title, config, rows).as_bytes())
}

/// Writes `bytes` to a temporary sibling, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

pub fn contact_sheet(title: &str, config: &Config, rows: &[ReportRow<'_>]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    let tally = |status: &str| rows.iter().filter(|r| status_of(r) == status).count();
    let _ = writeln!(
        html,
        "<p class=\"summary\">{}: {} succeeded, {} rejected, {} failed.</p>\n<p class=\"legend\">On each source: \
         <span class=\"key-focus\"></span> the focus point crops follow, <span class=\"key-face\"></span> detected faces, \
         <span class=\"key-attention\"></span> attention where no face was found, \
         <span class=\"key-crop\"></span> the region each cropped variant keeps. Transparent areas show as a checkerboard.</p>",
        plural(rows.len(), "source"),
        tally("succeeded"),
        tally("rejected"),
        tally("failed"),
    );
    for row in rows {
        section(&mut html, config, row);
    }
    html.push_str("</body></html>\n");
    html
}

fn status_of(row: &ReportRow<'_>) -> &'static str {
    match row.manifest.map(|m| m.status) {
        Some(ManifestStatus::Succeeded) => "succeeded",
        Some(ManifestStatus::Rejected) => "rejected",
        Some(ManifestStatus::Deleted) => "deleted",
        Some(ManifestStatus::Failed) | None => "failed",
    }
}

/// The largest box a source is shown in: portraits get more height than landscapes get width, so a
/// tall image is not shrunk to a sliver.
const SOURCE_BOX: (f64, f64) = (380.0, 460.0);
const VARIANT_BOX: (f64, f64) = (300.0, 300.0);

/// The size an image of `width`×`height` is shown at: fitted into `bounds`, never enlarged.
fn shown_size(width: u32, height: u32, bounds: (f64, f64)) -> (u32, u32) {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let scale = (bounds.0 / w).min(bounds.1 / h).min(1.0);
    (
        ((w * scale).round() as u32).max(1),
        ((h * scale).round() as u32).max(1),
    )
}

fn section(html: &mut String, config: &Config, row: &ReportRow<'_>) {
    let status = status_of(row);
    let _ = writeln!(
        html,
        "<section class=\"{status}\"><h2>{} <span class=\"status\">{status}</span> <span class=\"time\">{} ms</span></h2>",
        escape(row.file),
        row.duration_ms
    );
    if let Some(reason) = failure_reason(row) {
        let _ = write!(html, "<p class=\"error\">{}</p>", escape(&reason));
    }
    html.push_str("<div class=\"row\">");
    source_figure(html, config, row, status);
    if let Some(manifest) = row.manifest {
        for variant in &manifest.variants {
            variant_figure(html, variant);
        }
    }
    html.push_str("</div></section>\n");
}

/// What went wrong, in one line: the manifest's error (name and message), else the execution's.
fn failure_reason(row: &ReportRow<'_>) -> Option<String> {
    match row.manifest.and_then(|m| m.error.as_ref()) {
        Some(error) => Some(format!("{}: {}", error.name, error.message)),
        None => row.error.clone(),
    }
}

/// The source with its focus, faces and crop regions; or, when the browser cannot show it (a rejected
/// upload, a format browsers do not decode), a note saying why instead of a broken-image icon.
fn source_figure(html: &mut String, config: &Config, row: &ReportRow<'_>, status: &str) {
    let source = row.manifest.and_then(|m| m.source.as_ref());
    let shown = match source {
        _ if status == "rejected" => Err("not shown: the upload was rejected".to_owned()),
        None => Err("not shown: the upload was not validated".to_owned()),
        Some(source) if !browsers_show(source.format) => Err(format!(
            "not shown: browsers do not display {}",
            source.format.as_str().to_uppercase()
        )),
        Some(source) => Ok(source),
    };
    html.push_str("<figure class=\"source\">");
    match shown {
        Ok(source) => {
            let (w, h) = shown_size(source.upright_width, source.upright_height, SOURCE_BOX);
            let _ = write!(
                html,
                "<div class=\"frame\" style=\"width:{w}px;height:{h}px\"><img src=\"{}\" width=\"{w}\" height=\"{h}\" alt=\"source\">",
                image_href(ImageRef {
                    bucket: row.input_bucket,
                    key: row.key,
                    version_id: source.version_id.as_deref(),
                })
            );
            if let Some(manifest) = row.manifest {
                overlays(html, config, manifest, source);
            }
            html.push_str("</div>");
        }
        Err(note) => {
            let _ = write!(html, "<div class=\"noimage\">{}</div>", escape(&note));
        }
    }
    html.push_str("<figcaption>");
    match source {
        Some(source) => {
            let _ = write!(
                html,
                "{} {}×{} (orientation {}), {} bytes",
                source.format.as_str(),
                source.upright_width,
                source.upright_height,
                source.orientation,
                source.size
            );
            if let Some(faces) = row.manifest.and_then(|m| m.faces.as_ref()) {
                if faces.detector != DetectorKind::None {
                    let _ = write!(
                        html,
                        "; {} by {}",
                        plural(faces.faces.len(), "face"),
                        detector_name(faces.detector)
                    );
                }
                if faces.saliency.is_some() {
                    html.push_str("; crops keep the most attention (shaded)");
                }
            }
        }
        None => html.push_str(&escape(row.key)),
    }
    html.push_str("</figcaption></figure>");
}

/// Browsers (other than Safari) show no TIFF; everything else the pipeline accepts they do.
fn browsers_show(format: SourceFormat) -> bool {
    !matches!(format, SourceFormat::Tiff)
}

/// Faces, crop regions and the focus, in percent of the shown source (which browsers show upright, as
/// the fractions are).
fn overlays(html: &mut String, config: &Config, manifest: &Manifest, source: &Source) {
    if let Some(faces) = &manifest.faces {
        if let Some(grid) = &faces.saliency {
            attention_cells(html, grid);
        }
        for face in &faces.faces {
            let _ = write!(
                html,
                "<span class=\"face\" style=\"left:{:.2}%;top:{:.2}%;width:{:.2}%;height:{:.2}%\"></span>",
                face.left * 100.0,
                face.top * 100.0,
                face.width * 100.0,
                face.height * 100.0
            );
        }
    }
    for (index, variant) in manifest.variants.iter().enumerate() {
        let Some((x, y, w, h)) = crop_region(config, manifest, source, variant) else {
            continue;
        };
        let (sw, sh) = (
            f64::from(source.upright_width.max(1)),
            f64::from(source.upright_height.max(1)),
        );
        let _ = write!(
            html,
            "<span class=\"crop c{}\" style=\"left:{:.2}%;top:{:.2}%;width:{:.2}%;height:{:.2}%\"><b>{}</b></span>",
            index % CROP_COLOURS,
            f64::from(x) / sw * 100.0,
            f64::from(y) / sh * 100.0,
            f64::from(w) / sw * 100.0,
            f64::from(h) / sh * 100.0,
            escape(&variant.name)
        );
    }
    if let Some(focus) = &manifest.focus {
        let _ = write!(
            html,
            "<span class=\"focus\" style=\"left:{:.2}%;top:{:.2}%\"></span>",
            focus.x * 100.0,
            focus.y * 100.0
        );
    }
}

/// The region of the upright source a cover variant kept (x, y, w, h in source pixels), computed as the
/// renderer does: the output's aspect ratio, as large as the source allows, placed around the focus.
/// None for fits that keep the whole image, or when the variant's spec is not in the configuration.
pub fn crop_region(
    config: &Config,
    manifest: &Manifest,
    source: &Source,
    variant: &RenderedVariant,
) -> Option<(u32, u32, u32, u32)> {
    let profile = config.profile(manifest.profile.as_deref()?)?;
    let spec = profile.variants.iter().find(|s| s.name == variant.name)?;
    if spec.fit != Fit::Cover || spec.width.is_none() || spec.height.is_none() {
        return None;
    }
    // The same choice as render-variant: the faces that fit this crop's window.
    let focus = match (spec.follow_focus, &manifest.faces, manifest.focus) {
        (true, Some(faces), focus) => {
            let mut faces = faces.clone();
            faces.focus = focus.unwrap_or(faces.focus);
            ferrotype_core::variant_focus(
                &faces,
                (source.upright_width, source.upright_height),
                spec,
            )
        }
        (true, None, Some(focus)) => focus,
        _ => Focus::CENTRE,
    };
    Some(crop_window(
        source.upright_width,
        source.upright_height,
        variant.width,
        variant.height,
        focus,
    ))
}

fn variant_figure(html: &mut String, variant: &RenderedVariant) {
    let (w, h) = shown_size(variant.width, variant.height, VARIANT_BOX);
    let _ = write!(
        html,
        "<figure><img src=\"{}\" width=\"{w}\" height=\"{h}\" alt=\"{}\"><figcaption>{} · {}×{} {} · {} bytes</figcaption></figure>",
        image_href(ImageRef {
            bucket: &variant.bucket,
            key: &variant.key,
            version_id: None,
        }),
        escape(&variant.name),
        escape(&variant.name),
        variant.width,
        variant.height,
        variant.format.extension(),
        variant.bytes
    );
}

fn detector_name(kind: DetectorKind) -> &'static str {
    match kind {
        DetectorKind::Builtin => "the built-in detector",
        DetectorKind::Rekognition => "Rekognition",
        DetectorKind::None => "no detector",
    }
}

fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &byte in segment.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How many colours crop outlines cycle through (classes c0…c3 in the style).
const CROP_COLOURS: usize = 4;

/// The saliency grid as shaded cells, darker where attention is higher (the weakest half left clear).
fn attention_cells(html: &mut String, grid: &SaliencyGrid) {
    if !grid.is_consistent() {
        return;
    }
    let (columns, rows) = (usize::from(grid.columns), usize::from(grid.rows));
    for (index, cell) in grid.cells.iter().enumerate() {
        if *cell <= ferrotype_core::saliency::TOP / 2 {
            continue;
        }
        let _ = write!(
            html,
            "<span class=\"attention\" style=\"left:{:.2}%;top:{:.2}%;width:{:.2}%;height:{:.2}%;opacity:{:.2}\"></span>",
            (index % columns) as f64 * 100.0 / columns as f64,
            (index / columns) as f64 * 100.0 / rows as f64,
            100.0 / columns as f64,
            100.0 / rows as f64,
            f64::from(*cell) / f64::from(ferrotype_core::saliency::TOP) * 0.45
        );
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;background:#f4f4f2;color:#222}\
section{background:#fff;margin:1em 0;padding:1em;border-left:6px solid #3a7}\
section.rejected{border-color:#d90}section.failed{border-color:#c33}\
h2{font-size:15px;margin:0 0 .6em}.status{font-weight:normal;color:#666}.time{color:#999;font-weight:normal}\
.row{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}figure{margin:0;flex:none}\
figure img{display:block;background:repeating-conic-gradient(#d4d4d4 0 25%,#fff 0 50%) 0 0/16px 16px}\
.frame{position:relative;overflow:hidden}.frame img{width:100%;height:100%}\
.noimage{width:220px;height:140px;display:flex;align-items:center;justify-content:center;text-align:center;padding:1em;box-sizing:border-box;background:#f7f0e6;color:#865;border:1px dashed #cba}\
.focus{position:absolute;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%;background:#f0f;border:2px solid #fff;box-shadow:0 0 3px #000}\
.face{position:absolute;border:2px solid #0ff;box-sizing:border-box}.attention{position:absolute;background:#f60}\
.crop{position:absolute;border:2px dashed;box-sizing:border-box}.crop b{position:absolute;left:2px;top:1px;font-size:11px;font-weight:normal;color:#fff;text-shadow:0 0 2px #000,0 0 2px #000}\
.c0{border-color:#ff0}.c1{border-color:#f80}.c2{border-color:#0f0}.c3{border-color:#f0f}\
.legend span{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 2px}\
.key-focus{border-radius:50%;background:#f0f}.key-face{border:2px solid #0ff}.key-attention{background:#f60;opacity:.4}.key-crop{border:2px dashed #fb0}\
figcaption{color:#555;font-size:12px;margin-top:.3em;max-width:380px}.error{color:#c33;margin:.2em 0 .6em}.summary,.legend{color:#444}";

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotype_core::faces::FaceDetection;
    use ferrotype_core::OutputFormat;

    fn config() -> Config {
        Config::from_json(include_str!("../ferrotype.json")).unwrap()
    }

    fn source(width: u32, height: u32, format: SourceFormat) -> Source {
        Source {
            bucket: "input".into(),
            key: "uploads/p.jpg".into(),
            version_id: None,
            etag: "\"e\"".into(),
            sequencer: None,
            size: 1000,
            format,
            width,
            height,
            orientation: 1,
            upright_width: width,
            upright_height: height,
        }
    }

    fn variant(name: &str, width: u32, height: u32) -> RenderedVariant {
        RenderedVariant {
            name: name.into(),
            bucket: "output".into(),
            key: format!("variants/default/{name}/p.jpg"),
            format: OutputFormat::Jpeg,
            content_type: "image/jpeg".into(),
            width,
            height,
            bytes: 10,
            duration_ms: 1,
        }
    }

    fn manifest(status: ManifestStatus, source: Option<Source>) -> Manifest {
        Manifest {
            status,
            bucket: "input".into(),
            key: "uploads/p.jpg".into(),
            version: Some("0123456789abcdef".into()),
            source,
            profile: Some("default".into()),
            focus: Some(Focus::new(0.5, 0.2)),
            faces: Some(FaceDetection::none()),
            variants: vec![variant("thumbnail", 300, 300)],
            execution_id: "x".into(),
            started_at: "t".into(),
            recorded_at: "t".into(),
            error: None,
            retained: Vec::new(),
            retired: Vec::new(),
        }
    }

    fn row<'a>(manifest: Option<&'a Manifest>, error: Option<&str>) -> ReportRow<'a> {
        ReportRow {
            file: "p.jpg",
            input_bucket: "input",
            key: "uploads/p.jpg",
            manifest,
            error: error.map(str::to_owned),
            duration_ms: 3,
        }
    }

    #[test]
    fn hrefs_and_text_are_escaped() {
        assert_eq!(
            image_href(ImageRef {
                bucket: "input",
                key: "uploads/a b#1?/c%.jpg",
                version_id: None
            }),
            "../buckets/input/uploads/a%20b%231%3F/c%25.jpg"
        );
        let page = contact_sheet(
            "run <1>",
            &config(),
            &[ReportRow {
                file: "x<script>.jpg",
                ..row(None, Some("boom & bust"))
            }],
        );
        assert!(page.contains("x&lt;script&gt;.jpg"));
        assert!(page.contains("boom &amp; bust"));
        assert!(page.contains("1 source: 0 succeeded, 0 rejected, 1 failed"));
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn portraits_keep_their_height_and_nothing_is_enlarged() {
        assert_eq!(shown_size(3000, 4000, SOURCE_BOX), (345, 460));
        assert_eq!(shown_size(1000, 3000, SOURCE_BOX), (153, 460));
        assert_eq!(shown_size(4000, 3000, SOURCE_BOX), (380, 285));
        assert_eq!(shown_size(100, 80, SOURCE_BOX), (100, 80));
    }

    #[test]
    fn the_crop_of_a_cover_variant_is_drawn_where_the_renderer_cuts() {
        let manifest = manifest(
            ManifestStatus::Succeeded,
            Some(source(1000, 2000, SourceFormat::Jpeg)),
        );
        let source = manifest.source.clone().unwrap();
        // A square of the full width, its centre as close to y = 0.2 × 2000 as the top edge allows.
        assert_eq!(
            crop_region(&config(), &manifest, &source, &manifest.variants[0]),
            Some((0, 0, 1000, 1000))
        );
        let page = contact_sheet("r", &config(), &[row(Some(&manifest), None)]);
        assert!(
            page.contains(
                "class=\"crop c0\" style=\"left:0.00%;top:0.00%;width:100.00%;height:50.00%\""
            ),
            "{page}"
        );
        assert!(page.contains("width=\"230\" height=\"460\""), "{page}");
    }

    #[test]
    fn rejected_and_undisplayable_sources_get_a_note_not_an_image() {
        let mut rejected = manifest(ManifestStatus::Rejected, None);
        rejected.variants.clear();
        rejected.error = Some(ferrotype_core::pipeline::ManifestError {
            name: "ImageRejected.NotAnImage".into(),
            message: "the file is text".into(),
        });
        let page = contact_sheet("r", &config(), &[row(Some(&rejected), None)]);
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("not shown: the upload was rejected"));
        assert!(page.contains("ImageRejected.NotAnImage: the file is text"));

        let tiff = manifest(
            ManifestStatus::Succeeded,
            Some(source(10, 10, SourceFormat::Tiff)),
        );
        let page = contact_sheet("r", &config(), &[row(Some(&tiff), None)]);
        assert!(page.contains("not shown: browsers do not display TIFF"));
        assert_eq!(page.matches("<img").count(), 1, "only the variant");
    }
}
