import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const projectRoot = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  readonly child: ChildProcess;
  /** http://host:port from the server's "listening" log line. */
  readonly url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  readonly exited: Promise<number | null>;
}

export interface StartOptions {
  readonly cwd: string;
  /** The whole environment of the process (PATH is added). */
  readonly env: Record<string, string>;
  /**
   * 'dist' runs the compiled dist/server.js exactly as `npm start` does (the caller builds
   * it first); 'source' runs src/server.ts through tsx, for tests that need a real process
   * but not the shipped artefact (no build, so nothing races on dist/).
   */
  readonly entry?: 'dist' | 'source';
  readonly startTimeoutMs?: number;
}

/** Starts the service in its own process and waits for its "Bulwark listening on" line. */
export async function startServerProcess(options: StartOptions): Promise<ServerProcess> {
  const args =
    options.entry === 'source'
      ? ['--import', pathToFileURL(path.join(projectRoot, 'node_modules/tsx/dist/loader.mjs')).href, path.join(projectRoot, 'src/server.ts')]
      : [path.join(projectRoot, 'dist/server.js')];
  const child = spawn(process.execPath, args, { cwd: options.cwd, env: { PATH: process.env.PATH ?? '', ...options.env }, stdio: 'pipe' });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), options.startTimeoutMs ?? 30_000);
    const onData = () => {
      const match = /Bulwark listening on (http:\/\/[^"\s]+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening:\n${output}`));
    });
  });
  return { child, url, output: () => output, exited };
}
