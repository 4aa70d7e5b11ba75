import { readFile, writeFile } from 'node:fs/promises';

/** A number with thousands separators and a fixed count of decimals. */
export function fmt(value, digits = 0) {
  return Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/**
 * Writes a standalone benchmark's section into a results file between its own markers,
 * replacing an earlier one or appending it, so that the rest of the file stays as it is.
 * Refuses to write if any of `secrets` would appear in the file.
 */
export async function writeMarkedSection({ file, startMark, endMark, section, secrets = [] }) {
  let existing = '';
  try {
    existing = await readFile(file, 'utf8');
  } catch {
    existing = '# Benchmark results\n';
  }
  const start = existing.indexOf(startMark);
  const end = existing.indexOf(endMark);
  const next = start >= 0 && end > start ? `${existing.slice(0, start)}${section}${existing.slice(end + endMark.length)}` : `${existing.trimEnd()}\n\n${section}\n`;
  if ([...secrets].some((secret) => next.includes(secret))) throw new Error('a secret would appear in the results');
  await writeFile(file, next);
}
