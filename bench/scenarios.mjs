// What we measure. Each scenario sends one request shape to a reference system and to a
// target system (names from systems.mjs) and reports the target's throughput as a ratio
// of the reference's, measured in the same run. To add a benchmark, add an entry here (and,
// if the reference needs a new answer, a route in bare-server.mjs).
//
// `expect` is checked once against both servers before measuring, so the comparison is
// between equivalent answers; `target` is the ratio we aim for (reported, never asserted).

export const scenarios = [
  {
    id: 'health',
    title: 'GET /health',
    request: { method: 'GET', path: '/health', headers: {} },
    expect: { status: 200, contentType: /^application\/json\b/, body: '{"status":"ok"}' },
    reference: 'bare',
    target: 'bulwark',
    targetRatio: 0.6,
  },
];
