/** Compares the client's operation table with the server's OpenAPI document (SDK-1: it cannot drift). */
import type { BodyShape, Operation } from '../src/index.js';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
};
type OpenApiOperation = {
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};
export type OpenApiDocument = { paths: Record<string, Record<string, OpenApiOperation>> };

/** The object schema inside a schema: itself, the items of an array, or an object member of a union. */
export function objectSchema(schema: Schema | undefined): Schema | undefined {
  if (!schema) return undefined;
  if (schema.properties) return schema;
  if (schema.items) return objectSchema(schema.items);
  for (const member of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    const found = objectSchema(member);
    if (found) return found;
  }
  return undefined;
}

function bodyProblems(where: string, shape: BodyShape, schema: Schema | undefined): string[] {
  const object = objectSchema(schema);
  if (!object?.properties) return [`${where}: the route has no object body schema`];
  const problems: string[] = [];
  for (const field of shape.fields) {
    if (!(field in object.properties)) problems.push(`${where}: the route does not accept ${field}`);
  }
  for (const field of object.required ?? []) {
    if (!shape.required.includes(field)) problems.push(`${where}: the route requires ${field}, which the client does not always send`);
  }
  for (const field of shape.required) {
    if (!shape.fields.includes(field)) problems.push(`${where}: ${field} is required but not a field`);
  }
  for (const [field, nested] of Object.entries(shape.nested ?? {})) problems.push(...bodyProblems(`${where}.${field}`, nested, object.properties[field]));
  return problems;
}

/** Every way the client's operation table disagrees with the OpenAPI document. */
export function driftProblems(document: OpenApiDocument, operations: Readonly<Record<string, Operation>>): string[] {
  const problems: string[] = [];
  for (const [name, operation] of Object.entries(operations)) {
    const where = `${name} (${operation.method} ${operation.path})`;
    const route = document.paths[operation.path]?.[operation.method.toLowerCase()];
    if (!route) {
      problems.push(`${where}: no such route`);
      continue;
    }
    const pathParameters = [...operation.path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
    const declared = (route.parameters ?? []).filter((parameter) => parameter.in === 'path').map((parameter) => parameter.name);
    if (JSON.stringify([...declared].sort()) !== JSON.stringify([...pathParameters].sort())) {
      problems.push(`${where}: path parameters ${JSON.stringify(declared)} on the server`);
    }
    const queryNames = new Set((route.parameters ?? []).filter((parameter) => parameter.in === 'query').map((parameter) => parameter.name));
    for (const name of operation.query ?? []) if (!queryNames.has(name)) problems.push(`${where}: the route has no query parameter ${name}`);
    if (operation.body) problems.push(...bodyProblems(where, operation.body, route.requestBody?.content?.['application/json']?.schema));
    else if (route.requestBody?.content?.['application/json']?.schema?.required?.length) problems.push(`${where}: the route requires a body`);
    for (const status of operation.success) {
      const response = route.responses?.[String(status)];
      if (!response && status !== 204) {
        // Routes without response schemas are documented by status only; the client reads nothing unknown from them.
        if (operation.response && Object.keys(route.responses ?? {}).length > 0) problems.push(`${where}: the route does not answer ${status}`);
        continue;
      }
      const schema = objectSchema(response?.content?.['application/json']?.schema);
      if (!schema?.properties || !operation.response) continue;
      for (const field of operation.response) if (!(field in schema.properties)) problems.push(`${where}: a ${status} answer has no ${field}`);
    }
  }
  return problems;
}

