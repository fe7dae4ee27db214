import * as fs from 'fs';
import { build, definitionAsset, DEFINITION_PATH, logicalId, machineProperties } from './helpers';
import { STAGES, SUBSTITUTION_OF, TIMEOUT_OF } from '../lib/ferrotype-stack';
import { DEFAULT_WORKFLOW_TYPE, placeholdersOf, substitutionsFor, UNCAUGHT_ERRORS } from '../lib/workflow';

const repoDefinition = fs.readFileSync(DEFINITION_PATH, 'utf8');

describe.each(['express', 'standard'] as const)('a %s pipeline', (workflowType) => {
  const built = build({ workflowType });
  const { stack, template } = built;
  const machineId = logicalId(stack, stack.stateMachine);
  const properties = machineProperties(built, stack.stateMachine);

  test(`is a ${workflowType.toUpperCase()} state machine, and the stack says so`, () => {
    expect(properties.StateMachineType).toBe(workflowType.toUpperCase());
    expect(template.toJSON().Outputs.WorkflowType.Value).toBe(workflowType.toUpperCase());
  });

  test('deploys the repository definition file unchanged', () => {
    expect(properties.DefinitionString).toBeUndefined();
    expect(definitionAsset(built, stack.stateMachine)).toBe(repoDefinition);
  });

  test('substitutes exactly the placeholders of the definition: the four function ARNs and what stays uncaught', () => {
    const placeholders = new Set([...repoDefinition.matchAll(/\$\{(\w+)\}/g)].map((match) => match[1]));
    expect(Object.keys(properties.DefinitionSubstitutions).sort()).toEqual([...placeholders].sort());
    for (const stage of STAGES) {
      expect(properties.DefinitionSubstitutions[SUBSTITUTION_OF[stage]]).toEqual({
        'Fn::GetAtt': [logicalId(stack, stack.functions[stage]), 'Arn'],
      });
    }
    if (placeholders.has('UncaughtErrors')) {
      expect(properties.DefinitionSubstitutions.UncaughtErrors).toBe(UNCAUGHT_ERRORS[workflowType]);
    }
  });

  test('logs to a vended log group that a failed first create does not leave behind: Express everything, Standard its errors', () => {
    // Express executions exist only in their logs; Step Functions keeps Standard histories itself.
    expect(properties.LoggingConfiguration.Level).toBe(workflowType === 'express' ? 'ALL' : 'ERROR');
    expect(properties.LoggingConfiguration.IncludeExecutionData).toBe(true);
    const destinations = properties.LoggingConfiguration.Destinations;
    expect(destinations).toHaveLength(1);
    const logGroupId = destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
    const logGroup = template.toJSON().Resources[logGroupId];
    expect(logGroup.Type).toBe('AWS::Logs::LogGroup');
    expect(logGroup.Properties.RetentionInDays).toBe(30);
    expect(logGroup.Properties.LogGroupName).toBe('/aws/vendedlogs/states/Ferrotype-pipeline');
    // RETAIN_ON_UPDATE_OR_DELETE: kept with its history, except when the stack's first create rolls back.
    expect(logGroup.DeletionPolicy).toBe('RetainExceptOnCreate');
    expect(template.toJSON().Outputs.StateMachineLogGroupName.Value).toEqual({ Ref: logGroupId });
  });

  test('no log group of the stack is plainly retained (a rollback of the first create would leave it)', () => {
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      expect((group as any).DeletionPolicy).toBe('RetainExceptOnCreate');
    }
  });

  test('traces with X-Ray', () => {
    expect(properties.TracingConfiguration).toEqual({ Enabled: true });
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
});

test(`the default workflow type is ${DEFAULT_WORKFLOW_TYPE}`, () => {
  const built = build();
  expect(machineProperties(built, built.stack.stateMachine).StateMachineType).toBe(DEFAULT_WORKFLOW_TYPE.toUpperCase());
});

test('Express catches every failure to record it inline; Standard leaves them uncaught for redrive', () => {
  expect(UNCAUGHT_ERRORS.express).toBe('States.ALL');
  // Standard's value must be an error nothing raises: not a States.* name, and no stage's error name.
  expect(UNCAUGHT_ERRORS.standard).not.toMatch(/^States\./);
  expect(repoDefinition).not.toContain(`"${UNCAUGHT_ERRORS.standard}"`);
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
  const { template } = build();
  for (const stage of STAGES) {
    const callers = Object.values(states).filter((state) => state.Resource === `\${${SUBSTITUTION_OF[stage]}}`);
    expect(callers.length).toBeGreaterThan(0);
    for (const caller of callers) {
      expect(caller.TimeoutSeconds).toBeDefined();
      expect(TIMEOUT_OF[stage].toSeconds()).toBeLessThan(caller.TimeoutSeconds);
    }
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: `Ferrotype ${stage} stage`,
      Timeout: TIMEOUT_OF[stage].toSeconds(),
    });
  }
});

describe('expressLogLevel', () => {
  const levelOf = (props: Parameters<typeof build>[0]) => {
    const built = build(props);
    return machineProperties(built, built.stack.stateMachine).LoggingConfiguration;
  };

  test('error: an Express pipeline logs its failures with their data, and nothing else', () => {
    expect(levelOf({ expressLogLevel: 'error' })).toMatchObject({ Level: 'ERROR', IncludeExecutionData: true });
    expect(levelOf({ expressLogLevel: 'all' })).toMatchObject({ Level: 'ALL', IncludeExecutionData: true });
    expect(levelOf({})).toMatchObject({ Level: 'ALL' });
  });

  test('does not change what a Standard pipeline logs (Step Functions keeps its history)', () => {
    expect(levelOf({ workflowType: 'standard', expressLogLevel: 'all' })).toMatchObject({ Level: 'ERROR' });
  });
});

describe('substitutions', () => {
  test('are taken for exactly the placeholders a file uses', () => {
    expect(placeholdersOf(DEFINITION_PATH)).toEqual(expect.arrayContaining(Object.values(SUBSTITUTION_OF)));
    const values: Record<string, string> = { UncaughtErrors: 'States.ALL', Unused: 'x' };
    for (const name of Object.values(SUBSTITUTION_OF)) values[name] = `arn:${name}`;
    const substitutions = substitutionsFor(DEFINITION_PATH, values);
    expect(substitutions.Unused).toBeUndefined();
    expect(Object.keys(substitutions).sort()).toEqual(placeholdersOf(DEFINITION_PATH).sort());
  });

  test('a placeholder the stack cannot fill fails synth, naming it', () => {
    expect(() => substitutionsFor(DEFINITION_PATH, {})).toThrow(/uses \$\{(UncaughtErrors|ValidateFunctionArn)\}, which the stack does not provide \(known: \)/);
  });
});
