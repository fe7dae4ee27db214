#!/usr/bin/env node
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfig } from '../lib/config';
import { EXPRESS_LOG_LEVELS, ExpressLogLevel, FerrotypeStack } from '../lib/ferrotype-stack';
import { WORKFLOW_TYPES, WorkflowType } from '../lib/workflow';

/**
 * Context (cdk.json or `-c key=value`):
 *   config          path of ferrotype.json (default: the repo's ferrotype.json)
 *   lambdasDir      folder with <crate>/bootstrap (default: the repo's target/lambda)
 *   inputBucketName / outputBucketName   use existing buckets instead of creating them
 *   cloudfront      "true" to add a CloudFront distribution in front of the output bucket
 *   alarmEmail      subscribe this address to the alarm topic (a new one unless alarmTopicArn is given)
 *   alarmTopicArn   send alarms to this existing SNS topic
 *   workflowType    "express" (default) or "standard" (lib/workflow.ts)
 *   expressLogLevel "all" (default: every Express execution logged with its data) or "error" (failures only)
 *   renderConcurrency   reserved concurrency of render-variant (default none)
 *   inventoryBucketName a bucket of S3 Inventory reports the backfill may read
 *   stackName       default "Ferrotype"
 * Relative paths are resolved against the working directory (cdk/ when run through `npx cdk`).
 */
const app = new App();
const repoRoot = path.join(__dirname, '..', '..');
const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
};
const optionalPath = (key: string): string | undefined => {
  const value = context(key);
  return value === undefined ? undefined : path.resolve(value);
};

const workflowType = (): WorkflowType | undefined => {
  const value = context('workflowType');
  if (value === undefined) return undefined;
  if (!WORKFLOW_TYPES.includes(value as WorkflowType)) {
    throw new ConfigError(`workflowType must be one of ${WORKFLOW_TYPES.join(', ')}, got "${value}"`);
  }
  return value as WorkflowType;
};
const expressLogLevel = (): ExpressLogLevel | undefined => {
  const value = context('expressLogLevel');
  if (value === undefined) return undefined;
  if (!EXPRESS_LOG_LEVELS.includes(value as ExpressLogLevel)) {
    throw new ConfigError(`expressLogLevel must be one of ${EXPRESS_LOG_LEVELS.join(', ')}, got "${value}"`);
  }
  return value as ExpressLogLevel;
};
const positiveInteger = (key: string): number | undefined => {
  const value = context(key);
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new ConfigError(`${key} must be a positive integer, got "${value}"`);
  return Number(value);
};

new FerrotypeStack(app, context('stackName') ?? 'Ferrotype', {
  description: 'Ferrotype serverless image pipeline',
  config: loadConfig(optionalPath('config') ?? path.join(repoRoot, 'ferrotype.json')),
  lambdasDir: optionalPath('lambdasDir'),
  inputBucketName: context('inputBucketName'),
  outputBucketName: context('outputBucketName'),
  cloudfront: context('cloudfront') === 'true',
  alarmEmail: context('alarmEmail'),
  alarmTopicArn: context('alarmTopicArn'),
  workflowType: workflowType(),
  expressLogLevel: expressLogLevel(),
  renderConcurrency: positiveInteger('renderConcurrency'),
  inventoryBucketName: context('inventoryBucketName'),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
