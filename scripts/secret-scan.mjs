#!/usr/bin/env node
/**
 * Secret scan (CFG-3): runs secretlint over every file git knows about in the repository
 * that contains the current working directory, and fails when anything looks like a secret.
 *
 *   node scripts/secret-scan.mjs                 # tracked files + untracked files that are not ignored
 *   node scripts/secret-scan.mjs --tracked-only  # only what `git ls-files` lists
 *
 * Untracked (not ignored) files are scanned too by default, so a key is caught before it is
 * committed; in CI's fresh clone both modes scan the same files.
 *
 * Config: the target repository's own .secretlintrc* if it has one, otherwise this project's
 * .secretlintrc.json (next to scripts/). A .secretlintignore at the target's root is honoured.
 * secretlint itself always ignores node_modules/, .git/ and its own config/ignore files.
 *
 * Exit codes: 0 nothing found, 1 secrets found (listed as file:line:column), 2 the scan
 * itself failed (not a git repository, bad config, ...).
 *
 * Findings never print the secret itself: only the first few characters of the match.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runSecretLint } from 'secretlint';

const execFileAsync = promisify(execFile);

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROJECT_CONFIG = path.join(PROJECT_ROOT, '.secretlintrc.json');
// The names rc-config-loader (secretlint's loader) accepts for a repository's own config.
const CONFIG_NAMES = [
  '.secretlintrc',
  '.secretlintrc.json',
  '.secretlintrc.yaml',
  '.secretlintrc.yml',
  '.secretlintrc.js',
  '.secretlintrc.cjs',
  '.secretlintrc.mjs',
];

class ScanError extends Error {}

async function git(args, cwd) {
  try {
    const { stdout } = await execFileAsync('git', args, { cwd, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' });
    return stdout;
  } catch (error) {
    const detail = (error.stderr || error.message || '').toString().trim();
    throw new ScanError(`git ${args.join(' ')} failed in ${cwd}: ${detail}`);
  }
}

/** Paths (relative to the repository root) of the regular files to scan. */
async function listFiles(root, trackedOnly) {
  const args = ['ls-files', '-z', '--cached'];
  if (!trackedOnly) args.push('--others', '--exclude-standard');
  const output = await git(args, root);
  const unique = new Set(output.split('\0').filter((entry) => entry.length > 0));
  // Skip what is not a regular file in the work tree: deleted-but-tracked files,
  // submodules (gitlinks are folders) and symbolic links (their target is scanned, if tracked).
  return [...unique].filter((file) => {
    try {
      return lstatSync(path.join(root, file)).isFile();
    } catch {
      return false;
    }
  });
}

function findConfig(root) {
  for (const name of CONFIG_NAMES) {
    const candidate = path.join(root, name);
    if (existsSync(candidate)) return candidate;
  }
  return PROJECT_CONFIG;
}

/** A short, harmless preview of a match: enough to find it, never the secret. */
function preview(text) {
  const firstLine = text.split('\n', 1)[0] ?? '';
  const shown = Math.min(8, Math.floor(firstLine.length / 3));
  return `${JSON.stringify(firstLine.slice(0, shown) + '…')} (${text.length} chars)`;
}

function describe(message, sourceContent) {
  const rule = message.ruleId.replace(/^@secretlint\/secretlint-rule-/, '');
  const [start, end] = Array.isArray(message.range) ? message.range : [0, 0];
  const matched = typeof sourceContent === 'string' ? sourceContent.slice(start, end) : '';
  let what;
  if (message.ruleId === '@secretlint/secretlint-rule-pattern' && typeof message.data?.PATTERN_NAME === 'string') {
    what = message.data.PATTERN_NAME;
  } else {
    // Preset rules put the secret into their message: cut every data value and the match out of it.
    what = message.message;
    const secrets = [matched, ...Object.values(message.data ?? {}).filter((value) => typeof value === 'string')];
    for (const secret of secrets.filter((value) => value.length >= 6).sort((a, b) => b.length - a.length)) {
      what = what.split(secret).join('***');
    }
  }
  return `[${rule}] ${what}${matched ? ` — ${preview(matched)}` : ''}`;
}

async function main() {
  const trackedOnly = process.argv.includes('--tracked-only');
  const started = performance.now();
  const root = (await git(['rev-parse', '--show-toplevel'], process.cwd())).trim();
  const files = await listFiles(root, trackedOnly);
  const configFilePath = findConfig(root);
  const relativeConfig = path.relative(process.cwd(), configFilePath);
  const configLabel = relativeConfig.startsWith('..') ? configFilePath : relativeConfig;

  if (files.length === 0) {
    console.log(`secret scan: OK, no files to scan in ${root}`);
    return 0;
  }

  const ignoreFile = path.join(root, '.secretlintignore');
  let result;
  try {
    result = await runSecretLint({
      cliOptions: {
        cwd: root,
        filePathOrGlobList: files,
        noGlob: true,
        ...(existsSync(ignoreFile) ? { ignoreFilePath: ignoreFile } : {}),
      },
      engineOptions: {
        cwd: root,
        configFilePath,
        formatter: 'json',
        color: false,
        // Masking would also hide the pattern names; describe() keeps secrets out instead.
        maskSecrets: false,
      },
    });
  } catch (error) {
    throw new ScanError(`secretlint failed (config ${configLabel}): ${error instanceof Error ? error.message : error}`);
  }
  if (result.stderr) throw new ScanError(`secretlint failed: ${result.stderr.message ?? result.stderr}`);

  let reports;
  try {
    reports = JSON.parse(result.stdout ?? '[]');
  } catch {
    throw new ScanError('secretlint printed output that is not JSON');
  }

  const findings = [];
  for (const report of reports) {
    const file = path.relative(process.cwd(), report.filePath);
    for (const message of report.messages ?? []) {
      const line = message.loc?.start?.line ?? 0;
      const column = (message.loc?.start?.column ?? 0) + 1;
      findings.push({ file, line, column, text: describe(message, report.sourceContent) });
    }
  }
  findings.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (findings.length === 0 && result.exitStatus === 0) {
    console.log(`secret scan: OK, no secrets found in ${reports.length} files (config ${configLabel}, ${seconds}s)`);
    return 0;
  }
  if (findings.length === 0) throw new ScanError(`secretlint exited ${result.exitStatus} without findings`);

  const fileCount = new Set(findings.map((finding) => finding.file)).size;
  console.error(`secret scan: FAILED, ${findings.length} possible secret(s) in ${fileCount} file(s):`);
  for (const finding of findings) console.error(`  ${finding.file}:${finding.line}:${finding.column}  ${finding.text}`);
  console.error(
    '\nRemove the secret (and rotate it if it was real). Test fixtures must build fake keys at run time;' +
      ' see test/ci/secret-scan.test.ts.',
  );
  return 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`secret scan: ERROR, ${error instanceof ScanError ? error.message : (error?.stack ?? error)}`);
    process.exitCode = 2;
  },
);
