/**
 * Memory for a Lambda that decodes whole images, derived from the largest image it accepts.
 *
 * Peak bytes per source pixel, worst case:
 *   8  a 16-bit-per-channel RGBA decode (16-bit PNG/TIFF), held until converted
 * + 4  the 8-bit RGBA image it is converted to
 * + 4  one resize working buffer (a two-pass resize keeps an intermediate image of at most the
 *      source's size; the output variant is smaller still)
 * = 16 B/px, plus a fixed 128 MiB for the runtime, the encoded source bytes and the encoder.
 *
 * memoryMiB = clamp(roundUp64(maxPixels * 16 / 2^20 + 128), 128, 10240)
 *
 * Lambda memory is set in MB but is in fact MiB; 10240 is Lambda's ceiling. Example: the default
 * profile's 100,000,000 px needs 1526 + 128 = 1654 MiB, rounded up to 1664.
 */
export const DECODE_BYTES_PER_PIXEL = 8 + 4 + 4;
export const RUNTIME_OVERHEAD_MIB = 128;
export const LAMBDA_MIN_MEMORY_MIB = 128;
export const LAMBDA_MAX_MEMORY_MIB = 10240;
const MEMORY_STEP_MIB = 64;

/** The unrounded, unclamped estimate: more than LAMBDA_MAX_MEMORY_MIB means the largest images may not fit. */
export function decodeMemoryNeededMiB(maxPixels: number): number {
  return (maxPixels * DECODE_BYTES_PER_PIXEL) / (1024 * 1024) + RUNTIME_OVERHEAD_MIB;
}

export function decodeMemoryMiB(maxPixels: number): number {
  const needed = decodeMemoryNeededMiB(maxPixels);
  const rounded = Math.ceil(needed / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
  return Math.min(LAMBDA_MAX_MEMORY_MIB, Math.max(LAMBDA_MIN_MEMORY_MIB, rounded));
}
