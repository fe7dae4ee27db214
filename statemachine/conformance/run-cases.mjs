// Runs ASL conformance cases through aws-local-stepfunctions and prints one JSON object:
// { "<case file name>": { "status": "SUCCEEDED", "output": … } | { "status": "FAILED", "error", "cause" } }.
// Usage: node run-cases.mjs cases/a.json cases/b.json …
//
// A case is { "definition", "input", "tasks": { "<Task state>": [answer, …] } }, where answer i is
// what invocation i of that state (retries included) returns: { "return": value } or
// { "throw": { "error", "cause" } }. The result also counts the Task calls ("invocations").
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

// aws-local-stepfunctions 3.x uses Promise.withResolvers (Node >= 22).
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const { StateMachine } = await import('aws-local-stepfunctions');

function taskStates(definition, names = []) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    if (state.Type === 'Task') names.push(name);
    if (state.Type === 'Map') taskStates(state.ItemProcessor ?? state.Iterator, names);
    if (state.Type === 'Parallel') state.Branches.forEach((b) => taskStates(b, names));
  }
  return names;
}

function retryStates(definition, names = []) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    if (state.Retry) names.push(name);
    if (state.Type === 'Map') retryStates(state.ItemProcessor ?? state.Iterator, names);
    if (state.Type === 'Parallel') state.Branches.forEach((b) => retryStates(b, names));
  }
  return names;
}

async function runCase(file) {
  const testCase = JSON.parse(await readFile(file, 'utf8'));
  // A case this library cannot run (JSONata, variables, Distributed Map fields) says why.
  if (testCase.referenceSkip) return { skipped: testCase.referenceSkip };
  const counters = {};
  const taskResourceLocalHandlers = {};
  for (const name of taskStates(testCase.definition)) {
    taskResourceLocalHandlers[name] = async (input) => {
      const n = counters[name] ?? 0;
      counters[name] = n + 1;
      const answers = testCase.tasks?.[name] ?? [];
      const answer = answers[Math.min(n, answers.length - 1)];
      if (answer === undefined) throw Object.assign(new Error(`no answer for ${name}`), { name: 'Conformance.NoAnswer' });
      if ('throw' in answer) {
        const error = new Error(answer.throw.cause);
        error.name = answer.throw.error;
        throw error;
      }
      return answer.echo ? { echo: input, value: answer.return } : answer.return;
    };
  }
  const retryIntervalOverrides = Object.fromEntries(retryStates(testCase.definition).map((n) => [n, 0]));
  // ferrotype-executor validates every case itself; asl-validator's schema compile costs ~1 s a case.
  const machine = new StateMachine(testCase.definition, { validationOptions: { noValidate: true } });
  const execution = machine.run(testCase.input, { overrides: { taskResourceLocalHandlers, retryIntervalOverrides } });
  try {
    return { status: 'SUCCEEDED', output: await execution.result, invocations: counters };
  } catch (error) {
    const cause = error.cause ?? error;
    return { status: 'FAILED', error: cause.name, cause: cause.message, invocations: counters };
  }
}

const results = {};
for (const file of process.argv.slice(2)) {
  results[basename(file, '.json')] = await runCase(file);
}
// Exit once printed: the library leaves timers behind that would keep Node alive for seconds.
process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
