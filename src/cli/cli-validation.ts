import type { TSchema } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv';
import { createValidatorCompiler, fieldProblems } from '../platform/http/validation.js';
import { UsageError } from './cli-io.js';

const compile = createValidatorCompiler();

/** `overlapSeconds` -> `--overlap-seconds`. */
export function flagOf(field: string): string {
  return `--${field.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
}

/**
 * Checks a command's input against the body schema of the HTTP route doing the same
 * thing, so the command line refuses exactly what the API refuses (HTTP-5), before
 * anything is changed; the message names the option.
 */
export function validateAsRouteBody(schema: TSchema, body: Record<string, unknown>): void {
  const validate = compile({ schema, httpPart: 'body', method: 'POST', url: '(cli)' }) as ValidateFunction;
  if (validate(body)) return;
  const problem = fieldProblems(validate.errors ?? [], 'body')[0];
  throw new UsageError(problem ? `${flagOf(problem.field)}: ${problem.message}` : 'invalid arguments');
}

const ID = /^[A-Za-z0-9_-]{1,128}$/;

/** An account, key or other id given as an argument (API.md: at most 128 URL-safe characters). */
export function requireId(value: string | undefined, name: string): string {
  if (value === undefined || !ID.test(value)) throw new UsageError(`${name}: must be an id of 1-128 letters, digits, _ or -`);
  return value;
}

/** A whole number written in decimal digits only ("1e3", "0x10", " 5", "1.0" are refused). */
export function requireInteger(value: string | undefined, name: string, min: number, max: number): number {
  if (value === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(value)) throw new UsageError(`${name}: must be a whole number`);
  const number = Number(value);
  if (number < min || number > max) throw new UsageError(`${name}: must be from ${min} to ${max}`);
  return number;
}
