import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations,
  Arn,
  ArnFormat,
  Aws,
  CfnOutput,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Token,
  Validations,
} from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as cxapi from 'aws-cdk-lib/cx-api';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
// cdk-nag's own renderer of a resource into a finding id (pinned version; not re-exported at the root).
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';
import { pascal, PipelineAlarms } from './alarms';
import { ConfigError, FerrotypeConfig, uploadPrefixes, usesRekognition, workPrefix } from './config';
import {
  decodingMemoryMiB,
  decodingPixels,
  DECODE_BYTES_PER_PIXEL,
  LAMBDA_MAX_MEMORY_MIB,
  memoryNeededMiB,
  workingCopyMemoryMiB,
} from './memory';
import { stateMachineType, substitutionsFor, UNCAUGHT_ERRORS, WorkflowType, DEFAULT_WORKFLOW_TYPE } from './workflow';

/** The four pipeline stages: crate name = asset folder name under `lambdasDir`. */
export const STAGES = ['validate', 'detect-faces', 'render-variant', 'record-result'] as const;
export type Stage = (typeof STAGES)[number];

/** The ASL `${…}` substitution that names each stage's function. */
export const SUBSTITUTION_OF: Record<Stage, string> = {
  validate: 'ValidateFunctionArn',
  'detect-faces': 'DetectFacesFunctionArn',
  'render-variant': 'RenderVariantFunctionArn',
  'record-result': 'RecordResultFunctionArn',
};

/**
 * Lambda timeouts. Each stays below the TimeoutSeconds of the ASL states that call it (Validate 120,
 * DetectFaces 60, RenderVariant 120, the record-result states 60; a test checks it), so Lambda stops a
 * slow invocation before its state gives up on it and it can never write after its execution moved on.
 */
export const TIMEOUT_OF: Record<Stage, Duration> = {
  validate: Duration.seconds(110),
  'detect-faces': Duration.seconds(50),
  'render-variant': Duration.seconds(110),
  'record-result': Duration.seconds(25),
};

/** record-result reads and writes small JSON objects. */
const RECORD_RESULT_MEMORY_MIB = 256;

/**
 * Lifecycle of what is not the final output. Replaced and deleted uploads stay 30 days: the pipeline
 * itself never needs an old version's bytes (an execution of a replaced version ends as superseded
 * after a HEAD), so the period is the owner's window to undo an overwrite or a deletion. Working
 * copies expire after 30 days: a Standard redrive may come 14 days after a failure of an execution that
 * ran up to an hour, and render-variant restores a missing copy only by decoding the source again.
 */
export const NONCURRENT_VERSION_DAYS = 30;
export const WORKING_COPY_DAYS = 30;
/** Backfill results (the Distributed Map's ResultWriter), read by the operator after a run. */
export const BACKFILL_RESULTS_DAYS = 90;
/** The Labels of the backfill's Distributed Maps (statemachine/backfill.asl.json): they name their Map Runs. */
export const BACKFILL_MAP_LABELS = ['Listing', 'Inventory'] as const;
/** Where the backfill's ResultWriter puts its manifests in the output bucket. */
export const BACKFILL_RESULTS_PREFIX = 'backfills/';

/**
 * EventBridge delivery: its maximum retry policy (185 attempts over 24 h) before an event goes to the
 * dead-letter queue, which keeps it 14 days (SQS's longest).
 */
export const RULE_RETRY_ATTEMPTS = 185;
export const RULE_MAX_EVENT_AGE = Duration.hours(24);
export const DEAD_LETTER_RETENTION = Duration.days(14);

const REPO_ROOT = path.join(__dirname, '..', '..');

