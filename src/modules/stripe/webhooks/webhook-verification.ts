import { createHash } from 'node:crypto';
import Stripe from 'stripe';
import type { StripeGateway } from '../gateway.js';

/**
 * WH-1, WH-2: a delivery is accepted only when its raw body carries a valid `v1`
 * HMAC-SHA256 signature of one of the configured secrets (rotation), verified by the
 * official library's constructEvent, and its signed timestamp is within 300 s of our
 * clock, in the past (the library's tolerance) or in the future (checked here: the
 * library accepts any future timestamp).
 */

export const WEBHOOK_TOLERANCE_SECONDS = 300;

export type RejectionReason = 'missing_signature' | 'bad_signature' | 'stale_timestamp' | 'future_timestamp' | 'missing_body' | 'malformed_event';

export type Verification =
  | { readonly ok: true; readonly event: Stripe.Event; readonly payloadSha256: string }
  | { readonly ok: false; readonly reason: RejectionReason };

const EVENT_ID = /^evt_[A-Za-z0-9_]+$/;
const EVENT_TYPE = /^[a-z0-9_]+(\.[a-z0-9_]+)+$/;

/** The last `t=` of a signature header (the one the library checks), in seconds. */
export function signedTimestamp(header: string): number | undefined {
  let timestamp: number | undefined;
  for (const part of header.split(',')) {
    const [key, value] = part.split('=');
    if (key?.trim() === 't' && value !== undefined && /^\d{1,12}$/.test(value.trim())) timestamp = Number(value.trim());
  }
  return timestamp;
}

function reasonOf(error: unknown): RejectionReason {
  if (!(error instanceof Stripe.errors.StripeSignatureVerificationError)) return 'bad_signature';
  if (/tolerance/i.test(error.message)) return 'stale_timestamp';
  if (/No stripe-signature header/i.test(error.message)) return 'missing_signature';
  if (/No webhook payload/i.test(error.message)) return 'missing_body';
  return 'bad_signature';
}

function wellFormed(event: Stripe.Event): boolean {
  const candidate = event as unknown as Record<string, unknown>;
  const data = candidate.data as Record<string, unknown> | undefined;
  return (
    typeof candidate.id === 'string' &&
    candidate.id.length <= 255 &&
    EVENT_ID.test(candidate.id) &&
    typeof candidate.type === 'string' &&
    candidate.type.length <= 100 &&
    EVENT_TYPE.test(candidate.type) &&
    typeof candidate.created === 'number' &&
    Number.isSafeInteger(candidate.created) &&
    candidate.created >= 0 &&
    typeof candidate.livemode === 'boolean' &&
    typeof data?.object === 'object' &&
    data.object !== null
  );
}

export function verifyWebhook(
  gateway: StripeGateway,
  rawBody: Buffer | undefined,
  signatureHeader: string | string[] | undefined,
  secrets: readonly string[],
  nowMs: number,
): Verification {
  if (signatureHeader === undefined || signatureHeader === '') return { ok: false, reason: 'missing_signature' };
  if (Array.isArray(signatureHeader)) return { ok: false, reason: 'bad_signature' };
  if (rawBody === undefined || rawBody.length === 0) return { ok: false, reason: 'missing_body' };
  let event: Stripe.Event;
  try {
    event = gateway.constructWebhookEvent(rawBody, signatureHeader, secrets, WEBHOOK_TOLERANCE_SECONDS, nowMs);
  } catch (error) {
    // A signed body that is not JSON fails to parse after a good signature.
    return { ok: false, reason: error instanceof SyntaxError ? 'malformed_event' : reasonOf(error) };
  }
  const timestamp = signedTimestamp(signatureHeader);
  if (timestamp === undefined || timestamp - Math.floor(nowMs / 1000) > WEBHOOK_TOLERANCE_SECONDS) return { ok: false, reason: 'future_timestamp' };
  if (!wellFormed(event)) return { ok: false, reason: 'malformed_event' };
  return { ok: true, event, payloadSha256: createHash('sha256').update(rawBody).digest('hex') };
}
