import autocannon from 'autocannon';

let active;

/** Stops the load run in progress, if any (used when the whole benchmark is aborted). */
export function stopActiveLoad() {
  active?.stop();
}

/**
 * One autocannon run against a server on 127.0.0.1. Resolves the figures we keep; the run is
 * bounded by its duration, and by a watchdog in case autocannon itself never finishes.
 */
export function runLoad({ host, port, request, connections, durationSeconds, pipelining }) {
  return new Promise((resolve, reject) => {
    const watchdog = setTimeout(() => {
      instance.stop();
      reject(new Error(`autocannon did not finish within ${durationSeconds + 30} s`));
    }, (durationSeconds + 30) * 1_000);
    const instance = autocannon(
      {
        url: `http://${host}:${port}${request.path}`,
        method: request.method,
        headers: { host: '127.0.0.1', ...request.headers },
        body: request.body,
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
        });
      },
    );
    active = instance;
  });
}
