import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { build, configVariant, CONFIG_PATH, FIXTURE_LAMBDAS, logicalId, repoConfig } from './helpers';
import { checkConfig, ConfigError, largestMaxPixels } from '../lib/config';
import { memoryMiB, DECODE_BYTES_PER_PIXEL, workingCopyPixels, WORKING_COPY_BYTES_PER_PIXEL } from '../lib/memory';
import { STAGES, Stage } from '../lib/ferrotype-stack';

describe('pipeline functions', () => {
  const { app, stack, template } = build();
  const resources = template.toJSON().Resources;
  const fn = (stage: Stage) => resources[logicalId(stack, stack.functions[stage])].Properties;

  test('are exactly the four stages', () => {
    template.resourceCountIs('AWS::Lambda::Function', 4);
  });

  test.each(STAGES)('%s runs the Rust bootstrap on provided.al2023, arm64', (stage) => {
    expect(fn(stage).Runtime).toBe('provided.al2023');
    expect(fn(stage).Architectures).toEqual(['arm64']);
    expect(fn(stage).Handler).toBe('bootstrap');
    expect(fn(stage).Code.S3Key).toMatch(/\.zip$/);
  });

  test.each(STAGES)('%s gets the compact config, the output bucket and RUST_LOG', (stage) => {
    const variables = fn(stage).Environment.Variables;
    expect(Object.keys(variables).sort()).toEqual(['FERROTYPE_CONFIG', 'OUTPUT_BUCKET', 'RUST_LOG']);
    const fileConfig = JSON.parse(fs.readFileSync(CONFIG_PATH, 'utf8'));
    expect(variables.FERROTYPE_CONFIG).toBe(JSON.stringify(fileConfig));
    expect(variables.FERROTYPE_CONFIG).not.toMatch(/\n/);
    expect(variables.OUTPUT_BUCKET).toEqual({ Ref: logicalId(stack, stack.outputBucket as any) });
    expect(variables.RUST_LOG).toBe('info');
  });

  test.each(STAGES)('%s logs JSON to its own log group with retention, and traces actively', (stage) => {
    expect(fn(stage).LoggingConfig.LogFormat).toBe('JSON');
    const logGroupId = fn(stage).LoggingConfig.LogGroup.Ref;
    expect(resources[logGroupId].Type).toBe('AWS::Logs::LogGroup');
    expect(resources[logGroupId].Properties.RetentionInDays).toBe(30);
    const others = STAGES.filter((other) => other !== stage).map((other) => fn(other).LoggingConfig.LogGroup.Ref);
    expect(others).not.toContain(logGroupId);
    expect(fn(stage).TracingConfig).toEqual({ Mode: 'Active' });
  });

  test.each(STAGES)('%s has a role of its own', (stage) => {
    const roleId = fn(stage).Role['Fn::GetAtt'][0];
    const others = STAGES.filter((other) => other !== stage).map((other) => fn(other).Role['Fn::GetAtt'][0]);
    expect(others).not.toContain(roleId);
  });

  test('memory follows the work: validate decodes the largest upload, the later stages hold the working copy', () => {
    // validate: 100e6 px * 16 B = 1526 MiB + 128 MiB runtime = 1654, rounded up to 1664.
    expect(largestMaxPixels(repoConfig())).toBe(100_000_000);
    expect(fn('validate').MemorySize).toBe(1664);
    // The shipped profile detects faces: the working copy serves a 1920 px preview, 1920^2 * 4 (scale slack)
    // = 14.7 MP * 8 B = 112.5 MiB + 128 = 240.5, rounded up to 256.
    expect(workingCopyPixels(repoConfig())).toBe(1920 * 1920 * 4);
    expect(fn('detect-faces').MemorySize).toBe(256);
    expect(fn('render-variant').MemorySize).toBe(256);
    expect(fn('record-result').MemorySize).toBe(256);
  });

  test('no reserved concurrency unless asked for', () => {
    for (const stage of STAGES) expect(fn(stage).ReservedConcurrentExecutions).toBeUndefined();
  });

  test.each(STAGES)('%s is bundled from its own crate folder', (stage) => {
    const assembly = app.synth();
    const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8'));
    const hash = fn(stage).Code.S3Key.replace(/\.zip$/, '');
    const source = manifest.files[hash].source;
    expect(source.packaging).toBe('zip');
    const bundled = fs.readFileSync(path.join(assembly.directory, source.path, 'bootstrap'), 'utf8');
    expect(bundled).toBe(fs.readFileSync(path.join(FIXTURE_LAMBDAS, stage, 'bootstrap'), 'utf8'));
  });
});

