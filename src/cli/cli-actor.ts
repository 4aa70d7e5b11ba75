import type { ActorContext } from '../modules/api-keys/audit-hook.js';

/**
 * Who the audit trail says acted when an operator used the command line: someone with
 * shell access to the service's configuration, not an HTTP principal. No IP.
 */
export const CLI_ACTOR: ActorContext = Object.freeze({ actorType: 'cli', actorId: null, ip: null });
