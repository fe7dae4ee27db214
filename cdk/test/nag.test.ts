import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks, NagPack } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { cdkJsonContext, configVariant, FIXTURE_LAMBDAS, repoConfig } from './helpers';
import { FerrotypeStack, FerrotypeStackProps } from '../lib/ferrotype-stack';

/** Synthesizes the stack with AWS Solutions checks, as bin/ferrotype.ts does; returns the outdir. */
function synthWithNag(props: Partial<FerrotypeStackProps>, tamper?: (stack: FerrotypeStack) => void): string {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-nag-'));
  const app = new App({ context: cdkJsonContext(), outdir });
  const stack = new FerrotypeStack(app, 'Ferrotype', { config: repoConfig(), lambdasDir: FIXTURE_LAMBDAS, ...props });
  tamper?.(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  return outdir;
}

/** Every violation in the validation report, as "<rule id> <construct path>". */
function violations(outdir: string): string[] {
  const reportPath = path.join(outdir, 'validation-report.json');
  if (!fs.existsSync(reportPath)) return [];
  const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
  const found: string[] = [];
  for (const plugin of report.pluginReports ?? []) {
    for (const violation of plugin.violations ?? []) {
      for (const resource of violation.violatingResources ?? violation.violatingConstructs ?? [{}]) {
        found.push(`${violation.ruleName} ${resource.constructPath ?? resource.resourceLogicalId ?? ''}`);
      }
    }
  }
  return found;
}

test.each<[string, Partial<FerrotypeStackProps>]>([
  ['the default stack', {}],
  ['CloudFront and an alarm e-mail', { cloudfront: true, alarmEmail: 'ops@example.com' }],
  [
    'a Rekognition profile',
    {
      config: configVariant((c) => {
        c.profiles.push({ ...c.profiles[0], name: 'people', prefix: 'people/', smartCrop: 'rekognition' });
      }),
    },
  ],
  ['imported buckets', { inputBucketName: 'photos-in', outputBucketName: 'photos-out' }],
  ['an Express pipeline logging errors only', { expressLogLevel: 'error' }],
  ['an existing alarm topic', { alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops-alarms' }],
  ['a Standard workflow, an inventory bucket and reserved render concurrency', { workflowType: 'standard', inventoryBucketName: 'photos-inventory', renderConcurrency: 300 }],
  // With an environment, CDK renders partition, region and account into ARNs; the finding ids change with them.
  ['a stack bound to an account and region', { env: { account: '123456789012', region: 'eu-west-1' }, inventoryBucketName: 'photos-inventory' }],
])('AWS Solutions checks pass for %s with every acknowledgement specific', (_name, props) => {
  const outdir = synthWithNag(props);
  expect(violations(outdir)).toEqual([]);
});

test('the checks do run: an unprotected bucket fails synth and lands in the report', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-nag-'));
  const app = new App({ context: cdkJsonContext(), outdir });
  const stack = new FerrotypeStack(app, 'Ferrotype', { config: repoConfig(), lambdasDir: FIXTURE_LAMBDAS });
  new s3.Bucket(stack, 'Careless');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  expect(() => app.synth()).toThrow();
  const report = fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8');
  expect(report).toContain('AwsSolutions-S1');
  expect(report).toContain('Ferrotype/Careless');
  expect(report).not.toContain('Ferrotype/InputBucket/');
});

test('acknowledgements name exact findings and give reasons', () => {
  const app = new App({ context: cdkJsonContext(), outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-nag-')) });
  const stack = new FerrotypeStack(app, 'Ferrotype', {
    config: repoConfig(),
    lambdasDir: FIXTURE_LAMBDAS,
    cloudfront: true,
    alarmEmail: 'ops@example.com',
  });
  const acknowledged: Array<{ id: string; reason: string }> = [];
  for (const construct of stack.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      // Recorded as { "<kind>::<rule id>": reason }.
      for (const [key, reason] of Object.entries(entry.data as Record<string, string>)) {
        acknowledged.push({ id: key.replace(/^[\w-]+::/, ''), reason });
      }
    }
  }
  expect(acknowledged.length).toBeGreaterThan(0);
  for (const ack of acknowledged) {
    // IAM5 covers many findings: it must always name one ("IAM5[Resource::…]"), never the bare rule.
    expect(ack.id).not.toMatch(/^AwsSolutions-IAM5$/);
    expect(ack.reason.length).toBeGreaterThan(40);
  }
  expect(acknowledged.map((ack) => ack.id)).toEqual(
    expect.arrayContaining([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::<InputBucket3BF8630A.Arn>/uploads/*]',
      'AwsSolutions-IAM5[Resource::<OutputBucket7114EB27.Arn>/variants/*]',
      'AwsSolutions-IAM5[Resource::<OutputBucket7114EB27.Arn>/manifests/*]',
    ]),
  );
});

/** Every acknowledgement declared in the stack: construct path and rule id. */
function declaredAcknowledgements(root: IConstruct): string[] {
  const found: string[] = [];
  for (const construct of root.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const key of Object.keys(entry.data as Record<string, string>)) found.push(`${construct.node.path} ${key.replace(/^[\w-]+::/, '')}`);
    }
  }
  return found;
}

test.each<[string, Partial<FerrotypeStackProps>]>([
  ['an Express stack with CloudFront and an alarm e-mail', { workflowType: 'express', cloudfront: true, alarmEmail: 'ops@example.com' }],
  ['a Standard stack with an inventory bucket and a Rekognition profile', {
    workflowType: 'standard',
    inventoryBucketName: 'photos-inventory',
    config: configVariant((c) => {
      c.profiles.push({ ...c.profiles[0], name: 'people', prefix: 'people/', smartCrop: 'rekognition' });
    }),
  }],
])('every acknowledgement of %s silences a finding the checks really raise (none is left over)', (_name, props) => {
  // Records which construct's acknowledgement answered each finding, as NagPack.isAcknowledged walks up.
  const used = new Set<string>();
  const original = (NagPack.prototype as any).isAcknowledged;
  (NagPack.prototype as any).isAcknowledged = function (resource: IConstruct, ruleId: string): boolean {
    let current: IConstruct | undefined = resource;
    while (current) {
      for (const entry of current.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        const ids = Object.keys(entry.data as Record<string, string>).map((key) => key.replace(/^[\w-]+::/, ''));
        if (ids.includes(ruleId)) {
          used.add(`${current.node.path} ${ruleId}`);
          return true;
        }
      }
      current = current.node.scope;
    }
    return false;
  };
  try {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-nag-'));
    const app = new App({ context: cdkJsonContext(), outdir });
    const stack = new FerrotypeStack(app, 'Ferrotype', { config: repoConfig(), lambdasDir: FIXTURE_LAMBDAS, ...props });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth();
    expect(violations(outdir)).toEqual([]);
    const declared = declaredAcknowledgements(stack).filter((ack) => / AwsSolutions-/.test(ack));
    expect(declared.length).toBeGreaterThan(10);
    expect(declared.filter((ack) => !used.has(ack))).toEqual([]);
  } finally {
    (NagPack.prototype as any).isAcknowledged = original;
  }
});
