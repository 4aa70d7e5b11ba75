import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { CommandFailure } from '../cli-io.js';

/** What a backup file is, from its first bytes. */
export type BackupKind = 'postgres' | 'pglite' | 'unknown';

/** pg_dump's custom format starts with "PGDMP"; a PGlite dump is a gzipped tarball (or a plain one). */
export function backupKindOf(file: string): BackupKind {
  const header = Buffer.alloc(512);
  const descriptor = openSync(file, 'r');
  let length: number;
  try {
    length = readSync(descriptor, header, 0, header.length, 0);
  } finally {
    closeSync(descriptor);
  }
  if (length >= 5 && header.subarray(0, 5).toString('latin1') === 'PGDMP') return 'postgres';
  if (length >= 2 && header[0] === 0x1f && header[1] === 0x8b) return 'pglite';
  if (length >= 262 && header.subarray(257, 262).toString('latin1') === 'ustar') return 'pglite';
  return 'unknown';
}

/** The absolute path of a backup to write: refused when it exists, unless --force. */
export function backupTarget(file: string, force: boolean): string {
  const target = path.resolve(file);
  if (existsSync(target)) {
    if (!force) throw new CommandFailure('EXISTS', `${target} already exists; pass --force to replace it`);
    if (!statSync(target).isFile()) throw new CommandFailure('EXISTS', `${target} exists and is not a file`);
  }
  return target;
}

/** The absolute path of a backup to read, which must be a regular file of the expected kind. */
export function backupSource(file: string, expected: Exclude<BackupKind, 'unknown'>): string {
  const source = path.resolve(file);
  if (!existsSync(source) || !statSync(source).isFile()) throw new CommandFailure('NOT_FOUND', `${source} is not a file`);
  const kind = backupKindOf(source);
  if (kind === expected) return source;
  if (kind === 'postgres') {
    throw new CommandFailure('WRONG_KIND', `${source} is a PostgreSQL backup (pg_dump custom format); restore it with DATABASE_URL set`);
  }
  if (kind === 'pglite') {
    throw new CommandFailure('WRONG_KIND', `${source} is an embedded-database (PGlite) backup; restore it with DATABASE_URL unset`);
  }
  throw new CommandFailure('WRONG_KIND', `${source} is not a Bulwark backup`);
}

/** A sibling path to write to first, renamed into place once complete. */
export function partialPath(target: string): string {
  return `${target}.partial-${randomBytes(4).toString('hex')}`;
}
