import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { build, configVariant, CONFIG_PATH, FIXTURE_LAMBDAS, logicalId, repoConfig } from './helpers';
import { checkConfig, ConfigError, largestMaxPixels } from '../lib/config';
import { decodeMemoryMiB } from '../lib/memory';
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

  test('memory: small stages 256 MiB, decoding stages from the largest maxPixels', () => {
    expect(fn('validate').MemorySize).toBe(256);
    expect(fn('record-result').MemorySize).toBe(256);
    // The repo config allows 100 MP: 100e6 * 16 B = 1526 MiB + 128 MiB runtime = 1654, rounded up to 1664.
    expect(largestMaxPixels(repoConfig())).toBe(100_000_000);
    expect(fn('render-variant').MemorySize).toBe(1664);
    expect(fn('detect-faces').MemorySize).toBe(1664);
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

describe('render memory', () => {
  test('follows the largest profile', () => {
    const config = configVariant((c) => {
      c.profiles.push({ ...c.profiles[0], name: 'small', prefix: 'small/', limits: { ...c.profiles[0].limits, maxPixels: 4_000_000 } });
      c.profiles[0].limits.maxPixels = 200_000_000;
    });
    const { template } = build({ config });
    // 200e6 * 16 / 2^20 = 3051.8 + 128 = 3179.8 → 3200
    template.hasResourceProperties('AWS::Lambda::Function', { Description: 'Ferrotype render-variant stage', MemorySize: 3200 });
  });

  test('warns when the largest images would need more than Lambda offers', () => {
    const config = configVariant((c) => {
      c.profiles[0].limits.maxPixels = 1_000_000_000;
    });
    const { stack, template } = build({ config });
    template.hasResourceProperties('AWS::Lambda::Function', { Description: 'Ferrotype render-variant stage', MemorySize: 10240 });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('maxPixels'));
  });

  test.each([
    [1, 192],
    [4_000_000, 192],
    [12_000_000, 320],
    [100_000_000, 1664],
    [700_000_000, 10240],
  ])('decodeMemoryMiB(%d) = %d', (pixels, mib) => {
    expect(decodeMemoryMiB(pixels)).toBe(mib);
    expect(mib % 64).toBe(0);
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
