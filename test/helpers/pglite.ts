import { PGlite, types } from '@electric-sql/pglite';
import type { Database } from '../../src/platform/database/database.js';
import { migrate } from '../../src/platform/database/migrate.js';
import { wrapPglite } from '../../src/platform/database/pglite-database.js';
import { parseInt8 } from '../../src/platform/database/database.js';

let template: Promise<Blob> | undefined;

/**
 * A fresh, migrated, in-memory PGlite for one test. The first call in a worker runs
 * initdb and the migrations and keeps a dump; later calls restore that dump, which is
 * several times faster than a cold start. Each database is independent.
 */
export async function createTestPglite(): Promise<Database> {
  template ??= (async () => {
    const pglite = await PGlite.create({ parsers: { [types.INT8]: parseInt8 } });
    const database = wrapPglite(pglite);
    await migrate(database);
    const dump = await pglite.dumpDataDir('none');
    await database.close();
    return dump;
  })();
  const pglite = await PGlite.create({ loadDataDir: await template, parsers: { [types.INT8]: parseInt8 } });
  return wrapPglite(pglite);
}
