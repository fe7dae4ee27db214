//! The contact sheet of a local run: one self-contained HTML page, each source beside its variants with
//! the focus point and the faces marked, so a person sees at a glance that the crops are right.
//!
//! Images are linked, not copied: the page sits in `<data dir>/reports/` and points at the objects in
//! the local buckets (`<data dir>/buckets/<bucket>/<key>`).

use std::fmt::Write as _;
use std::path::Path;

use ferrotype_core::pipeline::{Manifest, ManifestStatus};
use ferrotype_core::DetectorKind;

/// One source image of the run.
pub struct ReportRow<'a> {
    /// What the user gave (`samples/cat.jpg`).
    pub file: &'a str,
    pub input_bucket: &'a str,
    pub key: &'a str,
    /// The manifest record-result wrote, when there is one.
    pub manifest: Option<&'a Manifest>,
    /// The execution's error when it failed without a manifest saying why.
    pub error: Option<&'a str>,
    pub duration_ms: u128,
}

/// Writes the page to `path` (inside `<data dir>/reports/`).
pub fn write_contact_sheet(
    path: &Path,
    title: &str,
    rows: &[ReportRow<'_>],
) -> std::io::Result<()> {
    std::fs::write(path, contact_sheet(title, rows))
}

pub fn contact_sheet(title: &str, rows: &[ReportRow<'_>]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    let succeeded = rows.iter().filter(|r| status_of(r) == "succeeded").count();
    let _ = writeln!(
        html,
        "<p class=\"summary\">{} sources: {succeeded} succeeded, {} rejected, {} failed. The dot marks the focus point crops follow; boxes are detected faces.</p>",
        rows.len(),
        rows.iter().filter(|r| status_of(r) == "rejected").count(),
        rows.iter().filter(|r| status_of(r) == "failed").count(),
    );
    for row in rows {
        section(&mut html, row);
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

fn section(html: &mut String, row: &ReportRow<'_>) {
    let status = status_of(row);
    let _ = write!(
        html,
        "<section class=\"{status}\"><h2>{} <span class=\"status\">{status}</span> <span class=\"time\">{} ms</span></h2>\n<div class=\"row\">",
        escape(row.file),
        row.duration_ms
    );
    // The source, with the focus point and faces drawn over it (fractions of the upright image, which is
    // also what browsers show: they apply EXIF orientation to <img>).
    let _ = write!(
        html,
        "<figure class=\"source\"><div class=\"frame\"><img src=\"{}\" alt=\"source\">",
        object_href(row.input_bucket, row.key)
    );
    if let Some(manifest) = row.manifest {
        if let Some(faces) = &manifest.faces {
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
        if let Some(focus) = &manifest.focus {
            let _ = write!(
                html,
                "<span class=\"focus\" style=\"left:{:.2}%;top:{:.2}%\"></span>",
                focus.x * 100.0,
                focus.y * 100.0
            );
        }
    }
    html.push_str("</div><figcaption>");
    if let Some(source) = row.manifest.and_then(|m| m.source.as_ref()) {
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
            let _ = write!(
                html,
                "; {} face(s) by {}",
                faces.faces.len(),
                detector_name(faces.detector)
            );
        }
    } else {
        html.push_str("source");
    }
    html.push_str("</figcaption></figure>");

    if let Some(manifest) = row.manifest {
        for variant in &manifest.variants {
            let _ = write!(
                html,
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{} · {}×{} {} · {} bytes</figcaption></figure>",
                object_href(&variant.bucket, &variant.key),
                escape(&variant.name),
                escape(&variant.name),
                variant.width,
                variant.height,
                variant.format.extension(),
                variant.bytes
            );
        }
        if let Some(error) = &manifest.error {
            let _ = write!(
                html,
                "<p class=\"error\"><b>{}</b>: {}</p>",
                escape(&error.name),
                escape(&error.message)
            );
        }
    } else if let Some(error) = row.error {
        let _ = write!(html, "<p class=\"error\">{}</p>", escape(error));
    }
    html.push_str("</div></section>\n");
}

fn detector_name(kind: DetectorKind) -> &'static str {
    match kind {
        DetectorKind::Builtin => "the built-in detector",
        DetectorKind::Rekognition => "Rekognition",
        DetectorKind::None => "no detector",
    }
}

/// `../buckets/<bucket>/<key>` with every path segment percent-encoded (keys may hold spaces, `#`, `?`, `%`).
fn object_href(bucket: &str, key: &str) -> String {
    let mut href = String::from("../buckets/");
    href.push_str(&encode_segment(bucket));
    for segment in key.split('/') {
        href.push('/');
        href.push_str(&encode_segment(segment));
    }
    href
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

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;background:#f4f4f2;color:#222}\
section{background:#fff;margin:1em 0;padding:1em;border-left:6px solid #3a7}\
section.rejected{border-color:#d90}section.failed{border-color:#c33}\
h2{font-size:15px;margin:0 0 .6em}.status{font-weight:normal;color:#666}.time{color:#999;font-weight:normal}\
.row{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}figure{margin:0}\
figure img{max-height:220px;display:block}.frame{position:relative;display:inline-block}\
.focus{position:absolute;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%;background:#f0f;border:2px solid #fff;box-shadow:0 0 3px #000}\
.face{position:absolute;border:2px solid #0ff;box-sizing:border-box}\
figcaption{color:#555;font-size:12px;margin-top:.3em}.error{color:#c33}.summary{color:#444}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_and_text_are_escaped() {
        assert_eq!(
            object_href("input", "uploads/a b#1?/c%.jpg"),
            "../buckets/input/uploads/a%20b%231%3F/c%25.jpg"
        );
        let page = contact_sheet(
            "run <1>",
            &[ReportRow {
                file: "x<script>.jpg",
                input_bucket: "input",
                key: "uploads/x.jpg",
                manifest: None,
                error: Some("boom & bust"),
                duration_ms: 3,
            }],
        );
        assert!(page.contains("x&lt;script&gt;.jpg"));
        assert!(page.contains("boom &amp; bust"));
        assert!(page.contains("1 sources: 0 succeeded, 0 rejected, 1 failed"));
        assert!(!page.contains("<script>"));
    }
}
