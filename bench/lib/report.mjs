// Renders results as Markdown (bench/RESULTS.md) and as a short plain-text summary.

const fmtInt = (value) => Math.round(value).toLocaleString('en-US');
// autocannon's latency histogram has 1 ms resolution: show whole numbers as such.
const fmtMs = (value) => (!Number.isFinite(value) ? 'n/a' : Number.isInteger(value) ? String(value) : value.toFixed(1));
const fmtMicros = (value) => (Number.isFinite(value) ? value.toFixed(1) : 'n/a');
const fmtRatio = (value) => (Number.isFinite(value) ? value.toFixed(2) : 'n/a');
const gib = (bytes) => (bytes / 1024 ** 3).toFixed(1);

export function headline(result) {
  const { scenario, referenceLabel, targetLabel, medians } = result;
  return (
    `${scenario.title}: ${targetLabel} ${fmtInt(medians.target.requestsPerSecond)} req/s vs ` +
    `${referenceLabel} ${fmtInt(medians.reference.requestsPerSecond)} req/s = ratio ${fmtRatio(medians.ratio)} ` +
    `(target >= ${scenario.targetRatio})`
  );
}

function verdict(result) {
  return result.medians.ratio >= result.scenario.targetRatio ? 'meets the target' : 'BELOW the target';
}

function statusSummary(run) {
  return Object.entries(run.statusCodes)
    .map(([code, count]) => `${code}: ${fmtInt(count)}`)
    .join(', ');
}

function scenarioSection(result, settings) {
  const { scenario, runs, medians, referenceLabel, targetLabel } = result;
  const lines = [
    `## ${scenario.title}`,
    '',
    `Reference: ${referenceLabel}. Target: ${targetLabel}. Each run: ${settings.connections} connections, ` +
      `pipelining ${settings.pipelining}, ${settings.durationSeconds} s.`,
    '',
    ...(scenario.notes ?? []).flatMap((note) => [note, '']),
    '| Round | Order | Server | req/s (mean) | p50 latency (ms) | p99 latency (ms) | max latency (ms) | server CPU (us/request) | requests | non-2xx | errors | timeouts | target/reference req/s |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const run of runs) {
    const ratio = run.role === 'target' ? fmtRatio(run.ratioToReference) : '';
    lines.push(
      `| ${run.round} | ${run.order} | ${run.label} | ${fmtInt(run.requestsPerSecond)} | ${fmtMs(run.latencyP50Ms)} | ` +
        `${fmtMs(run.latencyP99Ms)} | ${fmtMs(run.latencyMaxMs)} | ${fmtMicros(run.serverCpuMicrosPerRequest)} | ${fmtInt(run.totalRequests)} | ${run.non2xx} | ` +
        `${run.errors} | ${run.timeouts} | ${ratio} |`,
    );
  }
  const medianRow = (label, figures, ratio) =>
    `| **median** | | ${label} | **${fmtInt(figures.requestsPerSecond)}** | | **${fmtMs(figures.latencyP99Ms)}** | | ` +
    `${fmtMicros(figures.serverCpuMicrosPerRequest)} | | | | | ${ratio} |`;
  lines.push(
    medianRow(referenceLabel, medians.reference, ''),
    medianRow(targetLabel, medians.target, `**${fmtRatio(medians.ratio)}**`),
    '',
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
      `${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.durationSeconds} s per run, ` +
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
      (results.some((result) => result.scenario.id === 'account-api-key') ? '; GET /api/account with an API key does (see its section).' : '.'),
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
    `autocannon: ${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.durationSeconds} s per run; Bulwark LOG_LEVEL=${settings.serverLogLevel}`,
  ];
  for (const result of results) {
    lines.push(
      `${headline(result)} - ${verdict(result)}`,
      `  p99 latency: ${result.targetLabel} ${fmtMs(result.medians.target.latencyP99Ms)} ms vs ${result.referenceLabel} ` +
        `${fmtMs(result.medians.reference.latencyP99Ms)} ms (medians)`,
      `  server CPU per request: ${result.targetLabel} ${fmtMicros(result.medians.target.serverCpuMicrosPerRequest)} us vs ` +
        `${result.referenceLabel} ${fmtMicros(result.medians.reference.serverCpuMicrosPerRequest)} us (medians)`,
    );
  }
  return lines.join('\n');
}

export const format = { fmtInt, fmtMs, fmtMicros, fmtRatio };
