import { createReadStream } from 'node:fs';

/** The longest line a legacy file may have; a longer one is reported and skipped, never held in memory whole. */
export const MAX_LINE_BYTES = 1024 * 1024;

/** One non-blank line of a JSON Lines file: its 1-based number and either its JSON value or why it has none. */
export type JsonLine =
  | { readonly line: number; readonly value: unknown; readonly problem?: undefined }
  | { readonly line: number; readonly value?: undefined; readonly problem: string };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function parseLine(bytes: Buffer, line: number): JsonLine | undefined {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === CARRIAGE_RETURN) end -= 1;
  const start = line === 1 && bytes.subarray(0, 3).equals(UTF8_BOM) ? 3 : 0;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, end));
  } catch {
    return { line, problem: 'is not valid UTF-8' };
  }
  if (text.trim() === '') return undefined;
  try {
    return { line, value: JSON.parse(text) as unknown };
  } catch (error) {
    // JSON.parse's message names the position, which helps the operator find the typo.
    return { line, problem: `is not valid JSON (${error instanceof Error ? error.message : 'parse error'})` };
  }
}

/**
 * The records of a JSON Lines file, one per non-blank line, with line numbers; read as a
 * stream, so a file of any size costs one line of memory. Bad JSON, invalid UTF-8 and
 * over-long lines come out as problems of their line; reading goes on after them.
 */
export async function* readJsonLines(file: string, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<JsonLine> {
  let line = 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let offset = 0;
    while (offset < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, offset);
      const piece = chunk.subarray(offset, newline === -1 ? chunk.length : newline);
      if (!tooLong) {
        if (pendingBytes + piece.length > maxLineBytes) {
          tooLong = true;
          pending = [];
          pendingBytes = 0;
        } else {
          pending.push(piece);
          pendingBytes += piece.length;
        }
      }
      if (newline === -1) break;
      const parsed = tooLong ? { line, problem: `is longer than ${maxLineBytes} bytes` } : parseLine(Buffer.concat(pending), line);
      if (parsed) yield parsed;
      line += 1;
      pending = [];
      pendingBytes = 0;
      tooLong = false;
      offset = newline + 1;
    }
  }
  if (tooLong) yield { line, problem: `is longer than ${maxLineBytes} bytes` };
  else if (pendingBytes > 0) {
    const parsed = parseLine(Buffer.concat(pending), line);
    if (parsed) yield parsed;
  }
}

/** How many lines a file has (for the progress bar's total), counted without decoding. */
export async function countLines(file: string): Promise<number> {
  let lines = 0;
  let last = NEWLINE;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let index = chunk.indexOf(NEWLINE); index !== -1; index = chunk.indexOf(NEWLINE, index + 1)) lines += 1;
    if (chunk.length > 0) last = chunk[chunk.length - 1] as number;
  }
  return last === NEWLINE ? lines : lines + 1;
}
