import * as fs from 'fs';
import jsonata from 'jsonata';
import { BACKFILL_DEFINITION_PATH, build, definitionAsset, logicalId, machineProperties, statementsOfPolicy } from './helpers';
import { BACKFILL_MAP_LABELS, BACKFILL_RESULTS_PREFIX } from '../lib/ferrotype-stack';

// asl-validator ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator: (definition: unknown) => { isValid: boolean; errors: unknown[] } = require('asl-validator');

const definitionText = fs.readFileSync(BACKFILL_DEFINITION_PATH, 'utf8');
const definition = JSON.parse(definitionText);
const listing = definition.States.BackfillFromListing;
const inventory = definition.States.BackfillFromInventory;

/** Evaluates one `{% … %}` field of the definition as Step Functions would, with `$states` bound. */
async function evaluate(field: string, states: object): Promise<any> {
  const match = /^\{%([\s\S]*)%\}$/.exec(field);
  if (match === null) throw new Error(`not a JSONata field: ${field}`);
  return jsonata(match[1]).evaluate({}, { states });
}

/** Every Task resource and ItemReader/ResultWriter resource the definition uses. */
function resourcesOf(states: Record<string, any>, found: Set<string> = new Set()): Set<string> {
  for (const state of Object.values(states)) {
    if (state.Resource) found.add(state.Resource);
    if (state.ItemReader) found.add(state.ItemReader.Resource);
    if (state.ResultWriter) found.add(state.ResultWriter.Resource);
    if (state.ItemProcessor) resourcesOf(state.ItemProcessor.States, found);
  }
  return found;
}

