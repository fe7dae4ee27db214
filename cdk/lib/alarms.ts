import { Annotations, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The namespace of the metrics the stack derives from the functions' logs. */
export const METRIC_NAMESPACE = 'Ferrotype';

/**
 * What a function logs for a fault (crates/aws bootstrap: JSON lines, `level` first): a failure that is
 * the pipeline's problem, at ERROR. A rejection (`ImageRejected.*`, the uploader's mistake) and S3
 * throttling (`Ferrotype.Throttled`, waited out by the throttling retrier, alarmed on below) are logged at
 * WARN, a superseded version (`Ferrotype.Superseded`, losing a race by design) at INFO: none matches.
 */
export const FAULT_LOG_PATTERN = logs.FilterPattern.stringValue('$.level', '=', 'ERROR');

const PERIOD = Duration.minutes(5);

/**
 * Throttling pages only when it outlasts what the throttling retrier bridges: 12 retries, 1 s doubling
 * to at most 60 s, full jitter, wait at most 423 s (7 min) in all. Two consecutive 5-minute periods with
 * throttles mean executions are about to exhaust it.
 */
export const SUSTAINED_THROTTLING_PERIODS = 2;

export interface PipelineAlarmsProps {
  readonly stateMachine: sfn.IStateMachine;
  readonly backfill: sfn.IStateMachine;
  /** Functions whose faults page, with the log group their metric filter reads. */
  readonly faultFunctions: ReadonlyArray<{ readonly stage: string; readonly logGroup: logs.ILogGroup }>;
  /** Every pipeline function: their throttles page when sustained. */
  readonly functions: ReadonlyArray<lambda.IFunction>;
  readonly rules: ReadonlyArray<{ readonly name: string; readonly rule: events.IRule; readonly deadLetterQueue: sqs.IQueue }>;
  /** Where alarms go; undefined: alarms are created without an action, and synth warns. */
  readonly topic?: sns.ITopic;
}

/**
 * Alarms that page on faults only: an uploader's mistake (a rejection), a lost race (superseded), a face
 * detection that fell back to the centre, and a burst the retriers absorb are all expected and silent.
 */
export class PipelineAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: PipelineAlarmsProps) {
    super(scope, id);
    if (props.topic === undefined) {
      Annotations.of(this).addWarningV2(
        'ferrotype:no-alarm-destination',
        'No alarm e-mail or topic given: the alarms exist but notify nobody. Pass -c alarmEmail=you@example.com ' +
          '(or -c alarmTopicArn=arn:aws:sns:…).',
      );
    }
    const machine = (metricName: string, stateMachine: sfn.IStateMachine) =>
      new cloudwatch.Metric({
        namespace: 'AWS/States',
        metricName,
        dimensionsMap: { StateMachineArn: stateMachine.stateMachineArn },
        statistic: 'Sum',
        period: PERIOD,
      });

    // A rejected or superseded upload ends SUCCEEDED: a failed execution is a fault.
    this.alarm('ExecutionsFailed', machine('ExecutionsFailed', props.stateMachine), props.topic, {
      description: 'A pipeline execution failed (a fault: rejected uploads end SUCCEEDED with a rejected manifest).',
    });
    this.alarm('ExecutionsTimedOut', machine('ExecutionsTimedOut', props.stateMachine), props.topic, {
      description: 'A pipeline execution timed out (its top-level TimeoutSeconds, or Express\'s 5 minutes).',
    });
    this.alarm('ExecutionThrottled', machine('ExecutionThrottled', props.stateMachine), props.topic, {
      description: 'Step Functions throttled state transitions of the pipeline for 10 minutes or more.',
      evaluationPeriods: SUSTAINED_THROTTLING_PERIODS,
    });
    this.alarm('BackfillFailed', machine('ExecutionsFailed', props.backfill), props.topic, {
      description: 'A backfill failed: more than its tolerated share of objects failed (see its Map Run results).',
    });

    for (const { stage, logGroup } of props.faultFunctions) {
      const name = pascal(stage);
      const filter = new logs.MetricFilter(this, `${name}FaultsFilter`, {
        logGroup,
        filterPattern: FAULT_LOG_PATTERN,
        metricNamespace: METRIC_NAMESPACE,
        metricName: `${name}Faults`,
        metricValue: '1',
      });
      this.alarm(`${name}Faults`, filter.metric({ statistic: 'Sum', period: PERIOD }), props.topic, {
        description: `The ${stage} function failed with a fault (logged at ERROR; rejections, throttling and superseded versions are not faults).`,
      });
    }

    const throttles: Record<string, cloudwatch.IMetric> = {};
    props.functions.forEach((fn, i) => {
      throttles[`t${i}`] = fn.metricThrottles({ statistic: 'Sum', period: PERIOD });
    });
    this.alarm(
      'LambdaThrottled',
      new cloudwatch.MathExpression({
        expression: Object.keys(throttles).join(' + '),
        usingMetrics: throttles,
        period: PERIOD,
        label: 'Throttles of the pipeline functions',
      }),
      props.topic,
      {
        description:
          'Lambda throttled the pipeline functions for 10 minutes or more: the burst outlasts the ASL throttling ' +
          'retrier (about 7 minutes). Raise the account concurrency or slow the uploads.',
        evaluationPeriods: SUSTAINED_THROTTLING_PERIODS,
      },
    );

    for (const { name, rule, deadLetterQueue } of props.rules) {
      this.alarm(
        `${name}FailedInvocations`,
        new cloudwatch.Metric({
          namespace: 'AWS/Events',
          metricName: 'FailedInvocations',
          dimensionsMap: { RuleName: rule.ruleName },
          statistic: 'Sum',
          period: PERIOD,
        }),
        props.topic,
        { description: `EventBridge could not deliver events of the ${name} rule after its retries (they are in its dead-letter queue).` },
      );
      this.alarm(
        `${name}DeadLetters`,
        deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: PERIOD }),
        props.topic,
        { description: `Events of the ${name} rule wait in its dead-letter queue: replay them, or run ferrotype aws reconcile.` },
      );
    }
  }

  private alarm(
    id: string,
    metric: cloudwatch.IMetric,
    topic: sns.ITopic | undefined,
    options: { description: string; evaluationPeriods?: number },
  ): void {
    const alarm = new cloudwatch.Alarm(this, `${id}Alarm`, {
      metric,
      threshold: 1,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    if (topic !== undefined) alarm.addAlarmAction(new cloudwatchActions.SnsAction(topic));
    this.alarms.push(alarm);
  }
}

/** `record-result` → `RecordResult`. */
export function pascal(name: string): string {
  return name
    .split('-')
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}
