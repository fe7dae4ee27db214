#!/usr/bin/env node
// Lints a state machine definition with two validators that catch different mistakes: asl-validator
// (JSON schema and path syntax) and @wmfs/statelint (the States Language rules). The definition holds
// `${…}` placeholders that CDK substitutes with Lambda ARNs; statelint refuses them, so they are
// replaced with well-formed dummy ARNs first. Exit status: 0 clean, 1 problems found, 2 unusable input.
'use strict'

const fs = require('fs')
const path = require('path')
const aslValidator = require('asl-validator')
const { StateLint } = require('@wmfs/statelint')

const PLACEHOLDER = /\$\{([A-Za-z][A-Za-z0-9]*)\}/g

/** A Lambda function ARN named after the placeholder, as CDK's DefinitionSubstitutions would give. */
function dummyArn (name) {
  return `arn:aws:lambda:us-east-1:123456789012:function:${name}`
}

/**
 * Placeholders that are not Lambda ARNs, with the values each deployment gives them. `UncaughtErrors`
 * is the error name of the definition's last catchers: one no stage raises in a Standard workflow (so
 * failures stay uncaught, for redrive), States.ALL in an Express one (failures are recorded inline).
 */
const WORKFLOW_VALUES = {
  standard: { UncaughtErrors: 'Ferrotype.LeftForRedrive' },
  express: { UncaughtErrors: 'States.ALL' }
}

/**
 * The definition text with every `${Name}` replaced (by the workflow type's value, else a Lambda ARN);
 * also returns the names seen.
 */
function substitute (text, workflow = 'standard') {
  const names = new Set()
  const values = WORKFLOW_VALUES[workflow]
  const substituted = text.replace(PLACEHOLDER, (_, name) => {
    names.add(name)
    return values[name] ?? dummyArn(name)
  })
  return { substituted, names: [...names] }
}

/**
 * Messages of a validator about something AWS Step Functions accepts, each with the reason. Matched
 * exactly (after the state path), so any other problem still fails the lint.
 */
const KNOWN_FALSE_POSITIVES = [
  {
    validator: 'statelint',
    pattern: /^Field "MaxConcurrencyPath" not allowed in State Machine\.States\.[A-Za-z0-9_.]+$/,
    reason: 'Map.MaxConcurrencyPath (JSONPath, 2023) postdates the ASL spec revision statelint 1.30 implements'
  }
]

function knownFalsePositive (validator, message) {
  return KNOWN_FALSE_POSITIVES.find(known => known.validator === validator && known.pattern.test(message))
}

/**
 * Problems both validators report, as lines `<validator>: <message>`, and the known false positives
 * that were set aside.
 */
function lint (definition) {
  const ignored = []
  const problems = []
  // asl-validator adds fields (QueryLanguage) to the object it is given: each validator gets its own copy.
  const { isValid, errors } = aslValidator(structuredClone(definition))
  if (!isValid) {
    for (const error of errors) {
      problems.push(`asl-validator: ${error.path ? error.path + ': ' : ''}${error.message}`)
    }
  }
  for (const problem of new StateLint().validate(structuredClone(definition))) {
    const known = knownFalsePositive('statelint', problem)
    if (known) {
      ignored.push(`statelint: ${problem} (accepted by AWS: ${known.reason})`)
    } else {
      problems.push(`statelint: ${problem}`)
    }
  }
  return { problems, ignored }
}

function main (files) {
  if (files.length === 0) {
    console.error('usage: lint.js <definition.asl.json>...')
    return 2
  }
  let status = 0
  for (const file of files) {
    for (const workflow of Object.keys(WORKFLOW_VALUES)) {
      const result = lintFile(file, workflow)
      if (result === 2) return 2
      status = Math.max(status, result)
    }
  }
  return status
}

/** Lints one file as deployed for one workflow type: 0 clean, 1 problems, 2 unreadable. */
function lintFile (file, workflow) {
  let status = 0
  {
    let definition
    let names
    try {
      const text = fs.readFileSync(file, 'utf8')
      const result = substitute(text, workflow)
      names = result.names
      definition = JSON.parse(result.substituted)
    } catch (err) {
      console.error(`${file}: cannot read: ${err.message}`)
      return 2
    }
    if (/\$\{/.test(JSON.stringify(definition))) {
      console.error(`${file}: a '\${' remains that is not a \${Name} placeholder`)
      status = 1
    }
    const { problems, ignored } = lint(definition)
    const shown = `${path.relative(process.cwd(), file) || file} (${workflow})`
    for (const note of ignored) console.log(`${shown}: ignored ${note}`)
    if (problems.length === 0) {
      console.log(`${shown}: valid (asl-validator, statelint; placeholders: ${names.join(', ') || 'none'})`)
    } else {
      for (const problem of problems) console.error(`${shown}: ${problem}`)
      status = 1
    }
  }
  return status
}

module.exports = { substitute, lint, dummyArn, KNOWN_FALSE_POSITIVES, WORKFLOW_VALUES }

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2))
}
