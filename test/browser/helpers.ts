/// <reference lib="dom" />
// Callbacks passed to page.evaluate run in the browser: they see the DOM types.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { describe, expect } from 'vitest';
import { projectRoot, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * Browser tests (UI-1): playwright-core driving Debian's chromium (`apt-get install -y
 * chromium`, which .ci/run does), against the service started as its own process with
 * the in-process Stripe sandbox, on ephemeral ports. In CI a missing chromium fails the
 * run; elsewhere these tests are skipped with a warning.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const inCi = process.env.CI === 'true' || process.env.CI === '1';
const hasChromium = existsSync(CHROMIUM_PATH);

/** Flags for a quiet, offline, reproducible chromium (DEVELOPERS notes in README). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** describe() that needs chromium: skipped with a warning outside CI, failing in CI. */
export function describeWithBrowser(name: string, body: () => void): void {
  if (hasChromium) {
    describe(name, body);
    return;
  }
  if (inCi) {
    describe(name, () => {
      throw new Error(`chromium is not installed at ${CHROMIUM_PATH}: CI requires it (apt-get install -y chromium; .ci/run does)`);
    });
    return;
  }
  console.warn(`\n[bulwark tests] chromium not found at ${CHROMIUM_PATH}: the browser tests "${name}" are SKIPPED (apt-get install -y chromium).\n`);
  describe.skip(name, body);
}

export interface StartedService {
  readonly server: ServerProcess;
  readonly url: string;
  readonly adminToken: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/**
 * The service as a developer runs it (NODE_ENV=development: in-process Stripe sandbox,
 * outbox mail, default rate limits), from source through tsx so that no test races
 * another on dist/. The admin token is generated here, at run time.
 */
export async function startService(env: Record<string, string> = {}): Promise<StartedService> {
  const cwd = mkdtempSync(path.join(tmpdir(), 'bulwark-browser-'));
  const adminToken = randomBytes(32).toString('hex');
  const server = await startServerProcess({
    cwd,
    entry: 'source',
    env: { NODE_ENV: 'development', PORT: '0', STRIPE_SANDBOX_PORT: '0', ADMIN_API_TOKEN: adminToken, JOBS_ENABLED: 'false', ...env },
    startTimeoutMs: 60_000,
  });
  // The service listens on 127.0.0.1; browsers treat "localhost" the same, but one name keeps cookies simple.
  return {
    server,
    url: server.url,
    adminToken,
    dataDir: path.join(cwd, 'data'),
    async stop() {
      if (server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await server.exited;
      }
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

/**
 * Playwright gives every launch a fresh, temporary --user-data-dir of its own. A cold
 * chromium on a loaded 2-core machine (the parallel suite, a service starting beside it)
 * once took more than 30 s to open its pipe, so a launch gets 90 s and one more try
 * before the suite fails.
 */
export async function launchBrowser(): Promise<Browser> {
  const launch = () => chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 90_000 });
  try {
    return await launch();
  } catch (error) {
    console.warn(`chromium did not start (${(error as Error).message.split('\n')[0]}); trying once more`);
    return launch();
  }
}

export interface PageProblems {
  /** Console errors, uncaught exceptions, CSP violations and 5xx answers seen so far. */
  list(): Promise<string[]>;
}

/**
 * Watches a page for everything that must not happen: a console error, an uncaught
 * exception, a Content-Security-Policy violation (also reported by the
 * securitypolicyviolation event), an answer of 500 or more. Chromium also logs every 4xx
 * answer as "Failed to load resource"; those are expected answers (a wrong password, a
 * logged-out probe) that the tests assert on the page itself, so they are not problems.
 */
export async function watchPage(page: Page): Promise<PageProblems> {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    problems.push(`console: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`exception: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 500) problems.push(`${response.status()} from ${response.request().method()} ${response.url()}`);
  });
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __cspViolations: string[] }).__cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (event) => seen.push(`${event.violatedDirective} ${event.blockedURI}`));
  });
  return {
    async list() {
      const csp = await page.evaluate(() => (window as unknown as { __cspViolations?: string[] }).__cspViolations ?? []).catch(() => []);
      return [...problems, ...csp.map((violation) => `CSP violation: ${violation}`)];
    },
  };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core on the page as it is (WCAG 2.1 A and AA rules): the serious and critical
 * violations, each with the elements concerned. Evaluated through the DevTools protocol,
 * not injected as a script tag, so the page's CSP stays as it is.
 */
export async function seriousAccessibilityProblems(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (context: Document, options: object) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return result.violations.map((violation) => ({ id: violation.id, impact: violation.impact, help: violation.help, targets: violation.nodes.map((node) => JSON.stringify(node.target)) }));
  });
  return violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.impact} ${violation.id}: ${violation.help} at ${violation.targets.join(', ')}`);
}

