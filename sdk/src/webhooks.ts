/**
 * Verifying Bulwark's outgoing webhooks (OUT-1) in the receiving application. Bulwark signs
 * the Standard Webhooks way: HMAC-SHA256 with the endpoint's secret (`whsec_<base64>`) over
 * `${webhook-id}.${webhook-timestamp}.${raw body}`, sent as `webhook-signature: v1,<base64>`
 * (several space-separated signatures are possible while a secret changes). Pass the raw
 * body exactly as received, before any JSON parsing. Needs only WebCrypto.
 */
export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, in seconds (default 300). */
  readonly toleranceSeconds?: number;
  /** The current time (default: now). */
  readonly now?: Date;
}

export type WebhookHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export async function verifyWebhook(secret: string, headers: WebhookHeaders, rawBody: string, options: VerifyWebhookOptions = {}): Promise<boolean> {
  const header = (name: string): string | undefined => {
    const value = headers[name] ?? headers[name.toLowerCase()];
    return typeof value === 'string' ? value : undefined;
  };
  const id = header('webhook-id');
  const timestamp = header('webhook-timestamp');
  const signatures = header('webhook-signature');
  if (!secret.startsWith('whsec_') || !id || !timestamp || !signatures || !/^\d{1,12}$/.test(timestamp)) return false;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - Number(timestamp)) > (options.toleranceSeconds ?? 300)) return false;

  const key = await crypto.subtle.importKey('raw', base64ToBytes(secret.slice('whsec_'.length)), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${rawBody}`);
  for (const entry of signatures.split(' ')) {
    const [version, signature] = entry.split(',', 2);
    if (version !== 'v1' || !signature) continue;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = base64ToBytes(signature);
    } catch {
      continue;
    }
    // subtle.verify compares in constant time.
    if (await crypto.subtle.verify('HMAC', key, bytes, signed)) return true;
  }
  return false;
}

function base64ToBytes(base64: string): Uint8Array<ArrayBuffer> {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}
