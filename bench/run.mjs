// `npm run bench`: starts the real Bulwark server (node dist/server.js, on a fresh PostgreSQL
// database) and a bare node:http reference, each as its own process, runs each scenario's
// setup (e.g. an account and API key through the operator API), drives each scenario's
// reference and target with autocannon on 127.0.0.1 in alternating rounds, and writes
// bench/RESULTS.md.
//
// Exit code: 0 when every run was valid (a ratio below target is reported, not failed);
// 1 when the target answered any non-2xx, a run had errors, or anything went wrong.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerProcess } from './lib/child.mjs';
import { processCpuSeconds } from './lib/cpu.mjs';
import { runLoad, stopActiveLoad } from './lib/load.mjs';
import { httpRequest } from './lib/net.mjs';
import { createScratchDatabase, describeUrl, dropScratchDatabase } from './lib/postgres.mjs';
import { format, renderMarkdown, renderSummary } from './lib/report.mjs';
import { answerProblems, normalizeScenario, resolveRequest, ROLES } from './lib/scenario.mjs';
import { loadSettings } from './lib/settings.mjs';
import { median } from './lib/stats.mjs';
import { withTimeout } from './lib/time.mjs';
import { scenarios as scenarioDefinitions } from './scenarios.mjs';
import { systems } from './systems.mjs';

// BENCH_ONLY=id,id runs only those scenarios (for a quick look while working); the results
// then go to bench/RESULTS.partial.md, so RESULTS.md always holds a full run.
const only = (process.env.BENCH_ONLY ?? '').split(',').map((id) => id.trim()).filter(Boolean);
// 'credits' and 'webhooks' are bench/credits.mjs's and bench/webhooks.mjs's (npm run bench runs them after this file).
const unknownIds = only.filter((id) => id !== 'credits' && id !== 'webhooks' && !scenarioDefinitions.some((scenario) => scenario.id === id));
if (unknownIds.length > 0) throw new Error(`BENCH_ONLY names unknown scenarios: ${unknownIds.join(', ')}`);
const scenarios = scenarioDefinitions.filter((scenario) => only.length === 0 || only.includes(scenario.id)).map(normalizeScenario);
const systemIdsUsed = [...new Set(scenarios.flatMap((scenario) => ROLES.map((role) => scenario[role].system)))];

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROJECT_DIR = path.resolve(BENCH_DIR, '..');
const RESULTS_FILE = path.join(BENCH_DIR, only.length > 0 ? 'RESULTS.partial.md' : 'RESULTS.md');

/** Secrets of this run (admin token, API keys): never printed, never written to RESULTS.md. */
const secrets = new Set();

function keepSecret(value) {
  if (typeof value !== 'string' || value.length < 8) throw new Error('keepSecret: expected a secret string');
  secrets.add(value);
}

function redact(text) {
  let result = String(text);
  for (const secret of secrets) result = result.split(secret).join('[redacted]');
  return result;
}

const log = (message) => process.stdout.write(redact(`[bench] ${message}\n`));

class AbortedError extends Error {}

function machineInfo() {
  const require = createRequire(import.meta.url);
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    nodeVersion: process.version,
    loadAverage: os.loadavg(),
    autocannonVersion: require('autocannon/package.json').version,
  };
}

/** Everything that must be undone, filled in as soon as each thing exists. */
const state = {
  aborted: undefined,
  dataDir: undefined,
  databaseCreation: undefined,
  servers: new Map(), // system id -> ServerProcess
  serverSecrets: new Map(), // system id -> { name: value } (from systems.mjs prepare)
  shutdowns: [],
};

function checkpoint() {
  if (state.aborted) throw new AbortedError(state.aborted);
}

let rejectAborted;
const aborted = new Promise((_, reject) => {
  rejectAborted = reject;
});
aborted.catch(() => {});

function abort(reason) {
  if (state.aborted) return;
  state.aborted = reason;
  stopActiveLoad();
  rejectAborted(new AbortedError(reason));
}

