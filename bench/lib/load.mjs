import autocannon from 'autocannon';

let active;

/** Stops the load run in progress, if any (used when the whole benchmark is aborted). */
export function stopActiveLoad() {
  active?.stop();
}

/**
 * One autocannon run against a server on 127.0.0.1. Resolves the figures we keep; the run is
 * bounded by its duration, and by a watchdog in case autocannon itself never finishes.
 *
 * `request.body` may be a string or a function returning a fresh body for every request
 * (e.g. new idempotency keys each time). `countUnits(status, body)`, when given, is called
 * on every response and its results are summed into `units` (e.g. events accepted, or
 * answers that said allowed:true), so a run can show what its 2xx answers actually did.
 */
export function runLoad({ host, port, request, connections, durationSeconds, pipelining, countUnits }) {
  return new Promise((resolve, reject) => {
    const watchdog = setTimeout(() => {
      instance.stop();
      reject(new Error(`autocannon did not finish within ${durationSeconds + 30} s`));
    }, (durationSeconds + 30) * 1_000);
    const freshBody = typeof request.body === 'function' ? request.body : undefined;
    let units = 0;
    let counted = 0;
    const perRequest = {};
    if (freshBody) perRequest.setupRequest = (built) => ({ ...built, body: freshBody() });
    if (countUnits) {
      perRequest.onResponse = (status, body) => {
        counted += 1;
        units += countUnits(status, body);
      };
    }
    const dynamic = Object.keys(perRequest).length > 0;
    const instance = autocannon(
      {
        url: `http://${host}:${port}${request.path}`,
        method: request.method,
        headers: { host: '127.0.0.1', ...request.headers },
        ...(freshBody ? {} : { body: request.body }),
        ...(dynamic ? { requests: [perRequest] } : {}),
        connections,
        duration: durationSeconds,
        pipelining,
        timeout: 10,
      },
      (error, result) => {
        clearTimeout(watchdog);
        if (active === instance) active = undefined;
        if (error) {
          reject(error);
          return;
        }
        resolve({
          requestsPerSecond: result.requests.average,
          latencyP50Ms: result.latency.p50,
          latencyP99Ms: result.latency.p99,
          latencyMaxMs: result.latency.max,
          totalRequests: result.requests.total,
          status2xx: result['2xx'],
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count])),
          durationSeconds: result.duration,
          ...(countUnits ? { units, unitsCounted: counted, unitsPerSecond: units / result.duration } : {}),
        });
      },
    );
    active = instance;
  });
}
