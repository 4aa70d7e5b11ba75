import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import { CatalogueFileSchema, type CatalogueFile } from './plan-schemas.js';

/** Where the shipped catalogue files live (copied to dist/ by scripts/copy-assets.mjs). */
export const CATALOGUE_DIRECTORY = fileURLToPath(new URL('./catalogue/', import.meta.url));

const FILE_PATTERN = /^catalogue\.v([1-9][0-9]*)\.json$/;

/** Parses and validates one catalogue document; throws naming the first problem. */
export function parseCatalogue(document: unknown, source = 'catalogue'): CatalogueFile {
  if (!Value.Check(CatalogueFileSchema, document)) {
    const first = Value.Errors(CatalogueFileSchema, document).First();
    throw new Error(`${source} is invalid: ${first ? `${first.path || '/'} ${first.message}` : 'unknown problem'}`);
  }
  const ids = new Set<string>();
  for (const plan of document.plans) {
    if (ids.has(plan.id)) throw new Error(`${source} is invalid: plan ${plan.id} appears twice`);
    ids.add(plan.id);
  }
  if (!ids.has('FREE')) throw new Error(`${source} is invalid: it must define FREE (TIER-2 falls back to it)`);
  return document;
}

/**
 * The catalogue with the highest version in `directory` (catalogue.v1.json,
 * catalogue.v2.json, ...). Its version must match its file name.
 */
export function loadLatestCatalogue(directory: string = CATALOGUE_DIRECTORY): CatalogueFile {
  const files = readdirSync(directory)
    .map((file) => ({ file, match: FILE_PATTERN.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map((entry) => ({ file: entry.file, version: Number(entry.match[1]) }))
    .sort((a, b) => b.version - a.version);
  const latest = files[0];
  if (!latest) throw new Error(`No catalogue.vN.json in ${directory}`);
  const source = path.join(directory, latest.file);
  const catalogue = parseCatalogue(JSON.parse(readFileSync(source, 'utf8')) as unknown, source);
  if (catalogue.version !== latest.version) {
    throw new Error(`${source} declares version ${catalogue.version}; its file name says ${latest.version}`);
  }
  return catalogue;
}
