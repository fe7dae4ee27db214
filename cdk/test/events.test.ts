import { Match } from 'aws-cdk-lib/assertions';
import { build, configVariant, repoConfig, logicalId, statementsOfRole, allowance } from './helpers';
import { uploadPrefixes } from '../lib/config';

describe('upload rule', () => {
  const { stack, template } = build();
  const rules = template.findResources('AWS::Events::Rule', {
    Properties: { EventPattern: { source: ['aws.s3'] } },
  });
  const [ruleId, rule] = Object.entries(rules)[0];

  test('is the only S3 rule and listens for Object Created on the input bucket under every profile prefix', () => {
    expect(Object.keys(rules)).toHaveLength(1);
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
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

describe('execution failure rule', () => {
  const { stack, template } = build();
  const rules = template.findResources('AWS::Events::Rule', {
    Properties: { EventPattern: { source: ['aws.states'] } },
  });
  const [ruleId, rule] = Object.entries(rules)[0];
  const recordResultId = logicalId(stack, stack.functions['record-result']);

  test('matches FAILED, TIMED_OUT and ABORTED executions of our state machine only', () => {
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
