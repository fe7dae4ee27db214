'use strict'
// The linter must catch real mistakes, not just pass the shipped definition.

const test = require('node:test')
const assert = require('node:assert')
const fs = require('fs')
const path = require('path')
const { substitute, lint, dummyArn } = require('./lint')

const SHIPPED = fs.readFileSync(path.join(__dirname, '..', 'pipeline.asl.json'), 'utf8')

function shipped () {
  return JSON.parse(substitute(SHIPPED).substituted)
}

test('placeholders become Lambda ARNs', () => {
  const { substituted, names } = substitute('{"Resource": "${ValidateFunctionArn}"}')
  assert.deepStrictEqual(names, ['ValidateFunctionArn'])
  assert.strictEqual(JSON.parse(substituted).Resource, dummyArn('ValidateFunctionArn'))
  assert.match(dummyArn('X'), /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:X$/)
})

test('the shipped definition is clean, as a Standard and as an Express workflow', () => {
  assert.deepStrictEqual(lint(shipped()).problems, [])
  const express = JSON.parse(substitute(SHIPPED, 'express').substituted)
  assert.deepStrictEqual(lint(express).problems, [])
  assert.deepStrictEqual(express.States.Validate.Catch.at(-1).ErrorEquals, ['States.ALL'])
})

test('a transition to a missing state is caught', () => {
  const definition = shipped()
  definition.States.Validate.Next = 'Nowhere'
  const { problems } = lint(definition)
  assert.ok(problems.some(p => p.includes('Nowhere')), problems.join('\n'))
})

test('a misspelt field is caught', () => {
  const definition = shipped()
  definition.States.Validate.Retry[0].MaxAtempts = 3
  assert.notStrictEqual(lint(definition).problems.length, 0)
})

test('an unreachable state is caught', () => {
  const definition = shipped()
  definition.States.Orphan = { Type: 'Succeed' }
  assert.notStrictEqual(lint(definition).problems.length, 0)
})

test('a broken path is caught', () => {
  const definition = shipped()
  definition.States.RenderVariants.ItemsPath = 'image.variants'
  assert.notStrictEqual(lint(definition).problems.length, 0)
})

test('only the known false positive is set aside', () => {
  const definition = shipped()
  definition.States.RenderVariants.MaxConcurrencyPth = '$.image.maxConcurrency'
  const { problems, ignored } = lint(definition)
  assert.ok(problems.some(p => p.includes('MaxConcurrencyPth')), problems.join('\n'))
  assert.ok(ignored.every(p => p.includes('"MaxConcurrencyPath"')), ignored.join('\n'))
})
