import { detectsFaces, FerrotypeConfig, largestMaxPixels, largestVariantPixels } from './config';

/**
 * Lambda memory that follows the work: one formula for every stage, fed with the largest image the
 * stage holds and what it holds per pixel (docs/CONTRACTS.md, "Stage inputs and outputs").
 *
 *   memoryMiB = clamp(roundUp64(pixels × bytesPerPixel / 2^20 + 128), 128, 10240)
 *
 * The fixed 128 MiB covers the runtime, the encoded bytes read from S3 and the encoder. Lambda memory is
 * set in MB but is in fact MiB; 10240 is its ceiling.
 *
 * - validate decodes the whole source once ({@link decodingPixels}, {@link DECODE_BYTES_PER_PIXEL}).
 * - detect-faces and render-variant read the working copy validate stored ({@link workingCopyPixels},
 *   {@link WORKING_COPY_BYTES_PER_PIXEL}).
 *
 * Lambda gives CPU in proportion to memory (one vCPU at 1769 MB): lowering the memory of a CPU-bound
 * stage costs about the same GB-seconds but takes longer, so it holds more concurrency for longer.
 */

/**
 * Peak bytes per source pixel while decoding, worst case:
 *   8  a 16-bit-per-channel RGBA decode (16-bit PNG/TIFF), held until converted
 * + 4  the 8-bit RGBA image it is converted to
 * + 4  one resize working buffer (at most source-sized)
 */
export const DECODE_BYTES_PER_PIXEL = 8 + 4 + 4;

/**
 * Peak bytes per working-copy pixel in a stage that reads it:
 *   4  the working copy as read from S3 (at most 8-bit RGBA), which becomes the bitmap in place
 *      (`WorkingCopy::decode` checks the CRC-32 and keeps the read buffer as the pixels)
 * + 4  one resize working buffer (at most working-copy-sized: a render's output or the face preview)
 * tests/resource_bounds.rs checks a render's peak stays under two copies' bytes plus 16 MiB.
 */
export const WORKING_COPY_BYTES_PER_PIXEL = 4 + 4;

/**
 * How much larger than a variant's output the working copy may be, in pixels. validate resamples the
 * copy down to what the most demanding variant needs (crates/core/src/imaging/mod.rs, `shrunk_to`), but
 * that is the whole image at the scale of the variant's crop: a cover variant of a 4:3 photo needs 1.33×
 * its own pixels, of a 3:1 panorama 3×; and validate keeps the decoded size when resampling would save
 * less than a fifth (up to 1.25× more). 4 covers sources up to 3.2:1.
 */
export const WORKING_COPY_SCALE_SLACK = 2 * 2;

/** detect-faces scans a preview of at most this side (functions/detect-faces, REKOGNITION_PREVIEW_SIDE, the larger). */
export const FACE_PREVIEW_SIDE = 1920;

export const RUNTIME_OVERHEAD_MIB = 128;
export const LAMBDA_MIN_MEMORY_MIB = 128;
export const LAMBDA_MAX_MEMORY_MIB = 10240;
const MEMORY_STEP_MIB = 64;

/** The unrounded, unclamped need: more than LAMBDA_MAX_MEMORY_MIB means the largest images may not fit. */
export function memoryNeededMiB(pixels: number, bytesPerPixel: number): number {
  return (pixels * bytesPerPixel) / (1024 * 1024) + RUNTIME_OVERHEAD_MIB;
}

/** The memory setting for a stage holding `pixels` at `bytesPerPixel`. */
export function memoryMiB(pixels: number, bytesPerPixel: number): number {
  const rounded = Math.ceil(memoryNeededMiB(pixels, bytesPerPixel) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
  return Math.min(LAMBDA_MAX_MEMORY_MIB, Math.max(LAMBDA_MIN_MEMORY_MIB, rounded));
}

/** The largest source any stage decodes whole: the largest `limits.maxPixels`. */
export function decodingPixels(config: FerrotypeConfig): number {
  return largestMaxPixels(config);
}

/**
 * The largest working copy: what the largest variant (and the face detector's preview, when a profile
 * detects faces) needs, times the scale slack, and never more than the source itself.
 *
 * Assumes validate keeps the working copy within that bound. A `cover` variant of a panorama needs the
 * short side at full variant size, so a copy of a very wide source can be larger; validate must cap it
 * (or the bound must grow) for the memory below to hold.
 */
export function workingCopyPixels(config: FerrotypeConfig): number {
  const preview = detectsFaces(config) ? FACE_PREVIEW_SIDE * FACE_PREVIEW_SIDE : 0;
  const needed = Math.max(largestVariantPixels(config), preview) * WORKING_COPY_SCALE_SLACK;
  return Math.min(decodingPixels(config), needed);
}

/** validate: decodes the whole upload. Example: 100 MP × 16 B = 1526 + 128 MiB → 1664. */
export function decodingMemoryMiB(config: FerrotypeConfig): number {
  return memoryMiB(decodingPixels(config), DECODE_BYTES_PER_PIXEL);
}

/**
 * detect-faces and render-variant: read the working copy. Example: the shipped profile (800×800 cover,
 * faces on): 1920² × 4 = 14.7 MP × 8 B = 112.5 + 128 MiB → 256.
 */
export function workingCopyMemoryMiB(config: FerrotypeConfig): number {
  return memoryMiB(workingCopyPixels(config), WORKING_COPY_BYTES_PER_PIXEL);
}
