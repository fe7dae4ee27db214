import { Match } from 'aws-cdk-lib/assertions';
import { build, logicalId } from './helpers';

test('no distribution by default', () => {
  const { template } = build();
  template.resourceCountIs('AWS::CloudFront::Distribution', 0);
  template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 0);
  expect(template.toJSON().Outputs.DistributionDomainName).toBeUndefined();
});

describe('with cloudfront: true', () => {
  const { stack, template } = build({ cloudfront: true });
  const outputId = logicalId(stack, stack.outputBucket as any);
  const distributionId = logicalId(stack, stack.distribution!);
  const distribution = template.toJSON().Resources[distributionId].Properties.DistributionConfig;

  test('serves the variants prefix of the output bucket through Origin Access Control', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: Match.objectLike({
        OriginAccessControlOriginType: 's3',
        SigningBehavior: 'always',
        SigningProtocol: 'sigv4',
      }),
    });
    expect(distribution.Origins).toHaveLength(1);
    const origin = distribution.Origins[0];
    expect(origin.DomainName).toEqual({ 'Fn::GetAtt': [outputId, 'RegionalDomainName'] });
    expect(origin.OriginPath).toBe('/variants');
    const oacId = origin.OriginAccessControlId['Fn::GetAtt'];
    expect(oacId[1]).toBe('Id');
    expect(template.toJSON().Resources[oacId[0]].Type).toBe('AWS::CloudFront::OriginAccessControl');
    // OAC, not the legacy origin access identity.
    expect(origin.S3OriginConfig.OriginAccessIdentity).toBe('');
  });

  test('redirects to HTTPS and allows only GET and HEAD', () => {
    expect(distribution.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('redirect-to-https');
    expect(distribution.DefaultCacheBehavior.AllowedMethods).toEqual(['GET', 'HEAD']);
    expect(distribution.Enabled).toBe(true);
  });

  test('the output bucket lets only this distribution read, and only the variants prefix', () => {
    const policies = Object.values(template.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: outputId } } }));
    expect(policies).toHaveLength(1);
    const statements: any[] = (policies[0] as any).Properties.PolicyDocument.Statement;
    const cloudfrontStatements = statements.filter((st) => JSON.stringify(st.Principal ?? {}).includes('cloudfront'));
    expect(cloudfrontStatements).toEqual([
      {
        Sid: 'CloudFrontReadsVariants',
        Action: 's3:GetObject',
        Effect: 'Allow',
        Principal: { Service: 'cloudfront.amazonaws.com' },
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [outputId, 'Arn'] }, '/variants/*']] },
        Condition: {
          StringEquals: {
            'AWS:SourceArn': {
              'Fn::Join': [
                '',
                ['arn:', { Ref: 'AWS::Partition' }, ':cloudfront::', { Ref: 'AWS::AccountId' }, ':distribution/', { Ref: distributionId }],
              ],
            },
          },
        },
      },
    ]);
    // Manifests, working copies and backfill results are not readable through CloudFront.
    expect(JSON.stringify(statements.filter((st) => st.Effect === 'Allow'))).not.toMatch(/"\/\*"|manifests|work\/|backfills/);
  });

  test('outputs the domain name', () => {
    expect(template.toJSON().Outputs.DistributionDomainName.Value).toEqual({ 'Fn::GetAtt': [distributionId, 'DomainName'] });
  });
});
