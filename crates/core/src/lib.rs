//! Ferrotype's pure core: what a variant is, what an upload may be, how it is probed and rendered, the
//! configuration, the events and the data the pipeline's stages pass on. No AWS in here: the Lambdas,
//! the local runner and the CLI all build on this crate.

pub mod config;
pub mod cpu;
pub mod event;
pub mod faces;
pub mod imaging;
pub mod keys;
pub mod pipeline;
pub mod rejection;
pub mod saliency;
pub mod spec;

pub use faces::{
    clamp_box, crop_focus, focus_from_faces, BuiltinDetector, DetectorKind, FaceBox, FaceDetection,
    FaceDetectionError, FaceDetector, NoDetector,
};
pub use imaging::{
    crop_window, decode_preview, decode_working_copy, face_preview, probe, render, render_working,
    variant_focus, Channels, ImageInfo, Probe, RenderError, Rendered, WorkingCopy,
    WorkingCopyError,
};
pub use rejection::{Rejection, RejectionCode};
pub use saliency::SaliencyGrid;
pub use spec::{Fit, Focus, Limits, OutputFormat, Rgb, SourceFormat, SpecError, VariantSpec};
