import { Match } from 'aws-cdk-lib/assertions';
import { build, configVariant, repoConfig, logicalId, statementsOfRole, allowance, Built } from './helpers';
import { uploadPrefixes } from '../lib/config';
import { DEAD_LETTER_RETENTION, RULE_MAX_EVENT_AGE, RULE_RETRY_ATTEMPTS } from '../lib/ferrotype-stack';

/** A rule's only target must retry for 24 h, then hand the event to this encrypted dead-letter queue. */
function expectDeliveryGuarded(built: Built, ruleId: string, target: any, queue: any) {
  const { template, stack } = built;
  const queueId = logicalId(stack, queue);
  expect(target.RetryPolicy).toEqual({
    MaximumRetryAttempts: RULE_RETRY_ATTEMPTS,
    MaximumEventAgeInSeconds: RULE_MAX_EVENT_AGE.toSeconds(),
  });
  expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } });
  const queueProps = template.toJSON().Resources[queueId].Properties;
  expect(queueProps.SqsManagedSseEnabled).toBe(true);
  expect(queueProps.MessageRetentionPeriod).toBe(DEAD_LETTER_RETENTION.toSeconds());
  // EventBridge may send to it, from this rule only; nobody may use it without TLS.
  template.hasResourceProperties('AWS::SQS::QueuePolicy', {
    Queues: [{ Ref: queueId }],
    PolicyDocument: {
      Statement: [
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        Match.objectLike({
          Effect: 'Allow',
          Action: 'sqs:SendMessage',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } },
        }),
      ],
    },
  });
}

describe('upload rule', () => {
  const built = build();
  const { stack, template } = built;
  const rules = template.findResources('AWS::Events::Rule', {
    Properties: { EventPattern: { source: ['aws.s3'] } },
  });
  const [ruleId, rule] = Object.entries(rules)[0];

  test('is the only S3 rule: Object Created and Object Deleted on the input bucket under every profile prefix', () => {
    expect(Object.keys(rules)).toHaveLength(1);
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created', 'Object Deleted'],
      detail: {
        bucket: { name: [{ Ref: logicalId(stack, stack.inputBucket as any) }] },
        object: { key: uploadPrefixes(repoConfig()).map((prefix) => ({ prefix })) },
      },
    });
    expect(rule.Properties.State).toBe('ENABLED');
  });

  test('never matches the bucket the outputs go to', () => {
    const outputBucketId = logicalId(stack, stack.outputBucket as any);
    expect(outputBucketId).not.toBe(logicalId(stack, stack.inputBucket as any));
    expect(JSON.stringify(rule.Properties.EventPattern)).not.toContain(outputBucketId);
  });

  test('starts the state machine with the event as input, through a role that may only start it', () => {
    const machineId = logicalId(stack, stack.stateMachine);
    expect(rule.Properties.Targets).toHaveLength(1);
    const target = rule.Properties.Targets[0];
    expect(target.Arn).toEqual({ Ref: machineId });
    // No Input/InputPath/InputTransformer: the whole event is the execution input.
    expect(target.Input).toBeUndefined();
    expect(target.InputPath).toBeUndefined();
    expect(target.InputTransformer).toBeUndefined();
    const roleId = target.RoleArn['Fn::GetAtt'][0];
    expect(statementsOfRole(template, roleId).map(allowance)).toEqual([
      { actions: ['states:StartExecution'], resources: [{ Ref: machineId }] },
    ]);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'events.amazonaws.com' } })],
      },
    });
    expect(ruleId).toMatch(/^UploadRule/);
  });

  test('retries for 24 hours, then keeps the event 14 days in an encrypted dead-letter queue', () => {
    expectDeliveryGuarded(built, ruleId, rule.Properties.Targets[0], stack.uploadDeadLetters);
  });
});

describe('upload rule with several profiles', () => {
  test('has one prefix filter per profile, in file order', () => {
    const config = configVariant((c) => {
      c.profiles.push({ ...c.profiles[0], name: 'avatars', prefix: 'avatars/in/' });
    });
    const { template } = build({ config });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { detail: { object: { key: [{ prefix: 'uploads/' }, { prefix: 'avatars/in/' }] } } },
    });
  });
});

describe('upload rule on imported buckets', () => {
  test('names the given input bucket', () => {
    const { template } = build({ inputBucketName: 'photos-in', outputBucketName: 'photos-out' });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.s3'], detail: { bucket: { name: ['photos-in'] } } },
    });
  });

  test('refuses an output bucket equal to the input bucket', () => {
    expect(() => build({ inputBucketName: 'photos', outputBucketName: 'photos' })).toThrow(/must differ/);
  });
});

describe('execution status rule', () => {
  test('does not exist for Express workflows, which emit no status-change events', () => {
    const { stack, template } = build({ workflowType: 'express' });
    expect(stack.failureRule).toBeUndefined();
    expect(Object.keys(template.findResources('AWS::Events::Rule', { Properties: { EventPattern: { source: ['aws.states'] } } }))).toEqual([]);
    template.resourceCountIs('AWS::Lambda::Permission', 0);
    template.resourceCountIs('AWS::SQS::Queue', 1);
  });

  describe('of a Standard workflow', () => {
    const built = build({ workflowType: 'standard' });
    const { stack, template } = built;
    const rules = template.findResources('AWS::Events::Rule', {
      Properties: { EventPattern: { source: ['aws.states'] } },
    });
    const [ruleId, rule] = Object.entries(rules)[0];
    const recordResultId = logicalId(stack, stack.functions['record-result']);

    test('matches FAILED, TIMED_OUT and ABORTED executions of the pipeline only (not the backfill\'s copy)', () => {
      expect(Object.keys(rules)).toHaveLength(1);
      expect(rule.Properties.EventPattern).toEqual({
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: {
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          stateMachineArn: [{ Ref: logicalId(stack, stack.stateMachine) }],
        },
      });
    });

    test('invokes the record-result function with the event', () => {
      expect(rule.Properties.Targets).toHaveLength(1);
      expect(rule.Properties.Targets[0].Arn).toEqual({ 'Fn::GetAtt': [recordResultId, 'Arn'] });
      expect(rule.Properties.Targets[0].Input).toBeUndefined();
      expect(rule.Properties.Targets[0].InputTransformer).toBeUndefined();
    });

    test('retries for 24 hours, then keeps the event in its own encrypted dead-letter queue', () => {
      expectDeliveryGuarded(built, ruleId, rule.Properties.Targets[0], stack.failureDeadLetters!);
      expect(logicalId(stack, stack.failureDeadLetters!)).not.toBe(logicalId(stack, stack.uploadDeadLetters));
    });

    test('EventBridge may invoke exactly that function, from exactly this rule', () => {
      const permissions = Object.values(template.findResources('AWS::Lambda::Permission'));
      expect(permissions).toHaveLength(1);
      expect(permissions[0].Properties).toEqual({
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': [recordResultId, 'Arn'] },
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
      });
    });
  });
});