describe('statemachine/backfill.asl.json', () => {
  test('is a JSONata definition whose reading Maps are Distributed, with EXPRESS children', () => {
    expect(definition.QueryLanguage).toBe('JSONata');
    for (const map of [listing, inventory]) {
      expect(map.Type).toBe('Map');
      expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' });
      expect(map.ToleratedFailurePercentage).toBe(5);
      expect(map.ItemBatcher.MaxItemsPerBatch).toBe(10);
      expect(map.ResultWriter).toEqual({
        Resource: 'arn:aws:states:::s3:putObject',
        Arguments: { Bucket: '${ResultsBucket}', Prefix: '${ResultsPrefix}' },
      });
      expect(map.End).toBe(true);
    }
    expect(listing.ItemReader).toEqual({
      Resource: 'arn:aws:states:::s3:listObjectsV2',
      Arguments: { Bucket: '{% $states.input.bucket %}', Prefix: '{% $states.input.prefix %}' },
    });
    expect(inventory.ItemReader.Resource).toBe('arn:aws:states:::s3:getObject');
    expect(inventory.ItemReader.ReaderConfig).toEqual({ InputType: 'MANIFEST' });
    // The stack grants RedriveExecution on the Map Runs by these labels.
    expect([listing.Label, inventory.Label]).toEqual([...BACKFILL_MAP_LABELS]);
  });

  test('the two sources share one processor: the same states, names prefixed "Inventory" (names are unique in a definition)', () => {
    const prefixed = (processor: any): any => ({
      ...processor,
      StartAt: `Inventory${processor.StartAt}`,
      States: Object.fromEntries(
        Object.entries(processor.States as Record<string, any>).map(([name, state]) => {
          const renamed = { ...state };
          for (const field of ['Next', 'Default']) if (renamed[field]) renamed[field] = `Inventory${renamed[field]}`;
          if (renamed.Choices) renamed.Choices = renamed.Choices.map((c: any) => ({ ...c, Next: `Inventory${c.Next}` }));
          if (renamed.Catch) renamed.Catch = renamed.Catch.map((c: any) => ({ ...c, Next: `Inventory${c.Next}` }));
          if (renamed.ItemProcessor) renamed.ItemProcessor = prefixed(renamed.ItemProcessor);
          return [`Inventory${name}`, renamed];
        }),
      ),
    });
    expect(inventory.ItemProcessor).toEqual(prefixed(listing.ItemProcessor));
    expect(inventory.ItemBatcher).toEqual(listing.ItemBatcher);
    expect(inventory.MaxConcurrency).toEqual(listing.MaxConcurrency);
  });

  test('asl-validator accepts it (state names unique across the whole definition, JSONata fields well formed)', () => {
    const substituted = JSON.parse(definitionText.replace(/\$\{(\w+)\}/g, 'arn:aws:states:us-east-1:123456789012:stateMachine:$1'));
    const { isValid, errors } = aslValidator(substituted);
    expect(errors).toEqual([]);
    expect(isValid).toBe(true);
  });

  test('calls nothing but what the local executor answers too: listing, inventory, result writing, the Express pipeline', () => {
    expect([...resourcesOf(definition.States)].sort()).toEqual([
      'arn:aws:states:::aws-sdk:sfn:startSyncExecution',
      'arn:aws:states:::s3:getObject',
      'arn:aws:states:::s3:listObjectsV2',
      'arn:aws:states:::s3:putObject',
    ]);
    // The pipeline's own states are not repeated: no Lambda function is named here.
    expect(definitionText).not.toMatch(/FunctionArn|lambda:invoke/);
  });

  test('reads from an inventory manifest only when the input names one', async () => {
    const condition = definition.States.ReadFrom.Choices[0].Condition;
    expect(await evaluate(condition, { input: { bucket: 'in', prefix: 'uploads/' } })).toBe(false);
    expect(await evaluate(condition, { input: { bucket: 'in', prefix: 'uploads/', inventoryManifest: { bucket: 'inv', key: 'm.json' } } })).toBe(true);
    expect(definition.States.ReadFrom.Choices[0].Next).toBe('BackfillFromInventory');
    expect(definition.States.ReadFrom.Default).toBe('BackfillFromListing');
  });

  test('runs 30 batches at once unless the input says otherwise', async () => {
    expect(await evaluate(listing.MaxConcurrency, { input: { bucket: 'in' } })).toBe(30);
    expect(await evaluate(listing.MaxConcurrency, { input: { bucket: 'in', maxConcurrency: 5 } })).toBe(5);
  });

  // Keys as ListObjectsV2 gives them, and as S3 form-encodes them in events (crates/core event.rs
  // encode_key: A-Z a-z 0-9 - _ . ~ / stay, a space is '+', every other byte %XX in upper case).
  test.each([
    ['uploads/red flower.jpg', 'uploads/red+flower.jpg'],
    ['uploads/a+b.jpg', 'uploads/a%2Bb.jpg'],
    ['uploads/100%.png', 'uploads/100%25.png'],
    ["uploads/it's (1)!*~.jpg", 'uploads/it%27s+%281%29%21%2A~.jpg'],
    ['uploads/café/naïve 写真.jpeg', 'uploads/caf%C3%A9/na%C3%AFve+%E5%86%99%E7%9C%9F.jpeg'],
    ['uploads/a&b=c?d#e;f,g:h@i$j.jpg', 'uploads/a%26b%3Dc%3Fd%23e%3Bf%2Cg%3Ah%40i%24j.jpg'],
  ])('a listed key %j goes into the event as S3 encodes it: %j', async (key, encoded) => {
    const item = { Etag: '"9b2cf535f27731c974343645a3985328"', Key: key, LastModified: 1668699881, Size: 34910, StorageClass: 'STANDARD' };
    const states = { input: { bucket: 'ferrotype-input' }, context: { Map: { Item: { Index: 0, Value: item } } } };
    expect(await evaluate(listing.ItemSelector.key, states)).toBe(encoded);
    expect(await evaluate(listing.ItemSelector.size, states)).toBe(34910);
    expect(await evaluate(listing.ItemSelector.etag, states)).toBe('9b2cf535f27731c974343645a3985328');
  });

  test('an inventory row keeps its (already URL-encoded) key; size and ETag when the report has them', async () => {
    const row = { Bucket: 'ferrotype-input', Key: 'uploads/red%20flower.jpg', Size: '3399671', LastModifiedDate: '2022-11-16T00:29:32.000Z' };
    const states = (value: object) => ({ input: {}, context: { Map: { Item: { Index: 0, Value: value } } } });
    expect(await evaluate(inventory.ItemSelector.key, states(row))).toBe('uploads/red%20flower.jpg');
    expect(await evaluate(inventory.ItemSelector.size, states(row))).toBe(3399671);
    expect(await evaluate(inventory.ItemSelector.etag, states(row))).toBeNull();
    expect(await evaluate(inventory.ItemSelector.etag, states({ ...row, ETag: '"abc-2"' }))).toBe('abc-2');
  });

  describe('the child workflow', () => {
    const child = listing.ItemProcessor; // the inventory one is the same (see above)
    const batch = child.States.RunBatch;
    const perObject = batch.ItemProcessor.States;
    const childArn = 'arn:aws:states:eu-west-1:123456789012:express:FerrotypeBackfill/Listing:8c5b9f06-4e1f:0f6e3c2a';

    test('runs the batch\'s objects at once, each in its own inline iteration', () => {
      expect(child.StartAt).toBe('RunBatch');
      expect(batch.Type).toBe('Map');
      expect(batch.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'INLINE' });
      expect(batch.MaxConcurrency).toBe(listing.ItemBatcher.MaxItemsPerBatch);
    });

    test('starts the Express pipeline synchronously with the Object Created event the upload rule delivers', async () => {
      const task = perObject.RunPipeline;
      expect(task.Resource).toBe('arn:aws:states:::aws-sdk:sfn:startSyncExecution');
      expect(task.Arguments.StateMachineArn).toBe('${PipelineStateMachineArn}');
      const selected = await evaluate(batch.ItemSelector.object, {
        input: { Items: [], BatchInput: { bucket: 'ferrotype-input' } },
        context: { Map: { Item: { Index: 3, Value: { key: 'uploads/red+flower.jpg', size: 34910, etag: '9b2c' } } } },
      });
      const iteration = {
        object: selected,
        bucket: 'ferrotype-input',
        eventId: await evaluate(batch.ItemSelector.eventId, {
          input: { BatchInput: { bucket: 'ferrotype-input' } },
          context: { Execution: { Name: 'Listing-0f6e3c2a' }, Map: { Item: { Index: 3 } } },
        }),
      };
      const input = await evaluate(task.Arguments.Input, {
        input: iteration,
        context: { Execution: { Id: childArn, Name: 'Listing-0f6e3c2a', StartTime: '2026-11-28T10:00:00.000Z' } },
      });
      expect(typeof input).toBe('string');
      expect(JSON.parse(input)).toEqual({
        version: '0',
        id: 'Listing-0f6e3c2a-3',
        'detail-type': 'Object Created',
        source: 'aws.s3',
        account: '123456789012',
        time: '2026-11-28T10:00:00.000Z',
        region: 'eu-west-1',
        resources: ['arn:aws:s3:::ferrotype-input'],
        detail: {
          version: '0',
          bucket: { name: 'ferrotype-input' },
          // No version-id: a listing has none; validate asks S3 which version is current.
          object: { key: 'uploads/red+flower.jpg', size: 34910, etag: '9b2c' },
          reason: 'PutObject',
        },
      });
    });

    test('skips folder markers', async () => {
      const condition = perObject.IsFolder.Choices[0].Condition;
      expect(await evaluate(condition, { input: { object: { key: 'uploads/2024/' } } })).toBe(true);
      expect(await evaluate(condition, { input: { object: { key: 'uploads/2024/a.jpg' } } })).toBe(false);
      expect(perObject.IsFolder.Choices[0].Next).toBe('Folder');
    });

    test('records each object\'s outcome, and a StartSyncExecution that could not run is caught, not fatal to the batch', async () => {
      const task = perObject.RunPipeline;
      const output = async (result: object) => {
        const out: Record<string, unknown> = {};
        for (const [name, field] of Object.entries(task.Output as Record<string, string>)) {
          out[name] = await evaluate(field, { input: { object: { key: 'uploads/a.jpg' } }, result });
        }
        return out;
      };
      expect(await output({ Status: 'SUCCEEDED', ExecutionArn: 'arn:x', Output: '{}' })).toEqual({
        key: 'uploads/a.jpg',
        status: 'SUCCEEDED',
        executionArn: 'arn:x',
        error: null,
        cause: null,
      });
      expect(await output({ Status: 'FAILED', ExecutionArn: 'arn:y', Error: 'Lambda.Unknown', Cause: 'killed' })).toMatchObject({
        status: 'FAILED',
        error: 'Lambda.Unknown',
      });
      expect(task.Retry[0]).toMatchObject({ ErrorEquals: ['States.TaskFailed'], JitterStrategy: 'FULL' });
      expect(task.Catch[0].ErrorEquals).toEqual(['States.ALL']);
      expect(task.Catch[0].Output.status).toBe('NOT_STARTED');
      expect(await evaluate(task.Catch[0].Output.error, { input: {}, errorOutput: { Error: 'Sfn.StateMachineDoesNotExistException' } })).toBe(
        'Sfn.StateMachineDoesNotExistException',
      );
    });

    test('fails the batch (so the Map Run counts it) when any object failed, naming them; rejected and superseded uploads succeed', async () => {
      const condition = child.States.AllSucceeded.Choices[0].Condition;
      const ok = [
        { key: 'a', status: 'SUCCEEDED' },
        { key: 'b/', status: 'SKIPPED' },
      ];
      expect(await evaluate(condition, { input: ok })).toBe(true);
      for (const bad of ['FAILED', 'TIMED_OUT', 'NOT_STARTED']) {
        const results = [...ok, { key: 'c', status: bad, error: 'X' }];
        expect(await evaluate(condition, { input: results })).toBe(false);
        const cause = await evaluate(child.States.BatchFailed.Cause, { input: results });
        expect(JSON.parse(cause)).toEqual({ key: 'c', status: bad, error: 'X' });
      }
      expect(child.States.BatchFailed.Error).toBe('Ferrotype.BackfillFailed');
    });
  });
});

