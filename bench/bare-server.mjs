// The reference for benchmarks: a bare node:http server, run as its own process (as Bulwark
// is), answering each benchmarked route with the same status, content type and body as
// Bulwark and nothing else. Add a route here when a scenario needs a new reference answer.
import http from 'node:http';

const HEALTH_BODY = JSON.stringify({ status: 'ok' });

/** "METHOD path" -> [status, content type, body]. */
const routes = new Map([['GET /health', [200, 'application/json; charset=utf-8', HEALTH_BODY]]]);

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? '0');

const server = http.createServer((request, response) => {
  const path = (request.url ?? '/').split('?', 1)[0];
  const route = routes.get(`${request.method} ${path}`);
  const [status, contentType, body] = route ?? [404, 'application/json; charset=utf-8', '{"error":"not found"}'];
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  response.end(body);
});

server.listen(port, host);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2_000).unref();
  });
}
