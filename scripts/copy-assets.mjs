// Copies non-TypeScript assets the compiled service reads at run time (SQL migrations) into dist/.
import { cpSync, mkdirSync } from 'node:fs';

const assets = [
  ['src/platform/database/migrations', 'dist/platform/database/migrations'],
  ['src/modules/plans/catalogue', 'dist/modules/plans/catalogue'],
];
for (const [from, to] of assets) {
  mkdirSync(to, { recursive: true });
  cpSync(from, to, { recursive: true });
}
