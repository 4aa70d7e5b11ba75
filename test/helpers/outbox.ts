import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One email of the development outbox (DATA_DIR/outbox/<time>-<template>-<id>.eml). */
export interface OutboxMessage {
  readonly file: string;
  /** The template, from the file name (password_reset, account_deleted, ...). */
  readonly kind: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  /** The raw RFC 822 message. */
  readonly raw: string;
}

function decodeQuotedPrintable(body: string): string {
  const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** Parses one .eml written by the OutboxMailer: To, Subject and the plain-text body. */
export function parseEml(file: string, raw: string): OutboxMessage {
  const split = raw.search(/\r?\n\r?\n/);
  const head = raw.slice(0, split).replace(/\r?\n[ \t]+/g, ' ');
  const body = raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const header = (name: string): string => new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1]?.trim() ?? '';
  const encoding = header('Content-Transfer-Encoding').toLowerCase();
  const text = encoding === 'quoted-printable' ? decodeQuotedPrintable(body) : encoding === 'base64' ? Buffer.from(body, 'base64').toString('utf8') : body;
  const kind = /^\d+-([a-z_]+)-/.exec(path.basename(file))?.[1] ?? '';
  return { file, kind, to: header('To'), subject: header('Subject'), text: text.replace(/\r\n/g, '\n').replace(/\n$/, ''), raw };
}

/** Every message in the outbox folder, oldest first; none when the folder does not exist yet. */
export function readOutbox(directory: string): OutboxMessage[] {
  let files: string[];
  try {
    files = readdirSync(directory).filter((file) => file.endsWith('.eml'));
  } catch {
    return [];
  }
  return files.sort().map((file) => parseEml(file, readFileSync(path.join(directory, file), 'utf8')));
}