describe.each(['express', 'standard'] as const)('the backfill state machine of a %s stack', (workflowType) => {
  const built = build({ workflowType, inventoryBucketName: workflowType === 'standard' ? 'photos-inventory' : undefined });
  const { stack, template, resolve } = built;
  const properties = machineProperties(built, stack.backfill);
  const roleId = stack.resolve(stack.backfill.role.roleArn)['Fn::GetAtt'][0];

  test('is a Standard workflow (Distributed Map needs one) deploying the repository file unchanged', () => {
    expect(properties.StateMachineType).toBe('STANDARD');
    expect(definitionAsset(built, stack.backfill)).toBe(definitionText);
  });

  test('starts the Express pipeline: the main one when it is Express, else a second Express deployment of the same file', () => {
    expect(properties.DefinitionSubstitutions).toEqual({
      PipelineStateMachineArn: { Ref: logicalId(stack, stack.expressPipeline) },
      ResultsBucket: { Ref: logicalId(stack, stack.outputBucket as any) },
      ResultsPrefix: BACKFILL_RESULTS_PREFIX.replace(/\/$/, ''),
    });
    const pipeline = machineProperties(built, stack.expressPipeline);
    expect(pipeline.StateMachineType).toBe('EXPRESS');
    expect(pipeline.DefinitionSubstitutions.UncaughtErrors ?? 'States.ALL').toBe('States.ALL');
    if (workflowType === 'express') {
      expect(stack.expressPipeline).toBe(stack.stateMachine);
      template.resourceCountIs('AWS::StepFunctions::StateMachine', 2);
    } else {
      expect(stack.expressPipeline).not.toBe(stack.stateMachine);
      template.resourceCountIs('AWS::StepFunctions::StateMachine', 3);
      // Millions of executions per backfill: errors only.
      expect(pipeline.LoggingConfiguration.Level).toBe('ERROR');
    }
  });

  test('may list the profile prefixes of the input bucket, write its results, and start the Express pipeline', () => {
    const defaultPolicy = Object.keys(template.findResources('AWS::IAM::Policy')).find((id) => id.startsWith('BackfillRoleDefaultPolicy'))!;
    // The rest of the default policy is what CDK adds for logging and X-Ray (checked in iam.test.ts).
    const statements = statementsOfPolicy(template, defaultPolicy).filter((s) => s.Sid !== undefined);
    const expected: any[] = [
      {
        Sid: 'ListUploads',
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: resolve(stack.inputBucket.bucketArn),
        Condition: { StringLike: { 's3:prefix': ['uploads/*'] } },
      },
      {
        Sid: 'WriteResults',
        Effect: 'Allow',
        Action: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
        Resource: resolve(stack.outputBucket.arnForObjects('backfills/*')),
      },
      { Sid: 'RunPipeline', Effect: 'Allow', Action: 'states:StartSyncExecution', Resource: { Ref: logicalId(stack, stack.expressPipeline) } },
    ];
    if (workflowType === 'standard') {
      expected.push({
        Sid: 'ReadInventory',
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::photos-inventory/*']] },
      });
    }
    expect(statements).toEqual(expected);
    if (workflowType === 'express') expect(JSON.stringify(template.toJSON())).not.toContain('ReadInventory');
  });

  test('may start, describe, stop and redrive its own child executions (the Distributed Map), and nothing else\'s', () => {
    const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('BackfillChildExecutionsPolicy'));
    expect(policies).toHaveLength(1);
    const [policyId, policy] = policies[0];
    expect((policy as any).Properties.Roles).toEqual([{ Ref: roleId }]);
    const machineRef = { Ref: logicalId(stack, stack.backfill) };
    const executions = (suffix: string) => ({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':states:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          ':execution:',
          { 'Fn::Select': [6, { 'Fn::Split': [':', machineRef] }] },
          suffix,
        ],
      ],
    });
    expect(statementsOfPolicy(template, policyId)).toEqual([
      { Sid: 'StartChildren', Effect: 'Allow', Action: 'states:StartExecution', Resource: machineRef },
      { Sid: 'ManageChildren', Effect: 'Allow', Action: ['states:DescribeExecution', 'states:StopExecution'], Resource: executions(':*') },
      {
        Sid: 'RedriveMapRuns',
        Effect: 'Allow',
        Action: 'states:RedriveExecution',
        Resource: [executions(`/${listing.Label}:*`), executions(`/${inventory.Label}:*`)],
      },
    ]);
  });

  test('logs its errors (outcomes are in the Map Run and its results), traces, and its ARN is a stack output', () => {
    expect(properties.LoggingConfiguration.Level).toBe('ERROR');
    expect(properties.LoggingConfiguration.IncludeExecutionData).toBe(true);
    expect(properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(template.toJSON().Outputs.BackfillStateMachineArn.Value).toEqual({ Ref: logicalId(stack, stack.backfill) });
  });
});
