import { statSync } from 'node:fs';
import path from 'node:path';
import { CreditsService } from '../../modules/credits/credits.service.js';
import { LegacyImportService, legacyFilesIn, type ImportProblem, type ImportSummary } from '../../modules/legacy-import/legacy-import.service.js';
import { LEGACY_FILES, LEGACY_KINDS } from '../../modules/legacy-import/legacy-records.js';
import { PlanCatalogue } from '../../modules/plans/plan-catalogue.js';
import { systemClock } from '../../platform/clock.js';
import { CLI_ACTOR } from '../cli-actor.js';
import { withServiceDatabase } from '../cli-database.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, printable, table, type CliCommand } from '../cli-io.js';

const FILE_NAMES = LEGACY_KINDS.map((kind) => LEGACY_FILES[kind]).join(', ');

/** The folder argument: an existing directory holding at least one legacy file. */
function legacyDirectory(argument: string | undefined): string {
  if (argument === undefined || argument.length === 0) throw new UsageError('the folder of legacy files is missing');
  if (/[\0\n\r]/.test(argument)) throw new UsageError('the folder name contains a control character');
  const directory = path.resolve(argument);
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    throw new UsageError(`${printable(directory)} does not exist`);
  }
  if (!isDirectory) throw new UsageError(`${printable(directory)} is not a folder; give the folder that holds ${FILE_NAMES}`);
  const { found, misnamed } = legacyFilesIn(directory);
  if (!LEGACY_KINDS.some((kind) => found[kind])) {
    const hint = misnamed.length > 0 ? ` (found ${misnamed.join(', ')}: the import reads JSON Lines files, one record per line, named .jsonl; see docs/legacy-import.md)` : '';
    throw new UsageError(`${printable(directory)} holds none of ${FILE_NAMES}${hint}`);
  }
  return directory;
}

function problemLine(problem: ImportProblem): string {
  const record = problem.id === null ? 'record' : `record ${printable(problem.id)}`;
  const field = problem.field === null ? '' : `${printable(problem.field)} `;
  const result = problem.outcome === 'rejected' ? 'rejected, nothing of it written' : 'not applied';
  return `${problem.file}:${problem.line}: ${record}: ${field}${printable(problem.message)} (${result})`;
}

function summaryLines(summary: ImportSummary): string[] {
  const lines = summary.problems.map(problemLine);
  if (summary.problemsOmitted > 0) lines.push(`... and ${summary.problemsOmitted} more problems (only the first ${summary.problems.length} are listed)`);
  if (lines.length > 0) lines.push('');
  lines.push(
    ...table([
      ['FILE', 'RECORDS', 'IMPORTED', 'ALREADY IMPORTED', 'CHANGED', 'REJECTED'],
      ...LEGACY_KINDS.map((kind) => {
        const file = summary.files[kind];
        return file.present
          ? [file.file, String(file.records), String(file.imported), String(file.unchanged), String(file.changed), String(file.rejected)]
          : [file.file, '-', '-', '-', '-', '(no file)'];
      }),
    ]),
  );
  const totals = totalsOf(summary);
  lines.push(
    `Import ${summary.runId}: ${totals.imported} imported, ${totals.unchanged} already imported, ${totals.changed} changed since their import (not applied), ${totals.rejected} rejected.`,
  );
  if (summary.creditsGranted > 0) lines.push(`${summary.creditsGranted} credits granted from legacy balances.`);
  if (summary.passwordsDropped > 0) {
    lines.push(`${summary.passwordsDropped} imported user(s) have no password (their legacy hash is not argon2id as strong as ours): they set one through a password reset.`);
  }
  if (totals.rejected + totals.changed > 0) lines.push('Fix the lines above and run the import again: what was imported stays, and is not imported twice.');
  return lines;
}

function totalsOf(summary: ImportSummary): { imported: number; unchanged: number; changed: number; rejected: number } {
  const totals = { imported: 0, unchanged: 0, changed: 0, rejected: 0 };
  for (const kind of LEGACY_KINDS) for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += summary.files[kind][key];
  return totals;
}

/**
 * `bulwark import <folder>` (OPS-9, CLI-1): the legacy JSON Lines files of the folder
 * into the database, once. Exit 0 when every record is imported or was already; exit 1
 * when some record was rejected or has changed since its import (each named by file and
 * line; the rest is imported all the same); exit 2 for a wrong folder.
 */
export const legacyImport: CliCommand = {
  name: 'import',
  summary: `Import legacy JSON Lines files (${FILE_NAMES}) from a folder, once; bad records are reported by line`,
  usage: '<folder>',
  options: {},
  positionals: [1, 1],
  async run({ positionals, config, io, progress }) {
    const directory = legacyDirectory(positionals[0]);
    const summary = await withServiceDatabase(config, io, async (database) => {
      const credits = new CreditsService({ database, clock: systemClock, pricing: new PlanCatalogue(database, undefined) });
      try {
        return await new LegacyImportService({ database, clock: systemClock, credits }).importDirectory(directory, CLI_ACTOR, (label, done, total) =>
          progress.update(label, done, total),
        );
      } finally {
        progress.done();
      }
    });
    const totals = totalsOf(summary);
    const ok = totals.rejected + totals.changed === 0;
    return { data: { ok, ...summary, totals }, lines: summaryLines(summary), exitCode: ok ? EXIT_OK : EXIT_FAILURE };
  },
};
