import { Match } from 'aws-cdk-lib/assertions';
import { build, logicalId } from './helpers';
import { STAGES } from '../lib/ferrotype-stack';

describe('alarms without a topic', () => {
  const { stack, template } = build();
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties);
  const machineRef = { Ref: logicalId(stack, stack.stateMachine) };

  test('watch failed and timed-out executions of our state machine', () => {
    for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut']) {
      const matching = alarms.filter((a) => a.MetricName === metric);
      expect(matching).toHaveLength(1);
      expect(matching[0]).toMatchObject({
        Namespace: 'AWS/States',
        Dimensions: [{ Name: 'StateMachineArn', Value: machineRef }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
    }
  });

  test.each(STAGES)('watch the Errors of %s', (stage) => {
    const matching = alarms.filter(
      (a) =>
        a.MetricName === 'Errors' &&
        JSON.stringify(a.Dimensions) ===
          JSON.stringify([{ Name: 'FunctionName', Value: { Ref: logicalId(stack, stack.functions[stage]) } }]),
    );
    expect(matching).toHaveLength(1);
    expect(matching[0]).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Sum', Threshold: 1 });
  });

  test('are six, with no action and no topic', () => {
    expect(alarms).toHaveLength(6);
    for (const alarm of alarms) expect(alarm.AlarmActions).toBeUndefined();
    template.resourceCountIs('AWS::SNS::Topic', 0);
  });
});

describe('alarms with alarmEmail', () => {
  const { stack, template } = build({ alarmEmail: 'ops@example.com' });

  test('notify a new TLS-only topic with the address subscribed', () => {
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
