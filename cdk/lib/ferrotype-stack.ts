import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations,
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
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
// cdk-nag's own renderer of a resource into a finding id (pinned version; not re-exported at the root).
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';
import { ConfigError, FerrotypeConfig, largestMaxPixels, uploadPrefixes, usesRekognition } from './config';
import { decodeMemoryMiB, decodeMemoryNeededMiB, LAMBDA_MAX_MEMORY_MIB } from './memory';

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
 * Lambda timeouts. Each stays below the TimeoutSeconds of the ASL states that call it (60, 60, 120,
 * 30), so a slow function fails by its own timeout, which the ASL retries as it would any error.
 */
export const TIMEOUT_OF: Record<Stage, Duration> = {
  validate: Duration.seconds(50),
  'detect-faces': Duration.seconds(50),
  'render-variant': Duration.seconds(110),
  'record-result': Duration.seconds(25),
};

/** Validate reads headers only; record-result writes a small JSON object. */
const SMALL_STAGE_MEMORY_MIB = 256;

const REPO_ROOT = path.join(__dirname, '..', '..');

export interface FerrotypeStackProps extends StackProps {
  /** The parsed ferrotype.json (see lib/config.ts `loadConfig`). */
  readonly config: FerrotypeConfig;
  /** Folder holding `<crate>/bootstrap` for each stage. Default: the repo's `target/lambda`. */
  readonly lambdasDir?: string;
  /** The ASL definition file. Default: the repo's `statemachine/pipeline.asl.json`. */
  readonly definitionPath?: string;
  /**
   * An existing input bucket to use instead of creating one. It must have EventBridge
   * notifications turned on (S3 console: Properties → Amazon EventBridge → On).
   */
  readonly inputBucketName?: string;
  /** An existing output bucket to use instead of creating one. Must differ from the input bucket. */
  readonly outputBucketName?: string;
  /** Put a CloudFront distribution (Origin Access Control) in front of the output bucket. Default false. */
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

export class FerrotypeStack extends Stack {
  readonly inputBucket: s3.IBucket;
  readonly outputBucket: s3.IBucket;
  readonly logBucket?: s3.Bucket;
  readonly functions: Record<Stage, lambda.Function>;
  readonly stateMachine: sfn.StateMachine;
  readonly uploadRule: events.Rule;
  readonly failureRule: events.Rule;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly alarmTopic?: sns.ITopic;
  readonly distribution?: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: FerrotypeStackProps) {
    super(scope, id, props);
    // Log delivery by bucket policy is the only way that works with BucketOwnerEnforced (no ACLs);
    // set here so the stack does not depend on cdk.json carrying the flag.
    this.node.setContext(cxapi.S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, true);
    const config = props.config;
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const lambdasDir = props.lambdasDir ?? path.join(REPO_ROOT, 'target', 'lambda');
    const definitionPath = props.definitionPath ?? path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json');
    if (props.inputBucketName !== undefined && props.inputBucketName === props.outputBucketName) {
      // Outputs written where the upload rule listens would trigger the pipeline again, forever.
      throw new Error('the output bucket must differ from the input bucket');
    }

    // ---- Buckets -------------------------------------------------------------------------------
    const createsBucket = props.inputBucketName === undefined || props.outputBucketName === undefined;
    if (createsBucket) {
      this.logBucket = new s3.Bucket(this, 'AccessLogBucket', {
        ...privateBucketProps(),
        lifecycleRules: [{ expiration: Duration.days(90) }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
      Validations.of(this.logBucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'This is the server access log bucket; logging its own access would log recursively.',
      });
    }

    if (props.inputBucketName !== undefined) {
      this.inputBucket = s3.Bucket.fromBucketName(this, 'InputBucket', props.inputBucketName);
    } else {
      const bucket = new s3.Bucket(this, 'InputBucket', {
        ...privateBucketProps(),
        versioned: true,
        serverAccessLogsBucket: this.logBucket,
        serverAccessLogsPrefix: 'input/',
        lifecycleRules: [
          // Redrive within 14 days reads the version validate pinned; keep replaced versions longer.
          { noncurrentVersionExpiration: Duration.days(30) },
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

    if (props.outputBucketName !== undefined) {
      this.outputBucket = s3.Bucket.fromBucketName(this, 'OutputBucket', props.outputBucketName);
    } else {
      this.outputBucket = new s3.Bucket(this, 'OutputBucket', {
        ...privateBucketProps(),
        serverAccessLogsBucket: this.logBucket,
        serverAccessLogsPrefix: 'output/',
        lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(7) }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }

    // ---- Functions -----------------------------------------------------------------------------
    const prefixes = uploadPrefixes(config);
    const uploadObjectArns = prefixes.map((prefix) => this.inputBucket.arnForObjects(`${prefix}*`));
    const readUploads = new iam.PolicyStatement({
      sid: 'ReadUploads',
      actions: ['s3:GetObject', 's3:GetObjectVersion'],
      resources: uploadObjectArns,
    });
    const variantsArn = this.outputBucket.arnForObjects(`${config.outputs.variantsPrefix}*`);
    const manifestsArn = this.outputBucket.arnForObjects(`${config.outputs.manifestsPrefix}*`);

    const decodeMiB = decodeMemoryMiB(largestMaxPixels(config));
    const environment = {
      FERROTYPE_CONFIG: JSON.stringify(config),
      OUTPUT_BUCKET: this.outputBucket.bucketName,
      RUST_LOG: props.rustLog ?? 'info',
    };
    checkEnvironmentSize(environment);
    const fn = (stage: Stage, memorySize: number, statements: iam.PolicyStatement[]) =>
      this.pipelineFunction(stage, { lambdasDir, memorySize, environment, retention, statements });

    const detectFacesStatements = [readUploads];
    if (usesRekognition(config)) {
      // Added only when a profile asks for it: a builtin-only deployment cannot call Rekognition.
      detectFacesStatements.push(
        new iam.PolicyStatement({ sid: 'DetectFaces', actions: ['rekognition:DetectFaces'], resources: ['*'] }),
      );
    }
    this.functions = {
      validate: fn('validate', SMALL_STAGE_MEMORY_MIB, [
        readUploads,
        // Without ListBucket a missing key answers 403, not 404: validate needs the 404 to tell a
        // deleted upload (ImageRejected.SourceMissing) or a key to try undecoded from a real denial.
        new iam.PolicyStatement({
          sid: 'TellMissingKeys',
          actions: ['s3:ListBucket'],
          resources: [this.inputBucket.bucketArn],
        }),
      ]),
      // Both detectors decode the whole source (to find faces, or to send Rekognition a small JPEG).
      'detect-faces': fn('detect-faces', decodeMiB, detectFacesStatements),
      'render-variant': fn('render-variant', decodeMiB, [
        readUploads,
        new iam.PolicyStatement({ sid: 'WriteVariants', actions: ['s3:PutObject'], resources: [variantsArn] }),
      ]),
      'record-result': fn('record-result', SMALL_STAGE_MEMORY_MIB, [
        // It reads the stored manifest first, so a late-finishing older execution never replaces a newer one's.
        new iam.PolicyStatement({ sid: 'ReadWriteManifests', actions: ['s3:GetObject', 's3:PutObject'], resources: [manifestsArn] }),
        // As for validate: without ListBucket a manifest not written yet answers 403, not 404.
        new iam.PolicyStatement({
          sid: 'TellMissingManifests',
          actions: ['s3:ListBucket'],
          resources: [this.outputBucket.bucketArn],
        }),
      ]),
    };
    const neededMiB = decodeMemoryNeededMiB(largestMaxPixels(config));
    if (neededMiB > LAMBDA_MAX_MEMORY_MIB) {
      Annotations.of(this.functions['render-variant']).addWarningV2(
        'ferrotype:memory-clamped',
        `The largest profile's maxPixels needs about ${Math.ceil(neededMiB)} MiB to decode; Lambda stops at ` +
          `${LAMBDA_MAX_MEMORY_MIB} MiB, so the largest images may run out of memory. Lower limits.maxPixels.`,
      );
    }
    // ---- State machine -------------------------------------------------------------------------
    const stateMachineLogs = new logs.LogGroup(this, 'StateMachineLogs', {
      logGroupName: `/aws/vendedlogs/states/${this.stackName}-pipeline`,
      retention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const definitionSubstitutions: Record<string, string> = {};
    for (const stage of STAGES) definitionSubstitutions[SUBSTITUTION_OF[stage]] = this.functions[stage].functionArn;
    this.stateMachine = new sfn.StateMachine(this, 'Pipeline', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(definitionPath),
      definitionSubstitutions,
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    // The Task states live in a file CDK cannot see, and grantInvoke would add "<arn>:*" too.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'InvokeStages',
        actions: ['lambda:InvokeFunction'],
        resources: STAGES.map((stage) => this.functions[stage].functionArn),
      }),
    );
    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Added by CDK for logging level ALL and X-Ray: the CloudWatch Logs delivery actions ' +
        '(logs:CreateLogDelivery etc.) and xray:PutTraceSegments/PutTelemetryRecords/GetSampling* only accept "*".',
    });

    // ---- Events --------------------------------------------------------------------------------
    const startExecutionRole = new iam.Role(this, 'UploadRuleRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'Lets the upload rule start pipeline executions.',
    });
    this.uploadRule = new events.Rule(this, 'UploadRule', {
      description: 'Starts the pipeline for every object created under a profile prefix of the input bucket.',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [this.inputBucket.bucketName] },
          object: { key: prefixes.map((prefix) => ({ prefix })) },
        },
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          role: startExecutionRole,
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });
    // A run that ends without reaching RecordResult/RecordRejection still gets a 'failed' manifest.
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
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });

    // ---- Alarms --------------------------------------------------------------------------------
    // One alarm topic: the given one, else a new one when an address is given.
    let alarmTopic: sns.ITopic | undefined =
      props.alarmTopicArn === undefined ? undefined : sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn);
    if (alarmTopic === undefined && props.alarmEmail !== undefined) {
      const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'Ferrotype alarms', enforceSSL: true });
      Validations.of(topic).acknowledge({
        id: 'AwsSolutions-SNS2',
        reason:
          'Alarm notifications carry only alarm names and states. CloudWatch cannot publish to a topic ' +
          "encrypted with the AWS managed SNS key, and a customer key would be the stack's only KMS cost.",
      });
      alarmTopic = topic;
    }
    if (alarmTopic !== undefined && props.alarmEmail !== undefined) {
      alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.alarmTopic = alarmTopic;
    const alarmOn = (id: string, metric: cloudwatch.IMetric, description: string) => {
      const alarm = new cloudwatch.Alarm(this, id, {
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      if (alarmTopic !== undefined) alarm.addAlarmAction(new cloudwatchActions.SnsAction(alarmTopic));
      this.alarms.push(alarm);
    };
    const period = Duration.minutes(5);
    alarmOn(
      'ExecutionsFailedAlarm',
      this.stateMachine.metricFailed({ period, statistic: 'Sum' }),
      'A pipeline execution failed (rejected uploads also end in Fail: see the manifest status).',
    );
    alarmOn(
      'ExecutionsTimedOutAlarm',
      this.stateMachine.metricTimedOut({ period, statistic: 'Sum' }),
      'A pipeline execution timed out.',
    );
    for (const stage of STAGES) {
      alarmOn(
        `${pascal(stage)}ErrorsAlarm`,
        this.functions[stage].metricErrors({ period, statistic: 'Sum' }),
        `The ${stage} function returned errors.`,
      );
    }

    // ---- CloudFront ----------------------------------------------------------------------------
    if (props.cloudfront === true) {
      this.distribution = new cloudfront.Distribution(this, 'Distribution', {
        comment: 'Ferrotype variants',
        defaultBehavior: {
          origin: origins.S3BucketOrigin.withOriginAccessControl(this.outputBucket, {
            originPath: `/${config.outputs.variantsPrefix.replace(/^\/+|\/+$/g, '')}`,
          }),
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
          allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
          cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        },
        httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      });
      Validations.of(this.distribution).acknowledge(
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
    }

    // ---- Outputs -------------------------------------------------------------------------------
    new CfnOutput(this, 'InputBucketName', {
      value: this.inputBucket.bucketName,
      description: `Upload here under ${prefixes.join(', ')}`,
    });
    new CfnOutput(this, 'OutputBucketName', { value: this.outputBucket.bucketName });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, 'StateMachineConsoleUrl', {
      value: Fn.join('', [
        `https://${Aws.REGION}.console.aws.amazon.com/states/home?region=${Aws.REGION}#/statemachines/view/`,
        this.stateMachine.stateMachineArn,
      ]),
    });
    if (this.distribution !== undefined) {
      new CfnOutput(this, 'DistributionDomainName', { value: this.distribution.distributionDomainName });
    }
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
      removalPolicy: RemovalPolicy.RETAIN,
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
    for (const statement of opts.statements) {
      for (const resource of statement.resources) {
        if (resource === '*' || !resource.includes('*')) continue;
        Validations.of(role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(this.resolve(resource))}]`,
          reason: `${statement.actions.join(', ')} on the objects under one key prefix only (statement ${statement.sid}); object keys are only known at run time.`,
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

function pascal(stage: string): string {
  return stage
    .split('-')
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}
