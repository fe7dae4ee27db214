import { Match } from 'aws-cdk-lib/assertions';
import { build, configVariant, logicalId } from './helpers';
import { NONCURRENT_VERSION_DAYS, WORKING_COPY_DAYS } from '../lib/ferrotype-stack';

describe('created buckets', () => {
  const { stack, template } = build();
  const resources = template.toJSON().Resources;
  const inputId = logicalId(stack, stack.inputBucket as any);
  const outputId = logicalId(stack, stack.outputBucket as any);
  const logId = logicalId(stack, stack.logBucket!);
  const bucket = (id: string) => resources[id].Properties;

  test('are the input, output and access-log buckets', () => {
    template.resourceCountIs('AWS::S3::Bucket', 3);
    expect(new Set([inputId, outputId, logId]).size).toBe(3);
  });

  test.each([
    ['input', () => inputId],
    ['output', () => outputId],
    ['access-log', () => logId],
  ])('the %s bucket is private, owner-enforced, S3-encrypted and retained', (_name, id) => {
    expect(bucket(id()).PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket(id()).OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    expect(bucket(id()).BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    });
    expect(bucket(id()).AccessControl).toBeUndefined();
    expect(resources[id()].DeletionPolicy).toBe('Retain');
  });

  test.each([
    ['input', () => inputId],
    ['output', () => outputId],
    ['access-log', () => logId],
  ])('the %s bucket refuses requests without TLS', (_name, id) => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id() },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('only the input bucket is versioned and sends events to EventBridge', () => {
    expect(bucket(inputId).VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket(inputId).NotificationConfiguration).toEqual({ EventBridgeConfiguration: { EventBridgeEnabled: true } });
    expect(bucket(outputId).VersioningConfiguration).toBeUndefined();
    expect(bucket(outputId).NotificationConfiguration).toBeUndefined();
    // Native CloudFormation property: no notification custom resource or its Lambda.
    expect(Object.values(resources).filter((r: any) => r.Type === 'Custom::S3BucketNotifications')).toHaveLength(0);
  });

  test('input and output buckets log access to the log bucket', () => {
    expect(bucket(inputId).LoggingConfiguration).toEqual({ DestinationBucketName: { Ref: logId }, LogFilePrefix: 'input/' });
    expect(bucket(outputId).LoggingConfiguration).toEqual({ DestinationBucketName: { Ref: logId }, LogFilePrefix: 'output/' });
    expect(bucket(logId).LoggingConfiguration).toBeUndefined();
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 's3:PutObject', Principal: { Service: 'logging.s3.amazonaws.com' } }),
        ]),
      },
    });
  });

  test('replaced and deleted uploads are kept 30 days, then expire with their delete markers', () => {
    expect(bucket(inputId).LifecycleConfiguration.Rules).toEqual([
      { NoncurrentVersionExpiration: { NoncurrentDays: NONCURRENT_VERSION_DAYS }, ExpiredObjectDeleteMarker: true, Status: 'Enabled' },
      { AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 }, Status: 'Enabled' },
    ]);
    expect(NONCURRENT_VERSION_DAYS).toBe(30);
  });

  test('working copies expire after the 14-day redrive window (plus the longest run), backfill results after 90 days', () => {
    const rules = bucket(outputId).LifecycleConfiguration.Rules;
    expect(rules).toEqual([
      { Prefix: 'work/', ExpirationInDays: WORKING_COPY_DAYS, Status: 'Enabled' },
      { Prefix: 'backfills/', ExpirationInDays: 90, Status: 'Enabled' },
      { AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 }, Status: 'Enabled' },
    ]);
    expect(WORKING_COPY_DAYS).toBeGreaterThan(14 + 1);
    // Nothing expires variants or manifests: they are the outputs.
    expect(JSON.stringify(rules)).not.toMatch(/variants\/|manifests\//);
  });

  test('bucket names are stack outputs', () => {
    const outputs = template.toJSON().Outputs;
    expect(outputs.InputBucketName.Value).toEqual({ Ref: inputId });
    expect(outputs.OutputBucketName.Value).toEqual({ Ref: outputId });
  });
});

describe('imported buckets', () => {
  test('both given: no bucket is created and the names flow into functions and outputs', () => {
    const { template } = build({ inputBucketName: 'photos-in', outputBucketName: 'photos-out' });
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::S3::BucketPolicy', 0);
    template.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ OUTPUT_BUCKET: 'photos-out' }) },
    });
    const outputs = template.toJSON().Outputs;
    expect(outputs.InputBucketName.Value).toBe('photos-in');
    expect(outputs.OutputBucketName.Value).toBe('photos-out');
  });

  test('input given: the output and log buckets are still created', () => {
    const { stack, template } = build({ inputBucketName: 'photos-in' });
    template.resourceCountIs('AWS::S3::Bucket', 2);
    expect(stack.logBucket).toBeDefined();
  });
});

describe('the work prefix', () => {
  test('follows outputs.workPrefix of the config', () => {
    const config = configVariant((c) => {
      c.outputs.workPrefix = 'scratch/';
    });
    const { stack, template } = build({ config });
    const rules = template.toJSON().Resources[logicalId(stack, stack.outputBucket as any)].Properties.LifecycleConfiguration.Rules;
    expect(rules[0]).toEqual({ Prefix: 'scratch/', ExpirationInDays: WORKING_COPY_DAYS, Status: 'Enabled' });
  });

  test('may not overlap where backfill results go', () => {
    const config = configVariant((c) => {
      c.outputs.workPrefix = 'backfills/work/';
    });
    expect(() => build({ config })).toThrow(/overlaps backfills\//);
  });
});
