import { build, configVariant, logicalId, statementsOfRole, allowance, Built } from './helpers';
import { STAGES, Stage } from '../lib/ferrotype-stack';

const XRAY = { actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] };

/**
 * What each stage's role may do under the integrity contract (docs/CONTRACTS.md), as template
 * expressions. S3 authorises HEAD with s3:GetObject, and answers a HEAD or GET of a missing key with 403
 * instead of 404 unless the caller may s3:ListBucket the bucket: every stage that asks "is this version
 * still current?" of the input bucket needs both. Conditional deletes (If-Match) need s3:GetObject too.
 */
function expectedAllowances(built: Built, stage: Stage, uploadPrefixes: string[], rekognition: boolean) {
  const { stack, resolve } = built;
  const logGroupArn = { 'Fn::GetAtt': [logicalId(stack, (stack.functions[stage] as any).logGroup), 'Arn'] };
  const logs = { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroupArn] };
  const uploads = uploadPrefixes.map((prefix) => resolve(stack.inputBucket.arnForObjects(`${prefix}*`)));
  const out = (prefix: string) => resolve(stack.outputBucket.arnForObjects(`${prefix}*`));
  const listInput = { actions: ['s3:ListBucket'], resources: [resolve(stack.inputBucket.bucketArn)] };
  switch (stage) {
    case 'validate':
      return [
        logs,
        { actions: ['s3:GetObject', 's3:GetObjectVersion'], resources: uploads },
        listInput,
        { actions: ['s3:PutObject'], resources: [out('work/')] },
        XRAY,
      ];
    case 'detect-faces':
      return [
        logs,
        { actions: ['s3:GetObject'], resources: [out('work/')] },
        { actions: ['s3:GetObject'], resources: uploads },
        listInput,
        ...(rekognition ? [{ actions: ['rekognition:DetectFaces'], resources: ['*'] }] : []),
        XRAY,
      ];
    case 'render-variant':
      return [
        logs,
        { actions: ['s3:GetObject', 's3:PutObject'], resources: [out('work/')] },
        { actions: ['s3:PutObject'], resources: [out('variants/')] },
        { actions: ['s3:GetObject', 's3:GetObjectVersion'], resources: uploads },
        listInput,
        XRAY,
      ];
    case 'record-result':
      return [
        logs,
        { actions: ['s3:GetObject', 's3:PutObject'], resources: [out('manifests/')] },
        { actions: ['s3:GetObject', 's3:DeleteObject'], resources: [out('variants/'), out('work/')] },
        { actions: ['s3:GetObject'], resources: uploads },
        listInput,
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
      expectedAllowances(built, stage, ['uploads/'], false),
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

  test('only record-result may delete, and only variants and working copies', () => {
    for (const stage of STAGES) {
      const deletes = statementsOfRole(template, roleId(built, stage)).filter((s) => JSON.stringify(s.Action).includes('Delete'));
      if (stage !== 'record-result') expect(deletes).toEqual([]);
    }
    const text = JSON.stringify(statementsOfRole(template, roleId(built, 'record-result')).filter((s) => JSON.stringify(s.Action).includes('Delete')));
    expect(text).toContain('/variants/*');
    expect(text).toContain('/work/*');
    expect(text).not.toContain('/manifests/*');
  });

  test('no stage may write to the input bucket, and only validate and render-variant write working copies', () => {
    const inputId = logicalId(stack, stack.inputBucket as any);
    for (const stage of STAGES) {
      const writes = statementsOfRole(template, roleId(built, stage)).filter((s) => JSON.stringify(s.Action).includes('Put'));
      expect(JSON.stringify(writes)).not.toContain(inputId);
      const writesWork = JSON.stringify(writes).includes('/work/*');
      expect(writesWork).toBe(stage === 'validate' || stage === 'render-variant');
    }
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
    // Everything else is what CDK adds for logging and X-Ray: no other service, no other resource.
    for (const other of statements.filter((s) => s !== invoke[0])) {
      expect(other.resources).toEqual(['*']);
      for (const action of other.actions) expect(action).toMatch(/^(logs|xray):[A-Za-z]+$/);
    }
  });

  test('roles: four stage roles, the pipeline, the backfill and the upload rule (Express: no second pipeline)', () => {
    template.resourceCountIs('AWS::IAM::Role', 7);
  });
});

describe('with a profile that uses Rekognition', () => {
  const config = configVariant((c) => {
    c.profiles.push({ ...c.profiles[0], name: 'people', prefix: 'people/', smartCrop: 'rekognition' });
  });
  const built = build({ config });

  test('only detect-faces may call rekognition:DetectFaces, and every stage reads both prefixes', () => {
    for (const stage of STAGES) {
      expect(statementsOfRole(built.template, roleId(built, stage)).map(allowance)).toEqual(
        expectedAllowances(built, stage, ['uploads/', 'people/'], stage === 'detect-faces'),
      );
    }
  });
});

describe('with a profile whose crops follow attention alone', () => {
  const config = configVariant((c) => {
    c.profiles[0].smartCrop = 'attention';
  });
  const built = build({ config });

  test('detect-faces is deployed (it scores attention) and no stage may call Rekognition', () => {
    expect(built.stack.functions['detect-faces']).toBeDefined();
    for (const stage of STAGES) {
      expect(statementsOfRole(built.template, roleId(built, stage)).map(allowance)).toEqual(
        expectedAllowances(built, stage, ['uploads/'], false),
      );
    }
  });
});

describe('with imported buckets', () => {
  const built = build({ inputBucketName: 'photos-in', outputBucketName: 'photos-out' });

  test.each(STAGES)('the %s role names the given buckets', (stage) => {
    const statements = statementsOfRole(built.template, roleId(built, stage)).map(allowance);
    expect(statements).toEqual(expectedAllowances(built, stage, ['uploads/'], false));
    const text = JSON.stringify(statements);
    expect(text).toContain(':s3:::photos-in/uploads/*');
    if (stage !== 'validate') expect(text).toContain(':s3:::photos-out/');
  });
});

describe('with a Standard workflow', () => {
  const built = build({ workflowType: 'standard' });

  test('the backfill\'s Express copy of the pipeline invokes exactly the four functions as well', () => {
    const { stack, template } = built;
    const roleArn = stack.resolve(stack.expressPipeline.role.roleArn)['Fn::GetAtt'][0];
    expect(roleArn).not.toBe(stack.resolve(stack.stateMachine.role.roleArn)['Fn::GetAtt'][0]);
    const invoke = statementsOfRole(template, roleArn)
      .map(allowance)
      .filter((s) => s.actions.some((action) => action.startsWith('lambda:')));
    expect(invoke).toEqual([
      {
        actions: ['lambda:InvokeFunction'],
        resources: STAGES.map((stage) => ({ 'Fn::GetAtt': [logicalId(stack, stack.functions[stage]), 'Arn'] })),
      },
    ]);
    template.resourceCountIs('AWS::IAM::Role', 8);
  });
});
