// Copies non-TypeScript assets the compiled service reads at run time (SQL migrations) into dist/.
import { cpSync, mkdirSync } from 'node:fs';

const assets = [['src/platform/database/migrations', 'dist/platform/database/migrations']];
for (const [from, to] of assets) {
  mkdirSync(to, { recursive: true });
  cpSync(from, to, { recursive: true });
}
