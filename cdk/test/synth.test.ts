import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CDK_DIR, FIXTURE_LAMBDAS } from './helpers';

// The real CLI, offline, exactly as `npm run synth` runs it: the app (bin/ferrotype.ts), cdk.json,
// and the cdk-nag validation plugin together.
test('`cdk synth` succeeds offline with the fixture Lambdas', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-synth-'));
  const result = spawnSync(
    path.join(CDK_DIR, 'node_modules', '.bin', 'cdk'),
    ['synth', '--no-notices', '--quiet', '-c', `lambdasDir=${FIXTURE_LAMBDAS}`, '-o', outdir],
    {
      cwd: CDK_DIR,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: '1', CDK_DISABLE_VERSION_CHECK: '1' },
    },
  );
  expect(`${result.stderr}`).not.toMatch(/ERROR|AwsSolutions-/);
  expect(result.status).toBe(0);
  const template = JSON.parse(fs.readFileSync(path.join(outdir, 'Ferrotype.template.json'), 'utf8'));
  const types = Object.values(template.Resources).map((resource: any) => resource.Type);
  expect(types.filter((type) => type === 'AWS::Lambda::Function')).toHaveLength(4);
  expect(types.filter((type) => type === 'AWS::StepFunctions::StateMachine')).toHaveLength(1);
  const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
  expect(report.pluginReports).toEqual([]);
}, 300_000);
