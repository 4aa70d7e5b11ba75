import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldProblem } from '../../errors/app-error.js';

// ajv-formats is CommonJS with a default export; under NodeNext its default import is the module object.
type AddFormats = typeof addFormatsModule.default;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

function createAjv(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    // Stop at the first error: cheaper on hostile input, and one clear message is what callers get.
    allErrors: false,
    strict: false,
    allowUnionTypes: true,
  });
  addFormats(ajv);
  return ajv;
}

/**
 * Object schemas in request bodies refuse unknown properties unless they say otherwise,
 * so forgetting `additionalProperties: false` on a route never silently accepts junk.
 */
export function withStrictObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withStrictObjects);
  if (typeof schema !== 'object' || schema === null) return schema;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) copy[key] = withStrictObjects(value);
  if (copy.type === 'object' && copy.properties !== undefined && copy.additionalProperties === undefined) {
    copy.additionalProperties = false;
  }
  return copy;
}

/**
 * Bodies are validated without type coercion ("1" is not 1, true is not 1). Query strings,
 * path parameters and headers are text on the wire, so those are coerced.
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = createAjv(false);
  const coercing = createAjv(true);
  return ({ schema, httpPart }) => {
    const validate: ValidateFunction =
      httpPart === 'body' ? strict.compile(withStrictObjects(schema) as object) : coercing.compile(schema as object);
    return validate;
  };
}

/** `/events/3/quantity` -> `events[3].quantity`. */
export function fieldPath(instancePath: string, child?: string): string {
  const segments = instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) segments.push(child);
  let path = '';
  for (const segment of segments) {
    if (/^\d+$/.test(segment)) path += `[${segment}]`;
    else path += path === '' ? segment : `.${segment}`;
  }
  return path;
}

const CONTEXT_PREFIX: Record<string, string> = { querystring: 'query', params: 'params', headers: 'headers' };

export function fieldProblems(errors: readonly ErrorObject[], context: string | undefined): FieldProblem[] {
  const prefix = context && CONTEXT_PREFIX[context];
  return errors.map((error) => {
    let field: string;
    let message: string;
    if (error.keyword === 'additionalProperties') {
      field = fieldPath(error.instancePath, String(error.params.additionalProperty));
      message = 'is not an allowed property';
    } else if (error.keyword === 'required') {
      field = fieldPath(error.instancePath, String(error.params.missingProperty));
      message = 'is required';
    } else {
      field = fieldPath(error.instancePath);
      message = error.message ?? 'is invalid';
    }
    if (field === '') field = prefix ?? 'body';
    else if (prefix) field = `${prefix}.${field}`;
    return { field, message };
  });
}
