import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { entryHash, GENESIS_HASH, personalDigest } from './audit.hash.js';
import { entryFieldsOf, type EntryRow } from './audit.service.js';

/** Why verification stopped, for operators (the API answers only `brokenAt`). */
export type ChainBreak =
  /** prev_hash is not the previous entry's hash: an entry before it is missing or was replaced. */
  | 'prev_hash_mismatch'
  /** The stored hash is not the hash of the entry's content: the entry was altered. */
  | 'hash_mismatch'
  /** The personal data no longer matches its digest: ip or personal details were altered. */
  | 'personal_data_mismatch'
  /** The chain head names an entry that is not in the log: entries were cut from the end. */
  | 'missing_tail'
  /** The entry lies beyond the chain head or the head disagrees with the last entry. */
  | 'head_mismatch';

export type ChainVerification =
  | { readonly valid: true; readonly checked: number }
  | { readonly valid: false; readonly brokenAt: string; readonly reason: ChainBreak; readonly checked: number };

interface ChainRow extends EntryRow {
  personal_salt: string | null;
  personal_digest: string;
  erased_at: Date | string | null;
  prev_hash: string;
  hash: string;
}

interface HeadRow {
  last_seq: number;
  last_id: string | null;
  hash: string;
}

/** What is wrong with one entry, given the hash the previous entry ended with; undefined when nothing. */
export function checkEntry(row: ChainRow, expectedPrevHash: string): ChainBreak | undefined {
  if (row.prev_hash !== expectedPrevHash) return 'prev_hash_mismatch';
  if (row.personal_salt !== null) {
    if (personalDigest(row.personal_salt, row.ip, row.personal) !== row.personal_digest) return 'personal_data_mismatch';
  } else if (row.erased_at === null) {
    return 'personal_data_mismatch';
  }
  const recomputed = entryHash(row.prev_hash, {
    ...entryFieldsOf(row),
    metadata: row.metadata,
    personalDigest: row.personal_digest,
  });
  return recomputed === row.hash ? undefined : 'hash_mismatch';
}

/**
 * Recomputes the whole chain in order, a page at a time, in system contexts (it reads
 * every account's entries), and names the first entry that breaks it. Entries appended
 * while it runs are verified too. Safe to run against a live database.
 */
export async function verifyAuditChain(database: Database, options: { readonly pageSize?: number } = {}): Promise<ChainVerification> {
  const pageSize = options.pageSize ?? 1_000;
  let expectedPrevHash = GENESIS_HASH;
  let lastSeq = 0;
  let lastId: string | null = null;
  let checked = 0;
  const broken = (brokenAt: string, reason: ChainBreak): ChainVerification => ({ valid: false, brokenAt, reason, checked });

  for (;;) {
    const page = await asSystem(database, async (tx) => {
      const rows = await tx.query<ChainRow>(
        `SELECT seq, id, at, event, actor_type, actor_id, subject_type, subject_id, account_id, ip, metadata, personal,
                personal_salt, personal_digest, erased_at, prev_hash, hash
           FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`,
        [lastSeq, pageSize],
      );
      // Read after the page: the head can only be at or beyond the last entry read.
      const head = await tx.query<HeadRow>('SELECT last_seq, last_id, hash FROM audit_chain_head');
      return { rows: rows.rows, head: head.rows[0] };
    });
    if (!page.head) throw new Error('audit_chain_head is missing; is migration 0003 applied?');

    for (const row of page.rows) {
      if (row.seq > page.head.last_seq) return broken(row.id, 'head_mismatch');
      const problem = checkEntry(row, expectedPrevHash);
      if (problem) return broken(row.id, problem);
      expectedPrevHash = row.hash;
      lastSeq = row.seq;
      lastId = row.id;
      checked += 1;
    }
    if (page.rows.length === pageSize) continue;

    // The log is read to its end; the head must point at the last entry read.
    const head = page.head;
    if (head.last_seq === lastSeq) {
      return head.last_id === lastId && head.hash === expectedPrevHash
        ? { valid: true, checked }
        : broken(lastId ?? head.last_id ?? '(empty log)', 'head_mismatch');
    }
    // head.last_seq > lastSeq: either entries were appended after this page was read
    // (read on), or the entries up to the head are gone.
    const appended = await asSystem(database, (tx) =>
      tx.query<{ found: number }>('SELECT count(*)::int AS found FROM (SELECT 1 FROM audit_log WHERE seq > $1 LIMIT 1) AS next', [lastSeq]),
    );
    if ((appended.rows[0]?.found ?? 0) === 0) return broken(head.last_id ?? '(unknown)', 'missing_tail');
  }
}
