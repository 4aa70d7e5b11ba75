import type { SandboxModule, StripeSandboxOptions } from './sandbox-server.js';

/** The sandbox's feature modules beyond customers, products and prices. */
export function DEFAULT_MODULES(_options: StripeSandboxOptions): SandboxModule[] {
  return [];
}
