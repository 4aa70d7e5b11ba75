// Benchmark settings, from the environment with defaults. Everything is bounded.

function integerFromEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new Error(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function loadSettings() {
  return {
    connections: integerFromEnv('BENCH_CONNECTIONS', 50, 1, 1_000),
    durationSeconds: integerFromEnv('BENCH_DURATION_SECONDS', 10, 1, 300),
    warmupSeconds: integerFromEnv('BENCH_WARMUP_SECONDS', 2, 0, 60),
    rounds: integerFromEnv('BENCH_ROUNDS', 3, 1, 15),
    pipelining: 1,
    postgresAdminUrl: process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    host: '127.0.0.1',
    serverLogLevel: 'warn',
    startupTimeoutMs: 20_000,
    stopGraceMs: 10_000,
  };
}
