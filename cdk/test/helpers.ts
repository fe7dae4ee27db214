import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Template } from 'aws-cdk-lib/assertions';
import { FerrotypeConfig, loadConfig } from '../lib/config';
import { FerrotypeStack, FerrotypeStackProps } from '../lib/ferrotype-stack';

export const CDK_DIR = path.join(__dirname, '..');
export const REPO_ROOT = path.join(CDK_DIR, '..');
export const CONFIG_PATH = path.join(REPO_ROOT, 'ferrotype.json');
export const DEFINITION_PATH = path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json');
export const BACKFILL_DEFINITION_PATH = path.join(REPO_ROOT, 'statemachine', 'backfill.asl.json');
export const FIXTURE_LAMBDAS = path.join(__dirname, 'fixtures', 'lambda');

/** The repo's ferrotype.json, parsed. */
export function repoConfig(): FerrotypeConfig {
  return loadConfig(CONFIG_PATH);
}

/** The repo config with changes applied to a deep copy. */
export function configVariant(change: (config: any) => void): FerrotypeConfig {
  const copy = JSON.parse(fs.readFileSync(CONFIG_PATH, 'utf8'));
  change(copy);
  return copy;
}

/** The feature flags of cdk.json, so tests build the app exactly as `cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(CDK_DIR, 'cdk.json'), 'utf8')).context;
}

export interface Built {
  readonly app: App;
  readonly stack: FerrotypeStack;
  readonly template: Template;
  /** stack.resolve: an expression as it appears in the template. */
  readonly resolve: (value: unknown) => any;
}

/** Builds the stack against the fixture Lambdas into a fresh temporary cloud assembly. */
export function build(props: Partial<FerrotypeStackProps> = {}, configure?: (app: App) => void): Built {
  const app = new App({ context: cdkJsonContext(), outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotype-cdk-')) });
  configure?.(app);
  const stack = new FerrotypeStack(app, 'Ferrotype', {
    config: repoConfig(),
    lambdasDir: FIXTURE_LAMBDAS,
    ...props,
  });
  return { app, stack, template: Template.fromStack(stack), resolve: (value) => Stack.of(stack).resolve(value) };
}

/** The logical id CloudFormation gives a construct's default resource. */
export function logicalId(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.resolve((stack as any).getLogicalId(construct.node.defaultChild));
}

/** All statements of the policies attached to the role with this logical id. */
export function statementsOfRole(template: Template, roleLogicalId: string): any[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const statements: any[] = [];
  for (const policy of Object.values(policies)) {
    const roles: any[] = policy.Properties.Roles ?? [];
    if (roles.some((role) => role.Ref === roleLogicalId)) statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  return statements;
}

/** A statement reduced to what it allows, with Action and Resource always arrays. */
export function allowance(statement: any): { actions: string[]; resources: unknown[] } {
  const list = (value: unknown) => (Array.isArray(value) ? value : [value]);
  expect(statement.Effect).toBe('Allow');
  expect(statement.Condition).toBeUndefined();
  return { actions: list(statement.Action), resources: list(statement.Resource) };
}

/** A state machine's template properties. */
export function machineProperties(built: Built, machine: sfn.StateMachine): any {
  return built.template.toJSON().Resources[logicalId(built.stack, machine)].Properties;
}

/** A state machine's definition as deployed: the file CDK copied into the cloud assembly. */
export function definitionAsset(built: Built, machine: sfn.StateMachine): string {
  const assembly = built.app.synth();
  const key: string = machineProperties(built, machine).DefinitionS3Location.Key;
  const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${built.stack.artifactId}.assets.json`), 'utf8'));
  const source = manifest.files[key.replace(/\.json$/, '')].source;
  expect(source.packaging).toBe('file');
  return fs.readFileSync(path.join(assembly.directory, source.path), 'utf8');
}

/** The statements of one IAM::Policy resource (by logical id). */
export function statementsOfPolicy(template: Template, policyLogicalId: string): any[] {
  return template.toJSON().Resources[policyLogicalId].Properties.PolicyDocument.Statement;
}