async function startSystem(id, context, settings) {
  const system = systems[id];
  if (!system) throw new Error(`unknown system "${id}" in scenarios.mjs`);
  const { secrets: serverSecrets = {}, ...spec } = await system.prepare(context);
  for (const value of Object.values(serverSecrets)) keepSecret(value);
  state.serverSecrets.set(id, serverSecrets);
  checkpoint();
  const server = new ServerProcess({ ...spec });
  state.servers.set(id, server);
  const started = Date.now();
  await server.waitUntilReady({
    path: system.readyPath,
    headers: { host: '127.0.0.1' },
    timeoutMs: settings.startupTimeoutMs,
  });
  log(`${system.label} ready on http://${spec.host}:${spec.port} (pid ${server.pid}) after ${Date.now() - started} ms`);
  return server;
}

/** A scenario's setup (if any), once, after the servers are ready; resolves its fixtures. */
async function runSetup(scenario) {
  if (!scenario.setup) return {};
  const started = Date.now();
  const fixtures = await scenario.setup({
    server: (id) => {
      const server = state.servers.get(id);
      if (!server) throw new Error(`scenario ${scenario.id}: setup asked for system "${id}", which is not running`);
      return { host: server.host, port: server.port };
    },
    secretsOf: (id) => state.serverSecrets.get(id) ?? {},
    keepSecret,
    log,
  });
  log(`setup for ${scenario.title} done in ${Date.now() - started} ms`);
  return fixtures ?? {};
}

/** Each role must give the answer we mean to measure (the same kind of answer when both send one request), or the comparison means nothing. */
async function checkAnswers(scenario, fixtures) {
  for (const role of ROLES) {
    const spec = scenario[role];
    const request = resolveRequest(spec, fixtures);
    const server = state.servers.get(spec.system);
    // A body function builds a fresh body per request (e.g. new idempotency keys): take one.
    const body = typeof request.body === 'function' ? request.body() : request.body;
    const response = await httpRequest({
      host: server.host,
      port: server.port,
      method: request.method,
      path: request.path,
      headers: { host: '127.0.0.1', ...request.headers },
      body,
    });
    const problems = answerProblems(spec.expect, response, fixtures);
    if (problems.length > 0) {
      throw new Error(`${scenario.title} on ${spec.label} does not answer as expected: ${problems.join('; ')}`);
    }
  }
}

/** The scenario's connections: its own `connections` when set, else BENCH_CONNECTIONS. */
const connectionsOf = (scenario, settings) => scenario.connections ?? settings.connections;

function runProblems(run, role, units) {
  const problems = [];
  if (units && run.units !== units.perResponse * run.status2xx) {
    problems.push(
      `${run.status2xx} 2xx answers should count ${units.perResponse * run.status2xx} ${units.name}, counted ${run.units} ` +
        `(over ${run.unitsCounted} answers)`,
    );
  }
  if (run.non2xx > 0) problems.push(`${run.non2xx} non-2xx responses (${JSON.stringify(run.statusCodes)})`);
  if (run.errors > 0) problems.push(`${run.errors} errors`);
  if (run.timeouts > 0) problems.push(`${run.timeouts} timeouts`);
  if (run.status2xx === 0) problems.push('no successful response at all');
  return problems.map((problem) => `${role}: ${problem}`);
}

