//! Where the output's pixels come from: sharp's fit modes as plain arithmetic on the upright image.

use crate::faces::FaceDetection;
use crate::spec::{Fit, Focus, VariantSpec};

/// The crop window (x, y, w, h) of a `src_w`×`src_h` image with the aspect ratio of `dst_w`×`dst_h`:
/// as large as the image allows, and placed so that `focus` is as close to its centre as the edges allow.
pub fn crop_window(
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    focus: Focus,
) -> (u32, u32, u32, u32) {
    let focus = focus.clamped();
    let (src_w, src_h) = (src_w.max(1), src_h.max(1));
    let (dst_w, dst_h) = (u64::from(dst_w.max(1)), u64::from(dst_h.max(1)));
    let (w, h) = if u64::from(src_w) * dst_h > u64::from(src_h) * dst_w {
        // Source is wider than the target: full height, trimmed width.
        let w = (u64::from(src_h) * dst_w + dst_h / 2) / dst_h;
        (w.clamp(1, u64::from(src_w)) as u32, src_h)
    } else {
        let h = (u64::from(src_w) * dst_h + dst_w / 2) / dst_w;
        (src_w, h.clamp(1, u64::from(src_h)) as u32)
    };
    let place = |size: u32, window: u32, at: f64| -> u32 {
        let ideal = at * f64::from(size) - f64::from(window) / 2.0;
        ideal.round().clamp(0.0, f64::from(size - window)) as u32
    };
    (place(src_w, w, focus.x), place(src_h, h, focus.y), w, h)
}

/// The focus a variant's crop follows: for a cover crop, the faces that fit its window
/// ([`crate::faces::crop_focus`]); otherwise the detection's focus (nothing is cut away). The renderer,
/// the contact sheet and `ferrotype render` all ask this, so they agree on every crop.
pub fn variant_focus(detection: &FaceDetection, upright: (u32, u32), spec: &VariantSpec) -> Focus {
    match (spec.fit, spec.width, spec.height) {
        (Fit::Cover, Some(width), Some(height)) => {
            let (up_w, up_h) = (upright.0.max(1), upright.1.max(1));
            let (_, _, w, h) = crop_window(up_w, up_h, width, height, Focus::CENTRE);
            crate::faces::crop_focus(
                detection,
                (
                    f64::from(w) / f64::from(up_w),
                    f64::from(h) / f64::from(up_h),
                ),
            )
        }
        _ => detection.focus,
    }
}

/// What to do with an upright `width`×`height` source to produce a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The region of the upright source that is resampled (x, y, w, h).
    pub source: (u32, u32, u32, u32),
    /// The size that region is resampled to.
    pub resized: (u32, u32),
    /// The output size; larger than `resized` only for contain (letterboxed).
    pub canvas: (u32, u32),
    /// Where the resampled image sits on the canvas.
    pub offset: (u32, u32),
}

impl Layout {
    pub fn letterboxed(&self) -> bool {
        self.canvas != self.resized
    }
}

