import { build, configVariant, logicalId, statementsOfRole, allowance, Built } from './helpers';
import { STAGES, Stage } from '../lib/ferrotype-stack';

const XRAY = { actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] };

/** What each stage's role may do, as template expressions. */
function expectedAllowances(built: Built, stage: Stage, rekognition: boolean) {
  const { stack, resolve } = built;
  const logGroupArn = { 'Fn::GetAtt': [logicalId(stack, (stack.functions[stage] as any).logGroup), 'Arn'] };
  const logs = { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroupArn] };
  const readUploads = {
    actions: ['s3:GetObject', 's3:GetObjectVersion'],
    resources: [resolve(stack.inputBucket.arnForObjects('uploads/*'))],
  };
  switch (stage) {
    case 'validate':
      return [logs, readUploads, { actions: ['s3:ListBucket'], resources: [resolve(stack.inputBucket.bucketArn)] }, XRAY];
    case 'detect-faces':
      return rekognition
        ? [logs, readUploads, { actions: ['rekognition:DetectFaces'], resources: ['*'] }, XRAY]
        : [logs, readUploads, XRAY];
    case 'render-variant':
      return [logs, readUploads, { actions: ['s3:PutObject'], resources: [resolve(stack.outputBucket.arnForObjects('variants/*'))] }, XRAY];
    case 'record-result':
      return [
        logs,
        { actions: ['s3:GetObject', 's3:PutObject'], resources: [resolve(stack.outputBucket.arnForObjects('manifests/*'))] },
        { actions: ['s3:ListBucket'], resources: [resolve(stack.outputBucket.bucketArn)] },
        XRAY,
      ];
  }
}

function roleId(built: Built, stage: Stage): string {
  return logicalId(built.stack, built.stack.functions[stage].role as any);
}

describe('with the repository config (builtin smart crop)', () => {
  const built = build();
  const { stack, template } = built;

  test.each(STAGES)('the %s role allows exactly what the stage needs', (stage) => {
    expect(statementsOfRole(template, roleId(built, stage)).map(allowance)).toEqual(
      expectedAllowances(built, stage, false),
    );
  });

  test.each(STAGES)('the %s role is assumed by Lambda only and has no managed policies', (stage) => {
    const role = template.toJSON().Resources[roleId(built, stage)].Properties;
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(role.Policies).toBeUndefined();
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
  });

  test('S3 object access stays under the configured prefixes', () => {
    const text = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(text).not.toMatch(/s3:\w*\*/); // no s3:GetObject*, s3:List*, s3:*
    expect(text).not.toMatch(/"\/\*"/); // no whole-bucket object ARNs
  });

  test('nothing may call Rekognition', () => {
    expect(JSON.stringify(template.toJSON())).not.toContain('rekognition');
  });

  test('the state machine role invokes exactly the four functions, by unqualified ARN', () => {
    const machineRoleId = stack.resolve(stack.stateMachine.role.roleArn)['Fn::GetAtt'][0];
    const statements = statementsOfRole(template, machineRoleId).map(allowance);
    const invoke = statements.filter((s) => s.actions.some((action) => action.startsWith('lambda:')));
    expect(invoke).toEqual([
      {
        actions: ['lambda:InvokeFunction'],
        resources: STAGES.map((stage) => ({ 'Fn::GetAtt': [logicalId(stack, stack.functions[stage]), 'Arn'] })),
      },
    ]);
    // Everything else is what CDK adds for logging ALL and X-Ray: no other service, no other resource.
    for (const other of statements.filter((s) => s !== invoke[0])) {
      expect(other.resources).toEqual(['*']);
      for (const action of other.actions) expect(action).toMatch(/^(logs|xray):[A-Za-z]+$/);
    }
  });

  test('roles are the four stage roles, the state machine role and the upload rule role', () => {
    template.resourceCountIs('AWS::IAM::Role', 6);
  });
});

describe('with a profile that uses Rekognition', () => {
  const config = configVariant((c) => {
    c.profiles.push({ ...c.profiles[0], name: 'people', prefix: 'people/', smartCrop: 'rekognition' });
  });
  const built = build({ config });
  const { template, resolve, stack } = built;

  test('only detect-faces may call rekognition:DetectFaces', () => {
    expect(statementsOfRole(template, roleId(built, 'detect-faces')).map(allowance)).toEqual([
      expect.anything(),
      {
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [resolve(stack.inputBucket.arnForObjects('uploads/*')), resolve(stack.inputBucket.arnForObjects('people/*'))],
      },
      { actions: ['rekognition:DetectFaces'], resources: ['*'] },
      XRAY,
    ]);
    for (const stage of STAGES.filter((s) => s !== 'detect-faces')) {
      expect(JSON.stringify(statementsOfRole(template, roleId(built, stage)))).not.toContain('rekognition');
    }
  });
});

describe('with imported buckets', () => {
  const built = build({ inputBucketName: 'photos-in', outputBucketName: 'photos-out' });

  test.each(STAGES)('the %s role names the given buckets', (stage) => {
    const statements = statementsOfRole(built.template, roleId(built, stage)).map(allowance);
    expect(statements).toEqual(expectedAllowances(built, stage, false));
    const text = JSON.stringify(statements);
    if (stage !== 'record-result') expect(text).toContain(':s3:::photos-in/uploads/*');
  });
});
