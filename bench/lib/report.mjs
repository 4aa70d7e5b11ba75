// Renders results as Markdown (bench/RESULTS.md) and as a short plain-text summary.

const fmtInt = (value) => Math.round(value).toLocaleString('en-US');
// autocannon's latency histogram has 1 ms resolution: show whole numbers as such.
const fmtMs = (value) => (!Number.isFinite(value) ? 'n/a' : Number.isInteger(value) ? String(value) : value.toFixed(1));
const fmtMicros = (value) => (Number.isFinite(value) ? value.toFixed(1) : 'n/a');
const fmtRatio = (value) => (Number.isFinite(value) ? value.toFixed(2) : 'n/a');
const gib = (bytes) => (bytes / 1024 ** 3).toFixed(1);

/** The target role's units with a per-second target (e.g. usage events), if any: then the headline is units/s. */
const unitsTargetOf = (result) => (result.scenario.target.units?.perSecondTarget ? result.scenario.target.units : undefined);

export function headline(result) {
  const { scenario, referenceLabel, targetLabel, medians, connections } = result;
  const units = unitsTargetOf(result);
  const comparison =
    `${targetLabel} ${fmtInt(medians.target.requestsPerSecond)} req/s (p99 ${fmtMs(medians.target.latencyP99Ms)} ms) vs ` +
    `${referenceLabel} ${fmtInt(medians.reference.requestsPerSecond)} req/s (p99 ${fmtMs(medians.reference.latencyP99Ms)} ms) ` +
    `= ratio ${fmtRatio(medians.ratio)}`;
  if (units) {
    return (
      `${scenario.title}: ${fmtInt(medians.target.unitsPerSecond)} ${units.name}/s = ` +
      `${fmtRatio(medians.target.unitsPerSecond / units.perSecondTarget)}x the target of ${fmtInt(units.perSecondTarget)} ${units.name}/s ` +
      `(${connections} connections; ${comparison}, for reference)`
    );
  }
  return `${scenario.title}: ${comparison} at ${connections} connections (target >= ${scenario.targetRatio})`;
}

function verdict(result) {
  const units = unitsTargetOf(result);
  const met = units ? result.medians.target.unitsPerSecond >= units.perSecondTarget : result.medians.ratio >= result.scenario.targetRatio;
  return met ? 'meets the target' : 'BELOW the target';
}

function statusSummary(run) {
  return Object.entries(run.statusCodes)
    .map(([code, count]) => `${code}: ${fmtInt(count)}`)
    .join(', ');
}

function scenarioSection(result, settings) {
  const { scenario, runs, medians, referenceLabel, targetLabel, connections } = result;
  const units = scenario.target.units;
  const unitsHeader = units ? ` ${units.name}/s | ${units.name} |` : '';
  const unitsAlign = units ? '---:|---:|' : '';
  const unitsCells = (run) => (!units ? '' : run.role === 'target' ? ` ${fmtInt(run.unitsPerSecond)} | ${fmtInt(run.units)} |` : ' | |');
  const lines = [
    `## ${scenario.title}`,
    '',
    `Reference: ${referenceLabel}. Target: ${targetLabel}. Each run: ${connections} connections` +
      `${connections === settings.connections ? '' : ' (this scenario\'s own setting)'}, ` +
      `pipelining ${settings.pipelining}, ${settings.durationSeconds} s.`,
    '',
    ...(scenario.notes ?? []).flatMap((note) => [note, '']),
    `| Round | Order | Server | req/s (mean) | p50 latency (ms) | p99 latency (ms) | max latency (ms) | server CPU (us/request) | requests | non-2xx | errors | timeouts |${unitsHeader} target/reference req/s |`,
    `|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${unitsAlign}---:|`,
  ];
  for (const run of runs) {
    const ratio = run.role === 'target' ? fmtRatio(run.ratioToReference) : '';
    lines.push(
      `| ${run.round} | ${run.order} | ${run.label} | ${fmtInt(run.requestsPerSecond)} | ${fmtMs(run.latencyP50Ms)} | ` +
        `${fmtMs(run.latencyP99Ms)} | ${fmtMs(run.latencyMaxMs)} | ${fmtMicros(run.serverCpuMicrosPerRequest)} | ${fmtInt(run.totalRequests)} | ${run.non2xx} | ` +
        `${run.errors} | ${run.timeouts} |${unitsCells(run)} ${ratio} |`,
    );
  }
  const medianRow = (label, figures, ratio, role) =>
    `| **median** | | ${label} | **${fmtInt(figures.requestsPerSecond)}** | | **${fmtMs(figures.latencyP99Ms)}** | | ` +
    `${fmtMicros(figures.serverCpuMicrosPerRequest)} | | | | |` +
    `${!units ? '' : role === 'target' ? ` **${fmtInt(figures.unitsPerSecond)}** | |` : ' | |'} ${ratio} |`;
  lines.push(
    medianRow(referenceLabel, medians.reference, '', 'reference'),
    medianRow(targetLabel, medians.target, `**${fmtRatio(medians.ratio)}**`, 'target'),
    '',
    ...(units
      ? [
          `${units.name}/s = ${units.name} counted in the target's answers during the run / the run's duration; every 2xx ` +
            `answer was checked to count exactly ${units.perResponse}.` +
            (units.perSecondTarget
              ? ` Median ${fmtInt(medians.target.unitsPerSecond)} ${units.name}/s = ` +
                `**${fmtRatio(medians.target.unitsPerSecond / units.perSecondTarget)}x** the target of ${fmtInt(units.perSecondTarget)} ${units.name}/s.`
              : ''),
          '',
        ]
      : []),
    `Ratio = median ${targetLabel} req/s / median ${referenceLabel} req/s; the last column gives each round's own ratio ` +
      `(against the reference run just before it). Latencies come from autocannon, which records whole milliseconds. Server CPU = user + system CPU time of the server process during ` +
      `the run (from /proc, Linux only) divided by the requests it answered: a secondary figure, much steadier than ` +
      `req/s on a noisy machine (CPU ratio ${targetLabel}/${referenceLabel}: ` +
      `${fmtRatio(medians.target.serverCpuMicrosPerRequest / medians.reference.serverCpuMicrosPerRequest)}x). Status codes seen: ` +
      runs.map((run) => `round ${run.round} ${run.label} {${statusSummary(run)}}`).join('; ') +
      '.',
    '',
  );
  return lines.join('\n');
}

