// The two shapes a scenario in scenarios.mjs may take, brought to one:
//
// - shared: `request` and `expect` on the scenario, `reference` and `target` system ids
//   (the same request to two servers, e.g. GET /health on Bulwark and on bare node:http);
// - per role: `reference` and `target` as `{ system, label?, request, expect, describe? }`
//   (different requests, possibly to the same server, e.g. GET /api/account as a ratio
//   to GET /health). A role falls back to the scenario's `request` / `expect`.
//
// A request may be a function of what the scenario's `setup` returned (credentials that
// exist only at run time); `expect.body` may be a string (exact), a RegExp, or a function
// (body, fixtures) -> true | false | problem string.
import { systems } from '../systems.mjs';

export const ROLES = ['reference', 'target'];

function normalizeRole(scenario, role) {
  const given = scenario[role];
  const spec = typeof given === 'string' ? { system: given } : { ...given };
  if (!spec.system || !systems[spec.system]) throw new Error(`scenario ${scenario.id}: unknown ${role} system ${JSON.stringify(spec.system)}`);
  spec.request ??= scenario.request;
  spec.expect ??= scenario.expect;
  if (!spec.request || !spec.expect) throw new Error(`scenario ${scenario.id}: the ${role} has no request or no expect`);
  spec.label ??= systems[spec.system].label;
  return spec;
}

/** Every scenario in one shape: `reference` and `target` become `{ system, label, request, expect }`. */
export function normalizeScenario(scenario) {
  const [reference, target] = ROLES.map((role) => normalizeRole(scenario, role));
  if (reference.label === target.label) {
    throw new Error(`scenario ${scenario.id}: reference and target need different labels (give each role a label)`);
  }
  return { ...scenario, reference, target };
}

/** The concrete request for a role, once the scenario's setup has run. */
export function resolveRequest(roleSpec, fixtures) {
  return typeof roleSpec.request === 'function' ? roleSpec.request(fixtures) : roleSpec.request;
}

/** Why a response is not the expected one (empty when it is). Never quotes request headers. */
export function answerProblems(expect, response, fixtures) {
  const problems = [];
  if (response.status !== expect.status) problems.push(`status ${response.status}, expected ${expect.status}`);
  if (!expect.contentType.test(response.headers['content-type'] ?? '')) {
    problems.push(`content-type ${JSON.stringify(response.headers['content-type'])}`);
  }
  const { body } = expect;
  let bodyProblem;
  if (typeof body === 'string') bodyProblem = response.body !== body;
  else if (body instanceof RegExp) bodyProblem = !body.test(response.body);
  else if (typeof body === 'function') {
    const verdict = body(response.body, fixtures);
    bodyProblem = typeof verdict === 'string' ? verdict : verdict !== true;
  }
  if (bodyProblem) {
    problems.push(`body ${JSON.stringify(response.body.slice(0, 200))}${typeof bodyProblem === 'string' ? ` (${bodyProblem})` : ''}`);
  }
  return problems;
}
