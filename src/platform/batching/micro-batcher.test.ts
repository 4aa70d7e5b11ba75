import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './micro-batcher.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

describe('MicroBatcher', () => {
  it('sends what is submitted in one turn as one batch, in order, and answers each item its own result', async () => {
    const batches: number[][] = [];
    const batcher = new MicroBatcher<number, number>(async (items) => {
      batches.push([...items]);
      return items.map((item) => item * 10);
    }, { maxBatch: 100, maxConcurrent: 1 });
    const results = await Promise.all([1, 2, 3].map((item) => batcher.submit(item)));
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('holds items while maxConcurrent batches run, then sends them together, at most maxBatch at a time', async () => {
    const gate = deferred();
    const batches: string[][] = [];
    const batcher = new MicroBatcher<string, string>(async (items) => {
      batches.push([...items]);
      if (items[0] === 'first') await gate.promise;
      return items.map((item) => item.toUpperCase());
    }, { maxBatch: 2, maxConcurrent: 1 });
    const first = batcher.submit('first');
    await new Promise((resolve) => setImmediate(resolve));
    const later = ['a', 'b', 'c'].map((item) => batcher.submit(item));
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([['first']]); // the others wait for the running batch
    gate.resolve();
    expect(await Promise.all([first, ...later])).toEqual(['FIRST', 'A', 'B', 'C']);
    expect(batches).toEqual([['first'], ['a', 'b'], ['c']]);
  });

  it('rejects every item of a failed batch and goes on with the next', async () => {
    let calls = 0;
    const batcher = new MicroBatcher<number, number>(async (items) => {
      calls += 1;
      if (calls === 1) throw new Error('boom');
      return [...items];
    }, { maxBatch: 10, maxConcurrent: 1 });
    const failed = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    expect(await batcher.submit(3)).toBe(3);
  });

  it('rejects a batch whose run answers the wrong number of results', async () => {
    const batcher = new MicroBatcher<number, number>(async () => [1], { maxBatch: 10, maxConcurrent: 1 });
    const outcomes = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
  });
});

describe('MicroBatcher with keyOf', () => {
  it('never runs two batches of one key at once, lets other keys go ahead, and keeps each key in order', async () => {
    const holds = [deferred(), deferred()];
    const seen: string[][] = [];
    let running = 0;
    const batcher = new MicroBatcher<{ key: string; n: number }, string>(
      async (items) => {
        const index = seen.length;
        seen.push(items.map((item) => `${item.key}${item.n}`));
        running += 1;
        if (index < 2) await holds[index]?.promise;
        running -= 1;
        return items.map((item) => `${item.key}${item.n}`);
      },
      { maxBatch: 50, maxConcurrent: 4, keyOf: (item) => item.key },
    );
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const first = [batcher.submit({ key: 'a', n: 0 }), batcher.submit({ key: 'a', n: 1 })];
    await turn();
    // 'a' is in flight: its next items wait; 'b' goes ahead in a batch of its own.
    const second = [batcher.submit({ key: 'a', n: 2 }), batcher.submit({ key: 'b', n: 3 }), batcher.submit({ key: 'a', n: 4 })];
    await turn();
    expect(seen).toEqual([['a0', 'a1'], ['b3']]);
    expect(running).toBe(2);
    holds[1]?.resolve();
    await turn();
    expect(seen).toHaveLength(2); // b's batch finished; a's items still wait for a's batch
    // Only a's items are queued and a is in flight: another key still goes at once.
    const third = batcher.submit({ key: 'c', n: 5 });
    await turn();
    expect(seen[2]).toEqual(['c5']);
    holds[0]?.resolve();
    expect(await Promise.all([...first, ...second, third])).toEqual(['a0', 'a1', 'a2', 'b3', 'a4', 'c5']);
    expect(seen).toEqual([['a0', 'a1'], ['b3'], ['c5'], ['a2', 'a4']]);
  });
});
