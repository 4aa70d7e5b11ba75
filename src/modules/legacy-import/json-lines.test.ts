import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countLines, readJsonLines, type JsonLine } from './json-lines.js';

const folder = mkdtempSync(path.join(tmpdir(), 'bulwark-jsonl-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

async function linesOf(content: Buffer | string, maxLineBytes?: number): Promise<JsonLine[]> {
  const file = path.join(folder, `f-${Math.random().toString(36).slice(2)}.jsonl`);
  writeFileSync(file, content);
  const lines: JsonLine[] = [];
  for await (const line of readJsonLines(file, maxLineBytes)) lines.push(line);
  return lines;
}

describe('readJsonLines', () => {
  it('numbers lines as an editor does: blank lines count but yield nothing, CRLF and a BOM are fine, the last line needs no newline', async () => {
    const lines = await linesOf('\uFEFF{"a":1}\r\n\n   \r\n{"b":2}\n{"c":3}');
    expect(lines).toEqual([
      { line: 1, value: { a: 1 } },
      { line: 4, value: { b: 2 } },
      { line: 5, value: { c: 3 } },
    ]);
  });

  it('reports bad JSON, invalid UTF-8 and over-long lines by line, and reads on after them', async () => {
    const content = Buffer.concat([
      Buffer.from('{"ok":1}\n{"broken":\n'),
      Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]),
      Buffer.from(`{"long":"${'x'.repeat(100)}"}\n{"ok":2}\n{"long":"${'y'.repeat(100)}"}`),
    ]);
    const lines = await linesOf(content, 64);
    expect(lines.map((line) => [line.line, line.problem ?? line.value])).toEqual([
      [1, { ok: 1 }],
      [2, expect.stringMatching(/^is not valid JSON \(/)],
      [3, 'is not valid UTF-8'],
      [4, 'is longer than 64 bytes'],
      [5, { ok: 2 }],
      [6, 'is longer than 64 bytes'],
    ]);
  });

  it('finds line ends across read chunks of a large file', async () => {
    const records = Array.from({ length: 5000 }, (_, index) => JSON.stringify({ index, padding: 'p'.repeat(index % 50) }));
    const lines = await linesOf(`${records.join('\n')}\n`);
    expect(lines).toHaveLength(5000);
    expect(lines.every((line, index) => line.line === index + 1 && (line.value as { index: number }).index === index)).toBe(true);
  });
});

describe('countLines', () => {
  it('counts a last line without a newline, and none in an empty file', async () => {
    for (const [content, expected] of [['', 0], ['a\nb\n', 2], ['a\nb', 2], ['\n\n', 2]] as const) {
      const file = path.join(folder, `count-${expected}-${content.length}.jsonl`);
      writeFileSync(file, content);
      expect(await countLines(file)).toBe(expected);
    }
  });
});
