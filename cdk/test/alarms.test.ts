import { Annotations, Match } from 'aws-cdk-lib/assertions';
import jsonata from 'jsonata';
import { build, logicalId, Built } from './helpers';
import { STAGES } from '../lib/ferrotype-stack';
import { SUSTAINED_THROTTLING_PERIODS } from '../lib/alarms';

/** The alarms of a built stack, by their construct id (e.g. "ExecutionsFailedAlarm"). */
function alarmsOf(built: Built): Record<string, any> {
  const found: Record<string, any> = {};
  for (const alarm of built.stack.alarms.alarms) {
    found[alarm.node.id] = built.template.toJSON().Resources[logicalId(built.stack, alarm)].Properties;
  }
  return found;
}

describe('alarms of an Express pipeline without a topic', () => {
  const built = build({ workflowType: 'express' });
  const { stack, template } = built;
  const alarms = alarmsOf(built);
  const machineRef = { Ref: logicalId(stack, stack.stateMachine) };

  test('are these ten, each with a description, and notify nobody', () => {
    expect(Object.keys(alarms).sort()).toEqual(
      [
        'BackfillFailedAlarm',
        'ExecutionThrottledAlarm',
        'ExecutionsFailedAlarm',
        'ExecutionsTimedOutAlarm',
        'LambdaThrottledAlarm',
        'RecordResultFaultsAlarm',
        'RenderVariantFaultsAlarm',
        'UploadDeadLettersAlarm',
        'UploadFailedInvocationsAlarm',
        'ValidateFaultsAlarm',
      ].sort(),
    );
    template.resourceCountIs('AWS::CloudWatch::Alarm', 10);
    for (const alarm of Object.values(alarms)) {
      expect(alarm.AlarmActions).toBeUndefined();
      expect(alarm.AlarmDescription.length).toBeGreaterThan(20);
      expect(alarm).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
    }
    template.resourceCountIs('AWS::SNS::Topic', 0);
  });

  test('synth warns that nobody is notified', () => {
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('No alarm e-mail or topic given'));
  });

  test('failed and timed-out executions of the pipeline page at once (rejections end SUCCEEDED, so they are faults)', () => {
    for (const [id, metric] of [
      ['ExecutionsFailedAlarm', 'ExecutionsFailed'],
      ['ExecutionsTimedOutAlarm', 'ExecutionsTimedOut'],
    ]) {
      expect(alarms[id]).toMatchObject({
        Namespace: 'AWS/States',
        MetricName: metric,
        Dimensions: [{ Name: 'StateMachineArn', Value: machineRef }],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
      });
    }
  });

  test('a failed backfill pages', () => {
    expect(alarms.BackfillFailedAlarm).toMatchObject({
      MetricName: 'ExecutionsFailed',
      Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: logicalId(stack, stack.backfill) } }],
    });
  });

  test('throttling pages only when it outlasts the throttling retrier (two 5-minute periods, more than its 7 minutes)', () => {
    // 12 retries (MaxAttempts counts retries), 1 s doubling, at most 60 s each: at most 423 s of waits.
    const waits = [...Array(12).keys()].map((n) => Math.min(60, 2 ** n)).reduce((a, b) => a + b, 0);
    expect(waits).toBe(423);
    expect(SUSTAINED_THROTTLING_PERIODS * 300).toBeGreaterThan(waits);
    expect(alarms.ExecutionThrottledAlarm).toMatchObject({
      Namespace: 'AWS/States',
      MetricName: 'ExecutionThrottled',
      Dimensions: [{ Name: 'StateMachineArn', Value: machineRef }],
      EvaluationPeriods: SUSTAINED_THROTTLING_PERIODS,
    });
    const lambda = alarms.LambdaThrottledAlarm;
    expect(lambda.EvaluationPeriods).toBe(SUSTAINED_THROTTLING_PERIODS);
    const expression = lambda.Metrics.find((m: any) => m.Expression);
    expect(expression.Expression).toBe('t0 + t1 + t2 + t3');
    const throttled = lambda.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric);
    expect(throttled).toEqual(
      STAGES.map((stage) => ({
        Namespace: 'AWS/Lambda',
        MetricName: 'Throttles',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(stack, stack.functions[stage]) } }],
      })),
    );
  });

  test('EventBridge failures and dead letters of the upload rule page', () => {
    expect(alarms.UploadFailedInvocationsAlarm).toMatchObject({
      Namespace: 'AWS/Events',
      MetricName: 'FailedInvocations',
      Dimensions: [{ Name: 'RuleName', Value: { Ref: logicalId(stack, stack.uploadRule) } }],
    });
    expect(alarms.UploadDeadLettersAlarm).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Statistic: 'Maximum',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack, stack.uploadDeadLetters), 'QueueName'] } }],
    });
  });

  describe('function faults', () => {
    const filters = Object.values(template.findResources('AWS::Logs::MetricFilter')).map((f: any) => f.Properties);

    test('are counted from the logs of validate, render-variant and record-result, not detect-faces (it falls back to the centre)', () => {
      expect(filters.map((f) => f.MetricTransformations[0].MetricName).sort()).toEqual(
        ['RecordResultFaults', 'RenderVariantFaults', 'ValidateFaults'],
      );
      for (const stage of ['validate', 'render-variant', 'record-result'] as const) {
        const name = { validate: 'Validate', 'render-variant': 'RenderVariant', 'record-result': 'RecordResult' }[stage];
        const filter = filters.find((f) => f.MetricTransformations[0].MetricName === `${name}Faults`);
        expect(filter.LogGroupName).toEqual({ Ref: logicalId(stack, (stack.functions[stage] as any).logGroup) });
        expect(filter.MetricTransformations[0]).toMatchObject({ MetricNamespace: 'Ferrotype', MetricValue: '1' });
        expect(alarms[`${name}FaultsAlarm`]).toMatchObject({ Namespace: 'Ferrotype', MetricName: `${name}Faults`, Statistic: 'Sum' });
      }
      // Lambda's Errors metric counts rejections (function errors named ImageRejected.*): no alarm uses it.
      expect(Object.values(alarms).some((a) => a.MetricName === 'Errors')).toBe(false);
    });

    test('match a fault logged at ERROR, not a rejection or a superseded version logged at WARN', async () => {
      // CloudWatch's JSON filter `{ $.level = "ERROR" }` is equality on one field; evaluated here on the
      // lines the functions write (crates/aws bootstrap: tracing-subscriber JSON).
      expect(filters[0].FilterPattern).toBe('{ $.level = "ERROR" }');
      const matches = (line: object) => jsonata('level = "ERROR"').evaluate(line);
      expect(await matches({ level: 'ERROR', fields: { error: 'Ferrotype.Transient', message: 'S3 answered 500' } })).toBe(true);
      expect(await matches({ level: 'WARN', fields: { error: 'ImageRejected.TooManyPixels', message: '120 MP' } })).toBe(false);
      expect(await matches({ level: 'WARN', fields: { error: 'Ferrotype.Superseded', message: 'replaced' } })).toBe(false);
      expect(await matches({ level: 'INFO', fields: { message: 'rendered' } })).toBe(false);
    });
  });
});

