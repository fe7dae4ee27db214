import * as fs from 'fs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/**
 * Which Step Functions workflow type runs the pipeline (context `workflowType`).
 *
 * - `standard`: exactly-once, 90 days of history in the console, redrive from the failed state for 14
 *   days, the failed manifest written from the FAILED status-change event; billed per state transition
 *   (about $0.28 per thousand images).
 * - `express`: at-least-once (harmless: every output key is deterministic and writes are conditional),
 *   at most 5 minutes, history in CloudWatch Logs only, no redrive (`ferrotype aws rerun`), failures
 *   recorded inline; billed per request and duration (a tenth of Standard's price, see cdk/README.md).
 *
 * The default is `express`: it is what brings the pipeline near the seed's price (state transitions were
 * $225 of Standard's $267 per million images), every integrity guarantee holds under at-least-once
 * delivery, and each operation has an Express answer: failures are recorded inline, `ferrotype aws
 * rerun --all-failed` restarts them, `ferrotype aws executions` reads the logs, `ferrotype aws
 * reconcile` catches whatever ended without a manifest (a 5-minute timeout included). Choose `standard`
 * for redrive and exactly-once runs, or when bursts may keep Lambda throttled for longer than the
 * 5 minutes an Express execution may last (cdk/README.md, "Bursts").
 */
export type WorkflowType = 'standard' | 'express';
export const WORKFLOW_TYPES: readonly WorkflowType[] = ['standard', 'express'];
export const DEFAULT_WORKFLOW_TYPE: WorkflowType = 'express';

export function stateMachineType(workflow: WorkflowType): sfn.StateMachineType {
  return workflow === 'express' ? sfn.StateMachineType.EXPRESS : sfn.StateMachineType.STANDARD;
}

/**
 * The definition's `${UncaughtErrors}`: what the last Catch of each state matches.
 * Express catches everything and records the failure inline (no redrive, no status-change event);
 * Standard names an error no stage raises, so failures stay uncaught for redrive and the FAILED
 * status-change event records them.
 */
export const UNCAUGHT_ERRORS: Record<WorkflowType, string> = {
  express: 'States.ALL',
  standard: 'Ferrotype.LeftForRedrive',
};

/** The `${Name}` placeholders of a definition file, in order of first use. */
export function placeholdersOf(definitionPath: string): string[] {
  const text = fs.readFileSync(definitionPath, 'utf8');
  return [...new Set([...text.matchAll(/\$\{([A-Za-z][A-Za-z0-9]*)\}/g)].map((match) => match[1]))];
}

/**
 * DefinitionSubstitutions for exactly the placeholders of `definitionPath`, taken from `values`. A
 * placeholder without a value fails synth here, instead of the deploy failing on a literal `${…}`.
 */
export function substitutionsFor(definitionPath: string, values: Record<string, string>): Record<string, string> {
  const substitutions: Record<string, string> = {};
  for (const name of placeholdersOf(definitionPath)) {
    const value = values[name];
    if (value === undefined) {
      throw new Error(`${definitionPath} uses \${${name}}, which the stack does not provide (known: ${Object.keys(values).join(', ')})`);
    }
    substitutions[name] = value;
  }
  return substitutions;
}