/** Whether the page scrolls sideways (it must not, on a phone). */
export async function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
}

/**
 * Where screenshots go: docs/screenshots/ with UPDATE_SCREENSHOTS=1 (`npm run
 * screenshots`), else a temporary folder, so an ordinary test run leaves the work tree alone.
 */
export function screenshotFolder(): { folder: string; cleanup(): void } {
  if (process.env.UPDATE_SCREENSHOTS === '1') {
    const folder = path.join(projectRoot, 'docs/screenshots');
    mkdirSync(folder, { recursive: true });
    return { folder, cleanup: () => undefined };
  }
  const folder = mkdtempSync(path.join(tmpdir(), 'bulwark-screenshots-'));
  return { folder, cleanup: () => rmSync(folder, { recursive: true, force: true }) };
}

/** Checks a page the way every browser test does: no problems, no serious accessibility violations. */
export async function expectCleanPage(page: Page, problems: PageProblems, what: string): Promise<void> {
  expect(await seriousAccessibilityProblems(page), `accessibility of ${what}`).toEqual([]);
  expect(await problems.list(), `problems on ${what}`).toEqual([]);
}

/**
 * The address of the service's in-process Stripe sandbox, from the service's log line
 * "Stripe sandbox listening": its /_sandbox/ controls (faults, deliveries) that the
 * service does not forward.
 */
export function sandboxUrlOf(service: StartedService): string {
  for (const line of service.server.output().split('\n')) {
    if (!line.includes('"Stripe sandbox listening"')) continue;
    const url = (JSON.parse(line) as { url?: unknown }).url;
    if (typeof url === 'string') return url;
  }
  throw new Error('the service did not log the address of its Stripe sandbox');
}

/** A port free right now on 127.0.0.1 (the service's success URL for Stripe is built from its port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The credit pack the billing suites buy: 250 credits for 15.00 USD. */
export const BROWSER_PACK = { id: 'pack_250', name: '250 credits', credits: 250, priceCents: 1500, currency: 'usd' } as const;

/**
 * Puts a credit pack into the started service's catalogue, in its PostgreSQL database (the
 * catalogue's change feed tells the service at once). No route sells packs into the catalogue.
 */
export async function addCreditPack(databaseUrl: string, pack: typeof BROWSER_PACK): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('INSERT INTO credit_packs (id, name, credits, price_cents, currency) VALUES ($1, $2, $3, $4, $5)', [pack.id, pack.name, pack.credits, pack.priceCents, pack.currency]);
  } finally {
    await client.end();
  }
}

/**
 * On the sandbox's hosted checkout page (a plain HTML form of the service's /sandbox
 * routes): types the card into the form and submits it; the page redirects (303) to the
 * service's success URL.
 */
export async function payOnHostedPage(page: Page, card = '4242 4242 4242 4242'): Promise<void> {
  await page.getByRole('heading', { name: 'Sandbox checkout', level: 1 }).waitFor();
  await page.getByLabel(/^Card number/).fill(card);
  await page.getByRole('button', { name: /^(Pay |Start trial)/ }).click();
}

/** A person signed up over HTTP in `context` (its cookies); answers the account id. */
export async function signUpInContext(context: BrowserContext, service: StartedService, person: { email: string; password: string; name: string }): Promise<string> {
  const response = await context.request.post(`${service.url}/auth/signup`, { data: person });
  if (response.status() !== 201) throw new Error(`sign-up answered ${response.status()}: ${await response.text()}`);
  return ((await response.json()) as { account: { id: string } }).account.id;
}

/** The readable CSRF cookie of a signed-in context, for its unsafe requests. */
export async function csrfOf(context: BrowserContext): Promise<string> {
  return (await context.cookies()).find((cookie) => cookie.name === 'csrf_token')?.value ?? '';
}