describe('alarms of a Standard pipeline', () => {
  const built = build({ workflowType: 'standard' });
  const alarms = alarmsOf(built);

  test('also watch the execution status rule that records failures, and its dead letters', () => {
    expect(Object.keys(alarms)).toHaveLength(12);
    expect(alarms.ExecutionFailedFailedInvocationsAlarm).toMatchObject({
      MetricName: 'FailedInvocations',
      Dimensions: [{ Name: 'RuleName', Value: { Ref: logicalId(built.stack, built.stack.failureRule!) } }],
    });
    expect(alarms.ExecutionFailedDeadLettersAlarm.MetricName).toBe('ApproximateNumberOfMessagesVisible');
  });
});

describe('alarms with alarmEmail', () => {
  const { stack, template } = build({ alarmEmail: 'ops@example.com' });

  test('notify a new TLS-only topic with the address subscribed, and synth does not warn', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    const topicId = logicalId(stack, stack.alarmTopic as any);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: topicId },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: topicId }] });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('No alarm e-mail'));
  });
});

describe('alarms with an existing topic', () => {
  const topicArn = 'arn:aws:sns:eu-west-1:123456789012:ops-alarms';

  test('notify that topic and create none', () => {
    const { template } = build({ alarmTopicArn: topicArn });
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: [topicArn] });
  });

  test('subscribe alarmEmail to that topic', () => {
    const { template } = build({ alarmTopicArn: topicArn, alarmEmail: 'ops@example.com' });
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: topicArn });
  });
});