export function renderMarkdown({ results, settings, machine, systemsUsed, shutdowns, databaseName, startedAt, finishedAt }) {
  const lines = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` (bench/run.mjs); overwritten on every successful run. Started ${startedAt}, finished ${finishedAt}.`,
    '',
    `> The figures are **medians of ${settings.rounds} alternating runs** (reference, Bulwark, reference, Bulwark, ...) ` +
      'on a **shared, noisy machine**. Absolute requests/second depend on the machine and the moment; read them as ' +
      '**ratios to a reference measured in the same run**, on the same machine, interleaved with Bulwark so that noise ' +
      'hits both. This is a measurement, not a test: nothing asserts on these numbers.',
    '',
    '## Headline',
    '',
    ...results.map((result) => `- **${headline(result)}** - ${verdict(result)}`),
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpuModel} x ${machine.cpuCount} logical CPUs`,
    `- Memory: ${gib(machine.totalMemoryBytes)} GiB total`,
    `- OS: ${machine.platform} ${machine.release} (${machine.arch})`,
    `- Node: ${machine.nodeVersion}`,
    `- Load average (1/5/15 min) at start: ${machine.loadAverage.map((value) => value.toFixed(2)).join(' / ')}`,
    '',
    '## Settings',
    '',
    `- Load generator: autocannon ${machine.autocannonVersion} (programmatic API, in the benchmark's own process), ` +
      `${settings.connections} connections (unless a scenario sets its own: see each section), pipelining ${settings.pipelining}, ${settings.durationSeconds} s per run, ` +
      `${settings.rounds} rounds; ${settings.warmupSeconds} s warm-up per server before round 1, not counted. ` +
      'Override with BENCH_CONNECTIONS, BENCH_DURATION_SECONDS, BENCH_ROUNDS, BENCH_WARMUP_SECONDS.',
    '- All traffic on 127.0.0.1, Host header `127.0.0.1`, HTTP/1.1 keep-alive.',
    `- Load generator and servers share the machine's ${machine.cpuCount} CPUs, so each server competes with autocannon for CPU.`,
    ...systemsUsed.map((system) => `- ${system.label}: ${system.description}.`),
    `- Bulwark runs with **LOG_LEVEL=${settings.serverLogLevel}** so that logging does not dominate: its per-request ` +
      '"request completed" line is at info level and is not written. With the default LOG_LEVEL=info every request ' +
      'also writes a JSON log line to stdout, which costs throughput.',
    `- Bulwark's database: a fresh PostgreSQL database \`${databaseName}\` created for the run and dropped (WITH (FORCE)) ` +
      'afterwards; DATA_DIR is a temporary directory, removed afterwards. /health does not touch the database' +
      (results.some((result) => result.scenario.setup) ? '; the API-key routes do (see their sections).' : '.'),
    '',
    ...results.map((result) => scenarioSection(result, settings)),
    '## Shutdown',
    '',
    ...shutdowns.map(
      (entry) => `- ${entry.label}: ${entry.how} (exit code ${entry.code}, signal ${entry.signal ?? 'none'}) after ${entry.ms} ms.`,
    ),
    '',
  ];
  return lines.join('\n');
}

export function renderSummary({ results, settings, machine }) {
  const lines = [
    '',
    `Benchmark summary (medians of ${settings.rounds} alternating runs; ratios to a reference measured in the same run, on a shared, noisy machine)`,
    `${machine.cpuModel} x ${machine.cpuCount}, ${gib(machine.totalMemoryBytes)} GiB, ${machine.platform} ${machine.release}, Node ${machine.nodeVersion}`,
    `autocannon: ${settings.connections} connections (unless a scenario sets its own), pipelining ${settings.pipelining}, ${settings.durationSeconds} s per run; Bulwark LOG_LEVEL=${settings.serverLogLevel}`,
  ];
  for (const result of results) {
    lines.push(
      `${headline(result)} - ${verdict(result)}`,
      `  p99 latency: ${result.targetLabel} ${fmtMs(result.medians.target.latencyP99Ms)} ms vs ${result.referenceLabel} ` +
        `${fmtMs(result.medians.reference.latencyP99Ms)} ms (medians)`,
      ...(result.scenario.target.units
        ? [`  ${result.scenario.target.units.name}/s: ${fmtInt(result.medians.target.unitsPerSecond)} (median)`]
        : []),
      `  server CPU per request: ${result.targetLabel} ${fmtMicros(result.medians.target.serverCpuMicrosPerRequest)} us vs ` +
        `${result.referenceLabel} ${fmtMicros(result.medians.reference.serverCpuMicrosPerRequest)} us (medians)`,
    );
  }
  return lines.join('\n');
}

export const format = { fmtInt, fmtMs, fmtMicros, fmtRatio };