async function measure(settings, startedAt) {
  const machine = machineInfo();
  log(`Node ${machine.nodeVersion}, ${machine.cpuModel} x ${machine.cpuCount}, load average ${machine.loadAverage.map((v) => v.toFixed(2)).join(' ')}`);

  if (!existsSync(path.join(PROJECT_DIR, 'dist', 'server.js'))) {
    throw new Error('dist/server.js is missing: run `npm run bench` (which builds first) or `npm run build`');
  }

  state.dataDir = await mkdtemp(path.join(os.tmpdir(), 'bulwark-bench-'));
  checkpoint();
  log(`creating a scratch database on ${describeUrl(settings.postgresAdminUrl)}`);
  state.databaseCreation = createScratchDatabase(settings.postgresAdminUrl);
  const database = await state.databaseCreation;
  checkpoint();
  log(`database ${database.name} created; DATA_DIR ${state.dataDir}`);

  const context = { settings, databaseUrl: database.url, dataDir: state.dataDir };
  for (const id of systemIdsUsed) {
    await startSystem(id, context, settings);
    checkpoint();
  }

  // Setup once per scenario (after every server is ready, before any warm-up), then each
  // role's request is fixed for the whole run.
  const requests = new Map(); // scenario id -> { reference, target }
  for (const scenario of scenarios) {
    const fixtures = await runSetup(scenario);
    checkpoint();
    await checkAnswers(scenario, fixtures);
    requests.set(scenario.id, Object.fromEntries(ROLES.map((role) => [role, resolveRequest(scenario[role], fixtures)])));
  }

  // Besides autocannon's figures, the server process's CPU time per request (Linux only):
  // far less sensitive than req/s to other work on a shared machine.
  const load = async (scenario, role, durationSeconds) => {
    const server = state.servers.get(scenario[role].system);
    const cpuBefore = await processCpuSeconds(server.pid);
    const run = await runLoad({
      host: server.host,
      port: server.port,
      request: requests.get(scenario.id)[role],
      connections: connectionsOf(scenario, settings),
      durationSeconds,
      pipelining: settings.pipelining,
      countUnits: scenario[role].units?.count,
    });
    const cpuAfter = await processCpuSeconds(server.pid);
    const cpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
    run.serverCpuMicrosPerRequest = cpuSeconds === undefined || run.totalRequests === 0 ? Number.NaN : (cpuSeconds * 1e6) / run.totalRequests;
    return run;
  };

  const problems = [];
  if (settings.warmupSeconds > 0) {
    for (const scenario of scenarios) {
      for (const role of ROLES) {
        const { label } = scenario[role];
        log(`warm-up ${scenario.title} on ${label} (${settings.warmupSeconds} s, not counted)`);
        const run = await load(scenario, role, settings.warmupSeconds);
        checkpoint();
        problems.push(...runProblems(run, `${scenario.title} warm-up ${role} ${label}`, scenario[role].units));
      }
    }
  }

  const results = scenarios.map((scenario) => ({
    scenario,
    referenceLabel: scenario.reference.label,
    targetLabel: scenario.target.label,
    connections: connectionsOf(scenario, settings),
    runs: [],
  }));
  for (let round = 1; round <= settings.rounds; round += 1) {
    for (const result of results) {
      const { scenario } = result;
      let order = 0;
      let referenceRps;
      for (const role of ROLES) {
        order += 1;
        const run = await load(scenario, role, settings.durationSeconds);
        checkpoint();
        const entry = { ...run, round, order, role, label: scenario[role].label };
        if (role === 'reference') referenceRps = run.requestsPerSecond;
        else entry.ratioToReference = run.requestsPerSecond / referenceRps;
        result.runs.push(entry);
        problems.push(...runProblems(run, `${scenario.title} round ${round} ${role} ${entry.label}`, scenario[role].units));
        const units = scenario[role].units;
        log(
          `round ${round}/${settings.rounds} ${scenario.title} ${entry.label}: ${format.fmtInt(run.requestsPerSecond)} req/s, ` +
            (units ? `${format.fmtInt(run.unitsPerSecond)} ${units.name}/s, ` : '') +
            `p99 ${format.fmtMs(run.latencyP99Ms)} ms, server CPU ${format.fmtMicros(run.serverCpuMicrosPerRequest)} us/request, ` +
            `non-2xx ${run.non2xx}, errors ${run.errors}, timeouts ${run.timeouts}`,
        );
      }
    }
  }

  for (const result of results) {
    const pick = (role) => result.runs.filter((run) => run.role === role);
    const summarize = (runs) => ({
      requestsPerSecond: median(runs.map((run) => run.requestsPerSecond)),
      latencyP99Ms: median(runs.map((run) => run.latencyP99Ms)),
      serverCpuMicrosPerRequest: median(runs.map((run) => run.serverCpuMicrosPerRequest)),
      unitsPerSecond: median(runs.map((run) => run.unitsPerSecond ?? Number.NaN)),
    });
    const reference = summarize(pick('reference'));
    const target = summarize(pick('target'));
    result.medians = { reference, target, ratio: target.requestsPerSecond / reference.requestsPerSecond };
  }

  return { results, problems, machine, databaseName: database.name, startedAt };
}