export interface FerrotypeStackProps extends StackProps {
  /** The parsed ferrotype.json (see lib/config.ts `loadConfig`). */
  readonly config: FerrotypeConfig;
  /** Folder holding `<crate>/bootstrap` for each stage. Default: the repo's `target/lambda`. */
  readonly lambdasDir?: string;
  /** The pipeline's ASL definition file. Default: the repo's `statemachine/pipeline.asl.json`. */
  readonly definitionPath?: string;
  /** The backfill's ASL definition file. Default: the repo's `statemachine/backfill.asl.json`. */
  readonly backfillDefinitionPath?: string;
  /** Standard or Express pipeline (lib/workflow.ts). Default express. */
  readonly workflowType?: WorkflowType;
  /**
   * What an Express pipeline logs: 'all' (default; every execution with its data, so the console and
   * `ferrotype aws executions` show each one) or 'error' (failed executions only, with their data: about
   * a third of the Express path's cost at the default profile's payloads; bench/src/cost.rs).
   */
  readonly expressLogLevel?: ExpressLogLevel;
  /**
   * An existing input bucket to use instead of creating one. It must have EventBridge
   * notifications turned on (S3 console: Properties → Amazon EventBridge → On).
   */
  readonly inputBucketName?: string;
  /** An existing output bucket to use instead of creating one. Must differ from the input bucket. */
  readonly outputBucketName?: string;
  /** A bucket holding S3 Inventory reports of the input bucket, which a backfill may read instead of listing. */
  readonly inventoryBucketName?: string;
  /** Reserved concurrency of render-variant: its most concurrent invocations (cdk/README.md, "Bursts"). Default none. */
  readonly renderConcurrency?: number;
  /** Put a CloudFront distribution (Origin Access Control) in front of the variants. Default false. */
  readonly cloudfront?: boolean;
  /** Subscribe this address to a new alarm topic. */
  readonly alarmEmail?: string;
  /** Send alarms to this existing topic instead of a new one (`alarmEmail`, if given, is subscribed to it). */
  readonly alarmTopicArn?: string;
  /** Retention of every log group. Default one month. */
  readonly logRetention?: logs.RetentionDays;
  /** RUST_LOG of every function. Default "info". */
  readonly rustLog?: string;
}

export type ExpressLogLevel = 'all' | 'error';
export const EXPRESS_LOG_LEVELS: readonly ExpressLogLevel[] = ['all', 'error'];

