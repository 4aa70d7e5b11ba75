// Copies non-TypeScript assets the compiled service reads at run time (SQL migrations, the plan
// catalogue, the portal's and dashboard's pages and scripts) into dist/.
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';

const assets = [
  ['src/platform/database/migrations', 'dist/platform/database/migrations'],
  ['src/modules/plans/catalogue', 'dist/modules/plans/catalogue'],
  ['src/web', 'dist/web'],
];
for (const [from, to] of assets) {
  // Replaced, not merged: a file renamed or removed in src (say, a renumbered migration) must not linger in dist.
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  cpSync(from, to, { recursive: true });
}

// The operator command line is the package's bin (`npx bulwark`): it must be executable.
if (existsSync('dist/cli/main.js')) chmodSync('dist/cli/main.js', 0o755);
