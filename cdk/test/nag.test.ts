import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
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
  ['an existing alarm topic', { alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops-alarms' }],
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