/** Undo everything, each step bounded and independent; returns the problems met. */
async function cleanup(settings) {
  const problems = [];
  stopActiveLoad();
  // Stop in reverse start order (Bulwark, started after the reference, goes first).
  const ids = [...state.servers.keys()].reverse();
  for (const id of ids) {
    const server = state.servers.get(id);
    const started = Date.now();
    try {
      const ended = await server.stop(settings.stopGraceMs);
      state.shutdowns.push({ label: systems[id].label, ms: Date.now() - started, ...ended });
      log(`${systems[id].label} ${ended.how} (code ${ended.code}, signal ${ended.signal ?? 'none'}) after ${Date.now() - started} ms`);
      if (ended.how.includes('SIGKILL')) problems.push(`${systems[id].label} ${ended.how}`);
    } catch (error) {
      problems.push(`stopping ${systems[id].label}: ${error.message}`);
    }
  }
  if (state.databaseCreation) {
    try {
      // A creation that failed left nothing to drop (its error is already the run's failure).
      const database = await withTimeout(
        state.databaseCreation.catch(() => undefined),
        45_000,
        'waiting for the database creation',
      );
      if (database) {
        await withTimeout(dropScratchDatabase(settings.postgresAdminUrl, database.name), 45_000, 'dropping the database');
        log(`database ${database.name} dropped`);
      }
    } catch (error) {
      problems.push(`dropping the scratch database: ${error.message}`);
    }
  }
  if (state.dataDir) {
    try {
      await rm(state.dataDir, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      problems.push(`removing ${state.dataDir}: ${error.message}`);
    }
  }
  return problems;
}

async function main() {
  if (scenarios.length === 0) {
    process.stdout.write('[bench] BENCH_ONLY names no scenario of bench/run.mjs; nothing to run here\n');
    return 0;
  }
  const settings = loadSettings();
  const startedAt = new Date().toISOString();
  const runs = scenarios.length * 2 * settings.rounds;
  const setups = scenarios.filter((scenario) => scenario.setup).length;
  const budgetMs =
    (runs * (settings.durationSeconds + 15) + scenarios.length * 2 * (settings.warmupSeconds + 15) + setups * 45) * 1_000 +
    4 * settings.startupTimeoutMs +
    60_000;
  const deadline = setTimeout(() => abort(`the whole benchmark exceeded its ${Math.round(budgetMs / 1000)} s budget`), budgetMs);
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => abort(`received ${signal}`));

  let outcome;
  let failure;
  try {
    outcome = await Promise.race([measure(settings, startedAt), aborted]);
  } catch (error) {
    failure = error;
  }
  clearTimeout(deadline);

  // Cleanup gets its own hard bound: if it ever hangs, exit anyway and say what may be left.
  const hardStop = setTimeout(() => {
    process.stderr.write('[bench] cleanup did not finish within 90 s; exiting. A server or bulwark_bench_* database may be left behind.\n');
    process.exit(1);
  }, 90_000);
  const cleanupProblems = await cleanup(settings);
  clearTimeout(hardStop);

  if (failure) {
    process.stderr.write(redact(`\n[bench] FAILED: ${failure instanceof AbortedError ? `aborted: ${failure.message}` : failure.stack ?? failure}\n`));
    for (const problem of cleanupProblems) process.stderr.write(redact(`[bench] cleanup problem: ${problem}\n`));
    return 1;
  }

  const machineSummary = renderSummary({ results: outcome.results, settings, machine: outcome.machine });
  if (outcome.problems.length > 0) {
    process.stdout.write(redact(`${machineSummary}\n`));
    process.stderr.write(
      redact(
        `\n[bench] FAILED: invalid runs, ${path.relative(PROJECT_DIR, RESULTS_FILE)} not written:\n` +
          outcome.problems.map((problem) => `  - ${problem}\n`).join(''),
      ),
    );
    for (const problem of cleanupProblems) process.stderr.write(redact(`[bench] cleanup problem: ${problem}\n`));
    return 1;
  }

  const markdown = renderMarkdown({
    ...outcome,
    settings,
    systemsUsed: systemIdsUsed.map((id) => systems[id]),
    shutdowns: state.shutdowns,
    finishedAt: new Date().toISOString(),
  });
  if ([...secrets].some((secret) => markdown.includes(secret) || machineSummary.includes(secret))) {
    process.stderr.write(`\n[bench] FAILED: a secret of this run would appear in the results; ${path.relative(PROJECT_DIR, RESULTS_FILE)} not written\n`);
    return 1;
  }
  await writeFile(RESULTS_FILE, markdown);
  process.stdout.write(`${machineSummary}\nWrote ${path.relative(PROJECT_DIR, RESULTS_FILE)}\n`);

  if (cleanupProblems.length > 0) {
    for (const problem of cleanupProblems) process.stderr.write(redact(`[bench] cleanup problem: ${problem}\n`));
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(redact(`[bench] FAILED: ${error.stack ?? error}\n`));
    process.exit(1);
  },
);