export class FerrotypeStack extends Stack {
  readonly workflowType: WorkflowType;
  readonly inputBucket: s3.IBucket;
  readonly outputBucket: s3.IBucket;
  readonly logBucket?: s3.Bucket;
  readonly functions: Record<Stage, lambda.Function>;
  readonly stateMachine: sfn.StateMachine;
  readonly stateMachineLogs: logs.LogGroup;
  /** The Express pipeline the backfill starts: the main one when it is Express, else a second deployment. */
  readonly expressPipeline: sfn.StateMachine;
  readonly backfill: sfn.StateMachine;
  readonly uploadRule: events.Rule;
  readonly uploadDeadLetters: sqs.Queue;
  /** Standard only: Express workflows emit no status-change events. */
  readonly failureRule?: events.Rule;
  readonly failureDeadLetters?: sqs.Queue;
  readonly alarms: PipelineAlarms;
  readonly alarmTopic?: sns.ITopic;
  readonly distribution?: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: FerrotypeStackProps) {
    super(scope, id, props);
    // Log delivery by bucket policy is the only way that works with BucketOwnerEnforced (no ACLs);
    // set here so the stack does not depend on cdk.json carrying the flag.
    this.node.setContext(cxapi.S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, true);
    const config = props.config;
    this.workflowType = props.workflowType ?? DEFAULT_WORKFLOW_TYPE;
    const expressLogLevel = props.expressLogLevel ?? 'all';
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const lambdasDir = props.lambdasDir ?? path.join(REPO_ROOT, 'target', 'lambda');
    const definitionPath = props.definitionPath ?? path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json');
    const backfillDefinitionPath =
      props.backfillDefinitionPath ?? path.join(REPO_ROOT, 'statemachine', 'backfill.asl.json');
    if (props.inputBucketName !== undefined && props.inputBucketName === props.outputBucketName) {
      // Outputs written where the upload rule listens would trigger the pipeline again, forever.
      throw new Error('the output bucket must differ from the input bucket');
    }
    if (props.renderConcurrency !== undefined && !(Number.isSafeInteger(props.renderConcurrency) && props.renderConcurrency >= 1)) {
      throw new ConfigError(`renderConcurrency must be a positive integer, got ${props.renderConcurrency}`);
    }

    // ---- Buckets -------------------------------------------------------------------------------
    const createsBucket = props.inputBucketName === undefined || props.outputBucketName === undefined;
    if (createsBucket) {
      this.logBucket = new s3.Bucket(this, 'AccessLogBucket', {
        ...privateBucketProps(),
        lifecycleRules: [{ expiration: Duration.days(90) }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }

    if (props.inputBucketName !== undefined) {
      this.inputBucket = s3.Bucket.fromBucketName(this, 'InputBucket', props.inputBucketName);
    } else {
      const bucket = new s3.Bucket(this, 'InputBucket', {
        ...privateBucketProps(),
        // The event's version-id names the upload an execution works on (docs/CONTRACTS.md).
        versioned: true,
        serverAccessLogsBucket: this.logBucket,
        serverAccessLogsPrefix: 'input/',
        lifecycleRules: [
          { noncurrentVersionExpiration: Duration.days(NONCURRENT_VERSION_DAYS), expiredObjectDeleteMarker: true },
          { abortIncompleteMultipartUploadAfter: Duration.days(7) },
        ],
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // EventBridge delivery set natively in CloudFormation; `eventBridgeEnabled: true` would deploy a
      // custom-resource Lambda instead.
      (bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
        eventBridgeConfiguration: { eventBridgeEnabled: true },
      };
      this.inputBucket = bucket;
    }

    const outputs = {
      variants: config.outputs.variantsPrefix,
      manifests: config.outputs.manifestsPrefix,
      work: workPrefix(config),
    };
    for (const [name, prefix] of Object.entries(outputs)) {
      if (prefix.startsWith(BACKFILL_RESULTS_PREFIX) || BACKFILL_RESULTS_PREFIX.startsWith(prefix)) {
        throw new ConfigError(`outputs.${name}Prefix "${prefix}" overlaps ${BACKFILL_RESULTS_PREFIX}, where backfill results go`);
      }
    }
    if (props.outputBucketName !== undefined) {
      this.outputBucket = s3.Bucket.fromBucketName(this, 'OutputBucket', props.outputBucketName);
    } else {
      this.outputBucket = new s3.Bucket(this, 'OutputBucket', {
        ...privateBucketProps(),
        serverAccessLogsBucket: this.logBucket,
        serverAccessLogsPrefix: 'output/',
        lifecycleRules: [
          { prefix: outputs.work, expiration: Duration.days(WORKING_COPY_DAYS) },
          { prefix: BACKFILL_RESULTS_PREFIX, expiration: Duration.days(BACKFILL_RESULTS_DAYS) },
          { abortIncompleteMultipartUploadAfter: Duration.days(7) },
        ],
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }

    // ---- Functions -----------------------------------------------------------------------------
    const prefixes = uploadPrefixes(config);
    const uploads = prefixes.map((prefix) => this.inputBucket.arnForObjects(`${prefix}*`));
    const variants = this.outputBucket.arnForObjects(`${outputs.variants}*`);
    const manifests = this.outputBucket.arnForObjects(`${outputs.manifests}*`);
    const work = this.outputBucket.arnForObjects(`${outputs.work}*`);
    const allow = (sid: string, actions: string[], resources: string[]) => new iam.PolicyStatement({ sid, actions, resources });
    // Without ListBucket, S3 answers a HEAD or GET of a missing key with 403 instead of 404: a stage
    // could not tell a deleted upload (superseded) or a manifest not written yet from a denial.
    const tellMissingUploads = () => allow('TellMissingUploads', ['s3:ListBucket'], [this.inputBucket.bucketArn]);

    const environment = {
      FERROTYPE_CONFIG: JSON.stringify(config),
      OUTPUT_BUCKET: this.outputBucket.bucketName,
      RUST_LOG: props.rustLog ?? 'info',
    };
    checkEnvironmentSize(environment);
    const fn = (stage: Stage, memorySize: number, statements: iam.PolicyStatement[], reservedConcurrency?: number) =>
      this.pipelineFunction(stage, { lambdasDir, memorySize, environment, retention, statements, reservedConcurrency });

    const detectFacesStatements = [
      allow('ReadWorkingCopies', ['s3:GetObject'], [work]),
      // HEAD of the upload (is its version still current?): authorised by GetObject.
      allow('HeadUploads', ['s3:GetObject'], uploads),
      tellMissingUploads(),
    ];
    if (usesRekognition(config)) {
      // Added only when a profile asks for it: a builtin-only deployment cannot call Rekognition.
      detectFacesStatements.push(allow('DetectFaces', ['rekognition:DetectFaces'], ['*']));
    }
    const workingCopyMiB = workingCopyMemoryMiB(config);
    this.functions = {
      validate: fn('validate', decodingMemoryMiB(config), [
        // GetObjectVersion: reads pinned to the event's version id.
        allow('ReadUploads', ['s3:GetObject', 's3:GetObjectVersion'], uploads),
        tellMissingUploads(),
        allow('WriteWorkingCopies', ['s3:PutObject'], [work]),
      ]),
      'detect-faces': fn('detect-faces', workingCopyMiB, detectFacesStatements),
      'render-variant': fn(
        'render-variant',
        workingCopyMiB,
        [
          // PutObject on work/: a working copy gone before a late redrive is restored from the source.
          allow('ReadWriteWorkingCopies', ['s3:GetObject', 's3:PutObject'], [work]),
          allow('WriteVariants', ['s3:PutObject'], [variants]),
          allow('ReadUploads', ['s3:GetObject', 's3:GetObjectVersion'], uploads),
          tellMissingUploads(),
        ],
        props.renderConcurrency,
      ),
      'record-result': fn('record-result', RECORD_RESULT_MEMORY_MIB, [
        allow('ReadWriteManifests', ['s3:GetObject', 's3:PutObject'], [manifests]),
        // Retiring outputs uses conditional deletes (If-Match), which S3 authorises with GetObject too.
        allow('RetireOutputs', ['s3:GetObject', 's3:DeleteObject'], [variants, work]),
        allow('HeadUploads', ['s3:GetObject'], uploads),
        tellMissingUploads(),
        allow('TellMissingManifests', ['s3:ListBucket'], [this.outputBucket.bucketArn]),
      ]),
    };
    const neededMiB = memoryNeededMiB(decodingPixels(config), DECODE_BYTES_PER_PIXEL);
    if (neededMiB > LAMBDA_MAX_MEMORY_MIB) {
      Annotations.of(this.functions.validate).addWarningV2(
        'ferrotype:memory-clamped',
        `The largest profile's maxPixels needs about ${Math.ceil(neededMiB)} MiB to decode; Lambda stops at ` +
          `${LAMBDA_MAX_MEMORY_MIB} MiB, so the largest images may run out of memory. Lower limits.maxPixels.`,
      );
    }

    // ---- State machines ------------------------------------------------------------------------
    const functionArns: Record<string, string> = {};
    for (const stage of STAGES) functionArns[SUBSTITUTION_OF[stage]] = this.functions[stage].functionArn;
    this.stateMachineLogs = this.stateMachineLogGroup('StateMachineLogs', 'pipeline', retention);
    this.stateMachine = this.pipelineStateMachine('Pipeline', {
      type: this.workflowType,
      definitionPath,
      functionArns,
      // Express executions exist only in their logs (console, `ferrotype aws executions`, `rerun`): all of
      // it, with data. Step Functions keeps a Standard execution's history itself; its log holds errors.
      logs: {
        destination: this.stateMachineLogs,
        level: this.workflowType === 'express' && expressLogLevel === 'all' ? sfn.LogLevel.ALL : sfn.LogLevel.ERROR,
        includeExecutionData: true,
      },
    });
    if (this.workflowType === 'express' && expressLogLevel === 'error') {
      Validations.of(this.stateMachine).acknowledge({
        id: 'AwsSolutions-SF1',
        reason:
          'The operator chose expressLogLevel=error: failed executions are logged with their data (and can ' +
          'be rerun from it), successful ones leave their manifest in the output bucket instead of a log, ' +
          'which would be the largest part of the Express per-image cost (bench/src/cost.rs).',
      });
    }
    if (this.workflowType === 'standard') {
      Validations.of(this.stateMachine).acknowledge({
        id: 'AwsSolutions-SF1',
        reason:
          'Step Functions keeps the full history of every Standard execution for 90 days (console, ' +
          'GetExecutionHistory, ferrotype aws executions show); logging all of it again would double the ' +
          'per-image cost of logging (bench/src/cost.rs). Errors are logged with their data.',
      });
    }
    if (this.workflowType === 'express') {
      this.expressPipeline = this.stateMachine;
    } else {
      // The backfill needs an Express pipeline to start synchronously: the same definition again. It logs
      // errors only: a backfill runs it millions of times, and its failures are in the Map Run's results.
      this.expressPipeline = this.pipelineStateMachine('BackfillPipeline', {
        type: 'express',
        definitionPath,
        functionArns,
        logs: {
          destination: this.stateMachineLogGroup('BackfillPipelineLogs', 'backfill-pipeline', retention),
          level: sfn.LogLevel.ERROR,
          includeExecutionData: true,
        },
      });
      Validations.of(this.expressPipeline).acknowledge({
        id: 'AwsSolutions-SF1',
        reason:
          'This second, Express deployment of the pipeline serves backfills only, millions of executions each: it ' +
          'logs errors (with their data), and every outcome is in the Map Run results the backfill writes to S3.',
      });
    }
    this.backfill = this.backfillStateMachine(backfillDefinitionPath, {
      prefixes,
      inventoryBucketName: props.inventoryBucketName,
      logs: this.stateMachineLogGroup('BackfillLogs', 'backfill', retention),
    });

    // ---- Events --------------------------------------------------------------------------------
    this.uploadDeadLetters = this.deadLetterQueue('UploadDeadLetters');
    const startExecutionRole = new iam.Role(this, 'UploadRuleRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'Lets the upload rule start pipeline executions.',
    });
    this.uploadRule = new events.Rule(this, 'UploadRule', {
      description: 'Starts the pipeline for every object created or deleted under a profile prefix of the input bucket.',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created', 'Object Deleted'],
        detail: {
          bucket: { name: [this.inputBucket.bucketName] },
          object: { key: prefixes.map((prefix) => ({ prefix })) },
        },
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          role: startExecutionRole,
          retryAttempts: RULE_RETRY_ATTEMPTS,
          maxEventAge: RULE_MAX_EVENT_AGE,
          deadLetterQueue: this.uploadDeadLetters,
        }),
      ],
    });
    const rules = [{ name: 'Upload', rule: this.uploadRule, deadLetterQueue: this.uploadDeadLetters }];
    if (this.workflowType === 'standard') {
      // A Standard run that fails stays uncaught (for redrive); its FAILED event records the manifest.
      this.failureDeadLetters = this.deadLetterQueue('ExecutionFailedDeadLetters');
      this.failureRule = new events.Rule(this, 'ExecutionFailedRule', {
        description: 'Records a failed manifest when a pipeline execution fails, times out or is aborted.',
        eventPattern: {
          source: ['aws.states'],
          detailType: ['Step Functions Execution Status Change'],
          detail: {
            status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
            stateMachineArn: [this.stateMachine.stateMachineArn],
          },
        },
        targets: [
          new targets.LambdaFunction(this.functions['record-result'], {
            retryAttempts: RULE_RETRY_ATTEMPTS,
            maxEventAge: RULE_MAX_EVENT_AGE,
            deadLetterQueue: this.failureDeadLetters,
          }),
        ],
      });
      rules.push({ name: 'ExecutionFailed', rule: this.failureRule, deadLetterQueue: this.failureDeadLetters });
    }

    // ---- Alarms --------------------------------------------------------------------------------
    // One alarm topic: the given one, else a new one when an address is given.
    let alarmTopic: sns.ITopic | undefined =
      props.alarmTopicArn === undefined ? undefined : sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn);
    if (alarmTopic === undefined && props.alarmEmail !== undefined) {
      alarmTopic = new sns.Topic(this, 'AlarmTopic', { displayName: 'Ferrotype alarms', enforceSSL: true });
    }
    if (alarmTopic !== undefined && props.alarmEmail !== undefined) {
      alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.alarmTopic = alarmTopic;
    this.alarms = new PipelineAlarms(this, 'Alarms', {
      stateMachine: this.stateMachine,
      backfill: this.backfill,
      // detect-faces is left out: any failure of it falls back to the centre focus, by design.
      faultFunctions: (['validate', 'render-variant', 'record-result'] as const).map((stage) => ({
        stage,
        logGroup: this.functions[stage].logGroup,
      })),
      functions: STAGES.map((stage) => this.functions[stage]),
      rules,
      topic: alarmTopic,
    });

    // ---- CloudFront ----------------------------------------------------------------------------
    if (props.cloudfront === true) this.distribution = this.variantsDistribution(outputs.variants);

    // ---- Outputs -------------------------------------------------------------------------------
    new CfnOutput(this, 'InputBucketName', {
      value: this.inputBucket.bucketName,
      description: `Upload here under ${prefixes.join(', ')}`,
    });
    new CfnOutput(this, 'OutputBucketName', { value: this.outputBucket.bucketName });
    new CfnOutput(this, 'WorkflowType', { value: this.workflowType.toUpperCase() });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, 'StateMachineLogGroupName', { value: this.stateMachineLogs.logGroupName });
    new CfnOutput(this, 'StateMachineConsoleUrl', {
      value: Fn.join('', [
        `https://${Aws.REGION}.console.aws.amazon.com/states/home?region=${Aws.REGION}#/statemachines/view/`,
        this.stateMachine.stateMachineArn,
      ]),
    });
    new CfnOutput(this, 'BackfillStateMachineArn', { value: this.backfill.stateMachineArn });
    if (this.distribution !== undefined) {
      new CfnOutput(this, 'DistributionDomainName', { value: this.distribution.distributionDomainName });
    }
  }

  /**
   * A log group for a state machine, under /aws/vendedlogs/ (Step Functions then needs no entry in the
   * account's size-limited CloudWatch Logs resource policy). It keeps its name, so it is kept on update
   * and delete but removed when a first create rolls back: a failed first deploy leaves nothing that
   * would block the next one.
   */
  private stateMachineLogGroup(id: string, purpose: string, retention: logs.RetentionDays): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      logGroupName: `/aws/vendedlogs/states/${this.stackName}-${purpose}`,
      retention,
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
  }

  /** statemachine/pipeline.asl.json deployed as a `type` workflow, allowed to invoke exactly the four functions. */
  private pipelineStateMachine(
    id: string,
    opts: { type: WorkflowType; definitionPath: string; functionArns: Record<string, string>; logs: sfn.LogOptions },
  ): sfn.StateMachine {
    const machine = new sfn.StateMachine(this, id, {
      stateMachineType: stateMachineType(opts.type),
      definitionBody: sfn.DefinitionBody.fromFile(opts.definitionPath),
      definitionSubstitutions: substitutionsFor(opts.definitionPath, {
        ...opts.functionArns,
        UncaughtErrors: UNCAUGHT_ERRORS[opts.type],
      }),
      logs: opts.logs,
      tracingEnabled: true,
    });
    // The Task states live in a file CDK cannot see, and grantInvoke would add "<arn>:*" too.
    machine.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'InvokeStages',
        actions: ['lambda:InvokeFunction'],
        resources: STAGES.map((stage) => this.functions[stage].functionArn),
      }),
    );
    Validations.of(machine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Added by CDK for CloudWatch logging and X-Ray: the CloudWatch Logs delivery actions ' +
        '(logs:CreateLogDelivery etc.) and xray:PutTraceSegments/PutTelemetryRecords/GetSampling* only accept "*".',
    });
    return machine;
  }

  /**
   * statemachine/backfill.asl.json: a Standard workflow (Distributed Map needs one) whose EXPRESS child
   * workflows start the Express pipeline synchronously. CDK cannot see the states of a file, so the
   * permissions a Distributed Map needs are granted here, as CDK's own DistributedMap would.
   */
  private backfillStateMachine(
    definitionPath: string,
    opts: { prefixes: string[]; inventoryBucketName?: string; logs: logs.LogGroup },
  ): sfn.StateMachine {
    const machine = new sfn.StateMachine(this, 'Backfill', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(definitionPath),
      definitionSubstitutions: substitutionsFor(definitionPath, {
        PipelineStateMachineArn: this.expressPipeline.stateMachineArn,
        ResultsBucket: this.outputBucket.bucketName,
        ResultsPrefix: BACKFILL_RESULTS_PREFIX.replace(/\/$/, ''),
      }),
      // Its per-object outcomes are in the Map Run and the ResultWriter files; Step Functions keeps its history.
      logs: { destination: opts.logs, level: sfn.LogLevel.ERROR, includeExecutionData: true },
      tracingEnabled: true,
    });
    Validations.of(machine).acknowledge({
      id: 'AwsSolutions-SF1',
      reason:
        'A Standard workflow whose history Step Functions keeps for 90 days; every object it processed is in its ' +
        'Map Run (console) and in the ResultWriter files under backfills/. Logging all of its child executions ' +
        'would cost per object; errors are logged with their data.',
    });
    const results = this.outputBucket.arnForObjects(`${BACKFILL_RESULTS_PREFIX}*`);
    machine.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ListUploads',
        actions: ['s3:ListBucket'],
        resources: [this.inputBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': opts.prefixes.map((prefix) => `${prefix}*`) } },
      }),
    );
    machine.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'WriteResults',
        // What the ResultWriter uses (CDK's ResultWriter grants the same): multipart uploads of large results.
        actions: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
        resources: [results],
      }),
    );
    machine.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'RunPipeline',
        actions: ['states:StartSyncExecution'],
        resources: [this.expressPipeline.stateMachineArn],
      }),
    );
    if (opts.inventoryBucketName !== undefined) {
      const inventoryObjects = s3.Bucket.fromBucketName(this, 'InventoryBucket', opts.inventoryBucketName).arnForObjects('*');
      machine.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadInventory', actions: ['s3:GetObject'], resources: [inventoryObjects] }));
      Validations.of(machine.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(this.resolve(inventoryObjects))}]`,
        reason:
          'The S3 Inventory manifest and data files a backfill reads are named at run time (dated folders the ' +
          'inventory service creates); the bucket given in the inventoryBucketName context holds only those.',
      });
    }
    // A Distributed Map starts its child executions as the state machine itself, and stops, describes
    // and redrives them; referencing the machine's own ARN from its default policy would be circular.
    const name = Arn.split(machine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName as string;
    const executions = (suffix: string) =>
      this.formatArn({ service: 'states', resource: 'execution', resourceName: `${name}${suffix}`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const ownExecutions = executions(':*');
    const mapRunExecutions = BACKFILL_MAP_LABELS.map((label) => executions(`/${label}:*`));
    const childPolicy = new iam.Policy(this, 'BackfillChildExecutionsPolicy', {
      statements: [
        new iam.PolicyStatement({ sid: 'StartChildren', actions: ['states:StartExecution'], resources: [machine.stateMachineArn] }),
        new iam.PolicyStatement({
          sid: 'ManageChildren',
          actions: ['states:DescribeExecution', 'states:StopExecution'],
          resources: [ownExecutions],
        }),
        new iam.PolicyStatement({ sid: 'RedriveMapRuns', actions: ['states:RedriveExecution'], resources: mapRunExecutions }),
      ],
    });
    machine.role.attachInlinePolicy(childPolicy);
    const ack = (resource: string, what: string) => ({
      id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(this.resolve(resource))}]`,
      reason:
        `${what}: the Distributed Map's executions are created at run time and named by Step Functions; ` +
        'the ARNs are scoped to this state machine.',
    });
    Validations.of(childPolicy).acknowledge(
      ack(ownExecutions, 'DescribeExecution and StopExecution of its own executions'),
      ...mapRunExecutions.map((arn, i) => ack(arn, `RedriveExecution of the ${BACKFILL_MAP_LABELS[i]} Map Run's child executions`)),
    );
    Validations.of(machine.role).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Added by CDK for CloudWatch logging and X-Ray: the CloudWatch Logs delivery actions ' +
          '(logs:CreateLogDelivery etc.) and xray:PutTraceSegments/PutTelemetryRecords/GetSampling* only accept "*".',
      },
      {
        id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(this.resolve(results))}]`,
        reason: `The ResultWriter names its files at run time (<Map Run id>/manifest.json, SUCCEEDED_0.json…) under ${BACKFILL_RESULTS_PREFIX} only.`,
      },
    );
    return machine;
  }

  /** An encrypted dead-letter queue for an EventBridge target, kept 14 days (SQS's longest). */
  private deadLetterQueue(id: string): sqs.Queue {
    const queue = new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: DEAD_LETTER_RETENTION,
    });
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of an EventBridge target; an alarm watches its depth.',
    });
    return queue;
  }

  /**
   * CloudFront in front of the variants prefix only: Origin Access Control, and a bucket policy that
   * lets this distribution read `<variantsPrefix>*` and nothing else of the output bucket (manifests,
   * working copies and backfill results stay private). CDK's own OAC policy would grant the whole bucket,
   * so the origin is given an imported view of the bucket and the statement is written here.
   */
  private variantsDistribution(variantsPrefix: string): cloudfront.Distribution {
    const originBucket = s3.Bucket.fromBucketAttributes(this, 'VariantsOrigin', {
      bucketName: this.outputBucket.bucketName,
      bucketRegionalDomainName: this.outputBucket.bucketRegionalDomainName,
    });
    const distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Ferrotype variants',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(originBucket, {
          originPath: `/${variantsPrefix.replace(/^\/+|\/+$/g, '')}`,
        }),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
    });
    Annotations.of(distribution).acknowledgeWarning(
      '@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac',
      'The stack writes the bucket policy statement itself, limited to the variants prefix.',
    );
    this.outputBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudFrontReadsVariants',
        actions: ['s3:GetObject'],
        principals: [new iam.ServicePrincipal('cloudfront.amazonaws.com')],
        resources: [this.outputBucket.arnForObjects(`${variantsPrefix}*`)],
        conditions: {
          StringEquals: {
            'AWS:SourceArn': this.formatArn({ service: 'cloudfront', region: '', resource: 'distribution', resourceName: distribution.distributionId }),
          },
        },
      }),
    );
    Validations.of(distribution).acknowledge(
      {
        id: 'AwsSolutions-CFR1',
        reason: 'Variants are public images meant for every country; no geo restriction is wanted.',
      },
      {
        id: 'AwsSolutions-CFR2',
        reason: 'A read-only cache of static images with no origin logic; attach a WAF web ACL per deployment if needed.',
      },
      {
        id: 'AwsSolutions-CFR3',
        reason:
          'CloudFront standard logs need an ACL-enabled bucket, and every bucket here enforces bucket-owner ' +
          'ownership; request metrics are in CloudWatch.',
      },
      {
        id: 'AwsSolutions-CFR4',
        reason:
          'The default *.cloudfront.net certificate cannot be pinned to TLS 1.2; use a custom domain and ' +
          'certificate to enforce it.',
      },
    );
    return distribution;
  }

  /** One stage's function with its own role, log group and exactly the given permissions. */
  private pipelineFunction(
    stage: Stage,
    opts: {
      lambdasDir: string;
      memorySize: number;
      environment: Record<string, string>;
      retention: logs.RetentionDays;
      statements: iam.PolicyStatement[];
      reservedConcurrency?: number;
    },
  ): lambda.Function {
    const name = pascal(stage);
    const codeDir = path.join(opts.lambdasDir, stage);
    if (!fs.existsSync(path.join(codeDir, 'bootstrap'))) {
      throw new Error(
        `no ${path.join(codeDir, 'bootstrap')}: build the Lambdas first (\`cargo lambda build --release --arm64\` ` +
          'at the repo root) or point the lambdasDir context at a folder of <crate>/bootstrap builds',
      );
    }
    const logGroup = new logs.LogGroup(this, `${name}Logs`, {
      retention: opts.retention,
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
    const role = new iam.Role(this, `${name}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Ferrotype ${stage} function`,
    });
    // Instead of the AWSLambdaBasicExecutionRole managed policy, which may write to any log group.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    for (const statement of opts.statements) role.addToPolicy(statement);
    const fn = new lambda.Function(this, `${name}Function`, {
      description: `Ferrotype ${stage} stage`,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(codeDir),
      memorySize: opts.memorySize,
      timeout: TIMEOUT_OF[stage],
      environment: opts.environment,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      reservedConcurrentExecutions: opts.reservedConcurrency,
    });
    const starReasons = ['active X-Ray tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords'];
    if (opts.statements.some((statement) => statement.actions.includes('rekognition:DetectFaces'))) {
      starReasons.push('rekognition:DetectFaces has no resource type');
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: `Unscopable actions only: ${starReasons.join('; ')}; these accept only "*".`,
    });
    // Object ARNs end in "<prefix>*": the keys are only known at run time, the prefix bounds them.
    const acknowledged = new Set<string>();
    for (const statement of opts.statements) {
      for (const resource of statement.resources) {
        if (resource === '*' || !resource.includes('*')) continue;
        const id = `AwsSolutions-IAM5[Resource::${flattenCfnReference(this.resolve(resource))}]`;
        if (acknowledged.has(id)) continue;
        acknowledged.add(id);
        const uses = opts.statements.filter((s) => s.resources.includes(resource));
        Validations.of(role).acknowledge({
          id,
          reason:
            `${[...new Set(uses.flatMap((s) => s.actions))].join(', ')} on the objects under one key prefix only ` +
            `(statements ${uses.map((s) => s.sid).join(', ')}); object keys are only known at run time.`,
        });
      }
    }
    return fn;
  }
}

/** Lambda refuses environments over 4 KB (keys and values together), which fails only at deploy. */
export const LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096;
/** The longest an S3 bucket name (OUTPUT_BUCKET, unresolved at synth) can be. */
const MAX_BUCKET_NAME_BYTES = 63;

function checkEnvironmentSize(environment: Record<string, string>): void {
  let bytes = 0;
  for (const [key, value] of Object.entries(environment)) {
    const valueBytes = Token.isUnresolved(value) ? MAX_BUCKET_NAME_BYTES : Buffer.byteLength(value, 'utf8');
    bytes += Buffer.byteLength(key, 'utf8') + valueBytes;
  }
  if (bytes > LAMBDA_ENVIRONMENT_LIMIT_BYTES) {
    throw new ConfigError(
      `the Lambda environment would take ${bytes} bytes (FERROTYPE_CONFIG is the compact config), over ` +
        `Lambda's ${LAMBDA_ENVIRONMENT_LIMIT_BYTES}-byte limit: shorten or remove profiles or variants`,
    );
  }
}

/** Settings every bucket of the stack shares: private, TLS only, encrypted, owner-enforced. */
function privateBucketProps(): s3.BucketProps {
  return {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
  };
}
