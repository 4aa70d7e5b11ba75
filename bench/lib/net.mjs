import http from 'node:http';
import net from 'node:net';

/** A port that was free on 127.0.0.1 a moment ago (the child binds it right after). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** One HTTP request (with an optional string body) and a hard timeout; resolves { status, headers, body }. */
export function httpRequest({ host, port, method = 'GET', path, headers = {}, body, timeoutMs = 2_000 }) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host, port, method, path, headers, agent: false, timeout: timeoutMs }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}
