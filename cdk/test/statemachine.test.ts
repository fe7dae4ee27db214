import * as fs from 'fs';
import * as path from 'path';
import { build, DEFINITION_PATH, logicalId } from './helpers';
import { STAGES, SUBSTITUTION_OF, TIMEOUT_OF } from '../lib/ferrotype-stack';

const { app, stack, template } = build();
const machineId = logicalId(stack, stack.stateMachine);
const properties = template.toJSON().Resources[machineId].Properties;
const repoDefinition = fs.readFileSync(DEFINITION_PATH, 'utf8');

/** The definition asset as deployed: the file CDK copied into the cloud assembly. */
function definitionAsset(): string {
  const assembly = app.synth();
  const key: string = properties.DefinitionS3Location.Key;
  const manifest = JSON.parse(
    fs.readFileSync(path.join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8'),
  );
  const hash = key.replace(/\.json$/, '');
  const source = manifest.files[hash].source;
  expect(source.packaging).toBe('file');
  return fs.readFileSync(path.join(assembly.directory, source.path), 'utf8');
}

test('is a Standard state machine', () => {
  template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
  expect(properties.StateMachineType).toBe('STANDARD');
});

test('deploys the repository definition file unchanged', () => {
  expect(properties.DefinitionString).toBeUndefined();
  expect(definitionAsset()).toBe(repoDefinition);
});

test('substitutes exactly the placeholders of the definition with the four function ARNs', () => {
  const placeholders = new Set([...repoDefinition.matchAll(/\$\{(\w+)\}/g)].map((match) => match[1]));
  expect(Object.keys(properties.DefinitionSubstitutions).sort()).toEqual([...placeholders].sort());
  for (const stage of STAGES) {
    expect(properties.DefinitionSubstitutions[SUBSTITUTION_OF[stage]]).toEqual({
      'Fn::GetAtt': [logicalId(stack, stack.functions[stage]), 'Arn'],
    });
  }
});

test('logs everything, execution data included, to a log group with retention', () => {
  expect(properties.LoggingConfiguration.Level).toBe('ALL');
  expect(properties.LoggingConfiguration.IncludeExecutionData).toBe(true);
  const destinations = properties.LoggingConfiguration.Destinations;
  expect(destinations).toHaveLength(1);
  const logGroupId = destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
  const logGroup = template.toJSON().Resources[logGroupId];
  expect(logGroup.Type).toBe('AWS::Logs::LogGroup');
  expect(logGroup.Properties.RetentionInDays).toBe(30);
});

test('traces with X-Ray', () => {
  expect(properties.TracingConfiguration).toEqual({ Enabled: true });
});

test('every function times out before the Task states that call it', () => {
  const states: Record<string, any> = {};
  const collect = (machineStates: Record<string, any>) => {
    for (const [name, state] of Object.entries(machineStates)) {
      states[name] = state;
      if (state.ItemProcessor) collect(state.ItemProcessor.States);
      for (const branch of state.Branches ?? []) collect(branch.States);
    }
  };
  collect(JSON.parse(repoDefinition).States);
  for (const stage of STAGES) {
    const callers = Object.values(states).filter((state) => state.Resource === `\${${SUBSTITUTION_OF[stage]}}`);
    expect(callers.length).toBeGreaterThan(0);
    for (const caller of callers) {
      if (caller.TimeoutSeconds !== undefined) {
        expect(TIMEOUT_OF[stage].toSeconds()).toBeLessThan(caller.TimeoutSeconds);
      }
    }
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: `Ferrotype ${stage} stage`,
      Timeout: TIMEOUT_OF[stage].toSeconds(),
    });
  }
});

test('outputs the state machine ARN and its console URL', () => {
  const outputs = template.toJSON().Outputs;
  expect(outputs.StateMachineArn.Value).toEqual({ Ref: machineId });
  expect(outputs.StateMachineConsoleUrl.Value).toEqual({
    'Fn::Join': [
      '',
      [
        'https://',
        { Ref: 'AWS::Region' },
        '.console.aws.amazon.com/states/home?region=',
        { Ref: 'AWS::Region' },
        '#/statemachines/view/',
        { Ref: machineId },
      ],
    ],
  });
});