describe('memory derivation', () => {
  const memoryOf = (built: ReturnType<typeof build>, stage: Stage) =>
    built.template.toJSON().Resources[logicalId(built.stack, built.stack.functions[stage])].Properties.MemorySize;

  test('validate follows the largest profile', () => {
    const config = configVariant((c) => {
      c.profiles.push({ ...c.profiles[0], name: 'small', prefix: 'small/', limits: { ...c.profiles[0].limits, maxPixels: 4_000_000 } });
      c.profiles[0].limits.maxPixels = 200_000_000;
    });
    // 200e6 * 16 / 2^20 = 3051.8 + 128 = 3179.8 → 3200
    expect(memoryOf(build({ config }), 'validate')).toBe(3200);
  });

  test('the working copy follows the largest variant when faces are off, and never exceeds the upload', () => {
    const noFaces = configVariant((c) => {
      c.profiles[0].smartCrop = 'off';
      c.profiles[0].variants = [{ name: 'big', width: 2000, height: 1500, fit: 'inside' }, { name: 'tall', height: 1200 }];
    });
    // 2000 * 1500 * 4 = 12 MP * 8 B = 91.6 MiB + 128 = 219.6 → 256
    expect(workingCopyPixels(noFaces)).toBe(12_000_000);
    expect(memoryOf(build({ config: noFaces }), 'render-variant')).toBe(256);
    const tiny = configVariant((c) => {
      c.profiles[0].smartCrop = 'off';
      c.profiles[0].limits.maxPixels = 1_000_000;
      c.profiles[0].variants = [{ name: 'big', width: 4000, height: 4000 }];
    });
    expect(workingCopyPixels(tiny)).toBe(1_000_000);
  });

  test('warns when the largest uploads would need more than Lambda offers', () => {
    const config = configVariant((c) => {
      c.profiles[0].limits.maxPixels = 1_000_000_000;
    });
    const built = build({ config });
    expect(memoryOf(built, 'validate')).toBe(10240);
    Annotations.fromStack(built.stack).hasWarning('*', Match.stringLikeRegexp('maxPixels'));
  });

  test.each([
    [1, 192],
    [4_000_000, 192],
    [12_000_000, 320],
    [100_000_000, 1664],
    [700_000_000, 10240],
  ])('memoryMiB(%d px at 16 B) = %d', (pixels, mib) => {
    expect(memoryMiB(pixels, DECODE_BYTES_PER_PIXEL)).toBe(mib);
    expect(mib % 64).toBe(0);
  });

  test('one formula for both kinds of stage', () => {
    expect(memoryMiB(14_745_600, WORKING_COPY_BYTES_PER_PIXEL)).toBe(256);
  });
});

describe('render-variant reserved concurrency', () => {
  test('is set from renderConcurrency, on render-variant only', () => {
    const built = build({ renderConcurrency: 400 });
    for (const stage of STAGES) {
      const props = built.template.toJSON().Resources[logicalId(built.stack, built.stack.functions[stage])].Properties;
      expect(props.ReservedConcurrentExecutions).toBe(stage === 'render-variant' ? 400 : undefined);
    }
  });

  test.each([0, -3, 2.5])('refuses %d', (value) => {
    expect(() => build({ renderConcurrency: value })).toThrow(/renderConcurrency must be a positive integer/);
  });
});

test('a missing build names the file and how to make it', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-nolambdas-'));
  expect(() => build({ lambdasDir: empty })).toThrow(/validate\/bootstrap: build the Lambdas first \(`cargo lambda build/);
});

describe('environment size', () => {
  test('a config too large for the 4 KB Lambda environment fails synth with a clear error', () => {
    const config = configVariant((c) => {
      for (let i = 0; i < 40; i++) c.profiles.push({ ...c.profiles[0], name: `p${i}`, prefix: `p${i}/` });
    });
    expect(() => build({ config })).toThrow(ConfigError);
    expect(() => build({ config })).toThrow(/4096-byte limit/);
  });
});

describe('config checks', () => {
  const base = () => JSON.parse(fs.readFileSync(CONFIG_PATH, 'utf8'));
  test.each([
    ['an empty prefix', (c: any) => (c.profiles[0].prefix = ''), /prefix must be a non-empty string/],
    ['a duplicate prefix', (c: any) => c.profiles.push({ ...c.profiles[0], name: 'again' }), /used by another profile/],
    ['an unknown smartCrop', (c: any) => (c.profiles[0].smartCrop = 'magic'), /smartCrop must be one of/],
    ['no profiles', (c: any) => (c.profiles = []), /non-empty array/],
    ['a fractional maxPixels', (c: any) => (c.profiles[0].limits.maxPixels = 1.5), /maxPixels must be a positive integer/],
    ['no manifestsPrefix', (c: any) => delete c.outputs.manifestsPrefix, /outputs.manifestsPrefix/],
    ['a work prefix inside the variants prefix', (c: any) => (c.outputs.workPrefix = 'variants/work/'), /"outputs.workPrefix" must not overlap "outputs.variantsPrefix"/],
    ['a variant without a size', (c: any) => (c.profiles[0].variants = [{ name: 'x' }]), /needs a width or a height/],
    ['a fractional width', (c: any) => (c.profiles[0].variants[0].width = 1.5), /width must be a positive integer/],
  ])('rejects %s', (_name, change, message) => {
    const config = base();
    change(config);
    expect(() => checkConfig(config)).toThrow(ConfigError);
    expect(() => checkConfig(config)).toThrow(message);
  });

  test('accepts the repository config', () => {
    expect(() => checkConfig(base())).not.toThrow();
  });
});
