import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CDK_DIR, FIXTURE_LAMBDAS } from './helpers';

/** The real CLI, offline, exactly as `npm run synth` runs it: the app (bin/ferrotype.ts), cdk.json, and the cdk-nag plugin. */
function synth(context: string[]): { status: number | null; stderr: string; template: any; outdir: string } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-synth-'));
  const result = spawnSync(
    path.join(CDK_DIR, 'node_modules', '.bin', 'cdk'),
    ['synth', '--no-notices', '--quiet', '-c', `lambdasDir=${FIXTURE_LAMBDAS}`, ...context.flatMap((c) => ['-c', c]), '-o', outdir],
    {
      cwd: CDK_DIR,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: '1', CDK_DISABLE_VERSION_CHECK: '1' },
    },
  );
  const templatePath = path.join(outdir, 'Ferrotype.template.json');
  const template = fs.existsSync(templatePath) ? JSON.parse(fs.readFileSync(templatePath, 'utf8')) : undefined;
  return { status: result.status, stderr: `${result.stderr}`, template, outdir };
}

function typesOf(template: any): string[] {
  return Object.values(template.Resources).map((resource: any) => resource.Type);
}

test('`cdk synth` succeeds offline with the fixture Lambdas: an Express pipeline by default, and it warns that no alarm e-mail was given', () => {
  const { status, stderr, template, outdir } = synth([]);
  expect(stderr).not.toMatch(/ERROR|AwsSolutions-/);
  expect(stderr).toContain('No alarm e-mail or topic given');
  expect(status).toBe(0);
  const types = typesOf(template);
  expect(types.filter((type) => type === 'AWS::Lambda::Function')).toHaveLength(4);
  const machines = Object.values(template.Resources).filter((r: any) => r.Type === 'AWS::StepFunctions::StateMachine') as any[];
  expect(machines.map((m) => m.Properties.StateMachineType).sort()).toEqual(['EXPRESS', 'STANDARD']);
  const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
  expect(report.pluginReports).toEqual([]);
}, 300_000);

test('`cdk synth -c workflowType=standard -c alarmEmail=…` gives a Standard pipeline, its Express copy for backfills, and no warning', () => {
  const { status, stderr, template } = synth(['workflowType=standard', 'alarmEmail=ops@example.com']);
  expect(stderr).not.toMatch(/ERROR|AwsSolutions-|Warning/i);
  expect(status).toBe(0);
  const machines = Object.values(template.Resources).filter((r: any) => r.Type === 'AWS::StepFunctions::StateMachine') as any[];
  expect(machines.map((m) => m.Properties.StateMachineType).sort()).toEqual(['EXPRESS', 'STANDARD', 'STANDARD']);
  expect(template.Outputs.WorkflowType.Value).toBe('STANDARD');
}, 300_000);

test.each([
  ['workflowType=fast', /workflowType must be one of standard, express, got "fast"/],
  ['renderConcurrency=0', /renderConcurrency must be a positive integer, got "0"/],
  ['expressLogLevel=debug', /expressLogLevel must be one of all, error, got "debug"/],
])('`cdk synth -c %s` fails with a clear message', (context, message) => {
  const { status, stderr } = synth([context]);
  expect(status).not.toBe(0);
  expect(stderr).toMatch(message);
}, 300_000);