/// The same arithmetic as sharp's `ResolveShrink` and its crop/embed step.
pub(crate) fn layout(width: u32, height: u32, spec: &VariantSpec, focus: Focus) -> Layout {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (mut hshrink, mut vshrink) = match (spec.width, spec.height) {
        (Some(tw), Some(th)) => {
            let (hs, vs) = (w / f64::from(tw), h / f64::from(th));
            match spec.fit {
                Fit::Cover | Fit::Outside => (hs.min(vs), hs.min(vs)),
                Fit::Contain | Fit::Inside => (hs.max(vs), hs.max(vs)),
                Fit::Fill => (hs, vs),
            }
        }
        (Some(tw), None) => {
            let hs = w / f64::from(tw);
            (hs, if spec.fit == Fit::Fill { 1.0 } else { hs })
        }
        (None, Some(th)) => {
            let vs = h / f64::from(th);
            (if spec.fit == Fit::Fill { 1.0 } else { vs }, vs)
        }
        (None, None) => (1.0, 1.0),
    };
    if !spec.enlarge {
        hshrink = hshrink.max(1.0);
        vshrink = vshrink.max(1.0);
    }
    hshrink = hshrink.min(w);
    vshrink = vshrink.min(h);
    let scaled = |size: f64, shrink: f64| ((size / shrink).round() as u32).max(1);
    let resized = (scaled(w, hshrink), scaled(h, vshrink));
    let whole = (0, 0, width.max(1), height.max(1));
    match (spec.fit, spec.width, spec.height) {
        (Fit::Cover, Some(tw), Some(th)) => {
            // Without enlargement a box larger than the image shrinks to fit it, keeping the box's
            // aspect ratio: a 300×300 thumbnail of a 200×100 image is 100×100, still square.
            let fit = (f64::from(resized.0) / f64::from(tw))
                .min(f64::from(resized.1) / f64::from(th))
                .min(1.0);
            let out = (
                ((f64::from(tw) * fit).round() as u32).clamp(1, resized.0),
                ((f64::from(th) * fit).round() as u32).clamp(1, resized.1),
            );
            let source = crop_window(width.max(1), height.max(1), out.0, out.1, focus);
            Layout {
                source,
                resized: out,
                canvas: out,
                offset: (0, 0),
            }
        }
        (Fit::Contain, Some(tw), Some(th)) => {
            let resized = (resized.0.min(tw), resized.1.min(th));
            Layout {
                source: whole,
                resized,
                canvas: (tw, th),
                offset: ((tw - resized.0) / 2, (th - resized.1) / 2),
            }
        }
        _ => Layout {
            source: whole,
            resized,
            canvas: resized,
            offset: (0, 0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: Option<u32>, h: Option<u32>, fit: Fit, enlarge: bool) -> VariantSpec {
        VariantSpec {
            fit,
            enlarge,
            ..VariantSpec::new("t", w, h)
        }
    }

    #[test]
    fn crop_window_centres_and_clamps_focus() {
        assert_eq!(
            crop_window(2000, 1000, 300, 300, Focus::CENTRE),
            (500, 0, 1000, 1000)
        );
        assert_eq!(
            crop_window(2000, 1000, 300, 300, Focus::new(0.0, 0.0)),
            (0, 0, 1000, 1000)
        );
        assert_eq!(
            crop_window(2000, 1000, 300, 300, Focus::new(1.0, 1.0)),
            (1000, 0, 1000, 1000)
        );
        assert_eq!(
            crop_window(2000, 1000, 300, 300, Focus::new(0.3, 0.9)),
            (100, 0, 1000, 1000)
        );
        assert_eq!(
            crop_window(1000, 2000, 400, 200, Focus::new(0.5, 0.1)),
            (0, 0, 1000, 500)
        );
        assert_eq!(
            crop_window(1000, 2000, 400, 200, Focus::new(0.5, 0.95)),
            (0, 1500, 1000, 500)
        );
        assert_eq!(
            crop_window(1000, 2000, 400, 200, Focus::new(0.5, 0.6)),
            (0, 950, 1000, 500)
        );
        // Out-of-range and NaN focus are clamped rather than trusted.
        assert_eq!(
            crop_window(
                2000,
                1000,
                1,
                1,
                Focus {
                    x: 7.0,
                    y: f64::NAN
                }
            ),
            (1000, 0, 1000, 1000)
        );
        // Same aspect: the whole image.
        assert_eq!(
            crop_window(640, 480, 320, 240, Focus::new(0.9, 0.9)),
            (0, 0, 640, 480)
        );
    }

    #[test]
    fn fit_modes_match_sharp() {
        let l = |w, h, s: &VariantSpec| layout(w, h, s, Focus::CENTRE);
        let cover = l(2725, 2225, &spec(Some(300), Some(300), Fit::Cover, false));
        assert_eq!(
            (cover.canvas, cover.source),
            ((300, 300), (250, 0, 2225, 2225))
        );
        let contain = l(2725, 2225, &spec(Some(300), Some(300), Fit::Contain, false));
        assert_eq!(
            (contain.resized, contain.canvas, contain.offset),
            ((300, 245), (300, 300), (0, 27))
        );
        assert!(contain.letterboxed());
        assert_eq!(
            l(2725, 2225, &spec(Some(300), Some(300), Fit::Fill, false)).canvas,
            (300, 300)
        );
        assert_eq!(
            l(2725, 2225, &spec(Some(300), Some(300), Fit::Inside, false)).canvas,
            (300, 245)
        );
        assert_eq!(
            l(2725, 2225, &spec(Some(300), Some(300), Fit::Outside, false)).canvas,
            (367, 300)
        );
        assert_eq!(
            l(2725, 2225, &spec(Some(300), None, Fit::Cover, false)).canvas,
            (300, 245)
        );
        assert_eq!(
            l(2725, 2225, &spec(None, Some(300), Fit::Inside, false)).canvas,
            (367, 300)
        );
        assert_eq!(
            l(2725, 2225, &spec(Some(300), None, Fit::Fill, false)).canvas,
            (300, 2225)
        );
    }

    #[test]
    fn enlarge_false_never_upscales() {
        let l = |s: &VariantSpec| layout(400, 200, s, Focus::CENTRE);
        // Cover: no upscaling; the box shrinks to fit the image, keeping its aspect ratio.
        let cover = l(&spec(Some(800), Some(800), Fit::Cover, false));
        assert_eq!(
            (cover.canvas, cover.source),
            ((200, 200), (100, 0, 200, 200))
        );
        let cover = l(&spec(Some(300), Some(300), Fit::Cover, false));
        assert_eq!(
            (cover.canvas, cover.source),
            ((200, 200), (100, 0, 200, 200))
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Inside, false)).canvas,
            (400, 200)
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Outside, false)).canvas,
            (400, 200)
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Fill, false)).canvas,
            (400, 200)
        );
        let contain = l(&spec(Some(800), Some(800), Fit::Contain, false));
        assert_eq!(
            (contain.resized, contain.canvas, contain.offset),
            ((400, 200), (800, 800), (200, 300))
        );
        // enlarge = true scales up like sharp's default.
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Cover, true)).canvas,
            (800, 800)
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Inside, true)).canvas,
            (800, 400)
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Outside, true)).canvas,
            (1600, 800)
        );
        assert_eq!(
            l(&spec(Some(800), Some(800), Fit::Fill, true)).canvas,
            (800, 800)
        );
        let contain = l(&spec(Some(800), Some(800), Fit::Contain, true));
        assert_eq!((contain.resized, contain.offset), ((800, 400), (0, 200)));
    }
}
