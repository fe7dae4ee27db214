import * as fs from 'fs';

/** Smart-crop modes a profile may choose (docs/CONTRACTS.md). */
export type SmartCrop = 'rekognition' | 'builtin' | 'attention' | 'off';

/**
 * The parts of ferrotype.json the infrastructure depends on. The Lambdas validate the full schema
 * at start-up; here we check only what shapes resources, so a typo fails `cdk synth`, not a deploy.
 */
export interface FerrotypeConfig {
  readonly outputs: {
    readonly variantsPrefix: string;
    readonly manifestsPrefix: string;
    /** Working copies; optional in the file (the Rust config defaults it, see {@link workPrefix}). */
    readonly workPrefix?: string;
    readonly [field: string]: unknown;
  };
  readonly profiles: ReadonlyArray<{
    readonly name: string;
    readonly prefix: string;
    readonly smartCrop: SmartCrop;
    readonly limits: { readonly maxPixels: number; readonly [field: string]: unknown };
    readonly variants: ReadonlyArray<VariantBox>;
    readonly [field: string]: unknown;
  }>;
  readonly [field: string]: unknown;
}

/** The output size of a variant, as far as the infrastructure cares (memory of the stages that render it). */
export interface VariantBox {
  readonly name: string;
  readonly width?: number;
  readonly height?: number;
  readonly [field: string]: unknown;
}

/** crates/core's default of `outputs.workPrefix` (config.rs `default_work_prefix`), for files that omit it. */
export const DEFAULT_WORK_PREFIX = 'work/';

/** A configuration file the stack cannot be built from. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const SMART_CROP_MODES: readonly SmartCrop[] = ['rekognition', 'builtin', 'attention', 'off'];

/** Reads and checks ferrotype.json; `source` names it in error messages. */
export function loadConfig(path: string): FerrotypeConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return checkConfig(value, path);
}

/** Checks the fields the stack relies on and returns the value typed. */
export function checkConfig(value: unknown, source = 'config'): FerrotypeConfig {
  const fail = (what: string): never => {
    throw new ConfigError(`${source}: ${what}`);
  };
  if (!isObject(value)) fail('must be a JSON object');
  const root = value as Record<string, unknown>;
  const outputs = root.outputs;
  if (!isObject(outputs)) fail('"outputs" must be an object');
  const outputPrefixes: Array<[string, string]> = [];
  for (const field of ['variantsPrefix', 'manifestsPrefix', 'workPrefix']) {
    const prefix = (outputs as Record<string, unknown>)[field];
    if (field === 'workPrefix' && prefix === undefined) {
      outputPrefixes.push([field, DEFAULT_WORK_PREFIX]);
      continue;
    }
    if (typeof prefix !== 'string' || prefix.length === 0) fail(`"outputs.${field}" must be a non-empty string`);
    outputPrefixes.push([field, prefix as string]);
  }
  // Each prefix gets its own permissions and lifecycle; one inside another would mix them.
  outputPrefixes.forEach(([field, prefix], i) => {
    for (const [otherField, other] of outputPrefixes.slice(0, i)) {
      if (prefix.startsWith(other) || other.startsWith(prefix)) fail(`"outputs.${field}" must not overlap "outputs.${otherField}"`);
    }
  });
  const profiles = root.profiles;
  if (!Array.isArray(profiles) || profiles.length === 0) fail('"profiles" must be a non-empty array');
  const prefixes = new Set<string>();
  (profiles as unknown[]).forEach((profile, index) => {
    const at = `profiles[${index}]`;
    if (!isObject(profile)) fail(`${at} must be an object`);
    const p = profile as Record<string, unknown>;
    if (typeof p.name !== 'string' || p.name.length === 0) fail(`${at}.name must be a non-empty string`);
    // An empty prefix would make the rule fire on every object of the input bucket.
    if (typeof p.prefix !== 'string' || p.prefix.length === 0) fail(`${at}.prefix must be a non-empty string`);
    if (prefixes.has(p.prefix as string)) fail(`${at}.prefix "${p.prefix}" is used by another profile`);
    prefixes.add(p.prefix as string);
    if (!SMART_CROP_MODES.includes(p.smartCrop as SmartCrop)) {
      fail(`${at}.smartCrop must be one of ${SMART_CROP_MODES.join(', ')}`);
    }
    const limits = p.limits;
    if (!isObject(limits)) fail(`${at}.limits must be an object`);
    const maxPixels = (limits as Record<string, unknown>).maxPixels;
    if (typeof maxPixels !== 'number' || !Number.isSafeInteger(maxPixels) || maxPixels <= 0) {
      fail(`${at}.limits.maxPixels must be a positive integer`);
    }
    const variants = p.variants;
    if (!Array.isArray(variants) || variants.length === 0) fail(`${at}.variants must be a non-empty array`);
    (variants as unknown[]).forEach((variant, v) => {
      const vat = `${at}.variants[${v}]`;
      if (!isObject(variant)) fail(`${vat} must be an object`);
      const box = variant as Record<string, unknown>;
      for (const side of ['width', 'height']) {
        const value = box[side];
        if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)) {
          fail(`${vat}.${side} must be a positive integer`);
        }
      }
      if (box.width === undefined && box.height === undefined) fail(`${vat} needs a width or a height`);
    });
  });
  return value as FerrotypeConfig;
}

/** Every profile's upload prefix, in file order: what the EventBridge rule listens on. */
export function uploadPrefixes(config: FerrotypeConfig): string[] {
  return config.profiles.map((profile) => profile.prefix);
}

/** Where working copies go in the output bucket. */
export function workPrefix(config: FerrotypeConfig): string {
  return config.outputs.workPrefix ?? DEFAULT_WORK_PREFIX;
}

/**
 * True when some profile runs detect-faces (faces built-in or by Rekognition, or attention): its working copy
 * must also serve that stage's preview.
 */
export function detectsFaces(config: FerrotypeConfig): boolean {
  return config.profiles.some((profile) => profile.smartCrop !== 'off');
}

/**
 * The largest output any variant of any profile asks for, in pixels: width × height, or the given side
 * squared when the other is free (the bound of a square source, which the working copy must serve).
 */
export function largestVariantPixels(config: FerrotypeConfig): number {
  const sizes = config.profiles.flatMap((profile) =>
    profile.variants.map((variant) => {
      const width = variant.width ?? variant.height ?? 0;
      const height = variant.height ?? variant.width ?? 0;
      return width * height;
    }),
  );
  return Math.max(...sizes);
}

/** True when some profile sends images to Amazon Rekognition. */
export function usesRekognition(config: FerrotypeConfig): boolean {
  return config.profiles.some((profile) => profile.smartCrop === 'rekognition');
}

/** The largest `limits.maxPixels` of all profiles: the biggest image any Lambda may decode. */
export function largestMaxPixels(config: FerrotypeConfig): number {
  return Math.max(...config.profiles.map((profile) => profile.limits.maxPixels));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
