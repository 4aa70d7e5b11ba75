/**
 * Coalesces concurrent requests into batches (group commit, DataLoader style) without
 * holding any of them back: an item submitted while fewer than `maxConcurrent` batches
 * are running goes out at the end of the current event-loop turn, together with whatever
 * else was submitted in that turn; items submitted while `maxConcurrent` batches are
 * running wait for the first of them to finish and then go out together (up to
 * `maxBatch` per batch). At low load every item is its own batch; under load one round
 * trip serves many.
 *
 * Exactness: every batch starts after each of its items was submitted, so a read in it
 * sees every write that completed before the item was submitted (linearizable).
 *
 * `run` receives the items in submission order and must answer one result per item, in
 * the same order; if it throws, every item of that batch rejects with the error.
 */
export interface MicroBatcherOptions<Item = unknown> {
  readonly maxBatch: number;
  readonly maxConcurrent: number;
  /**
   * With a key (an account id), items of one key never run in two batches at once: an
   * item whose key is in a running batch waits for it (and so do the later items of that
   * key, which keeps each key in submission order), while items of other keys go ahead.
   * On one hot account concurrent batches would only queue on its row locks; this way it
   * gets fewer, larger batches and one commit each, and other accounts are not held up.
   */
  readonly keyOf?: (item: Item) => string;
}

interface Pending<Item, Result> {
  readonly item: Item;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

export class MicroBatcher<Item, Result> {
  private queue: Pending<Item, Result>[] = [];
  private running = 0;
  private scheduled = false;
  /** The keys of the running batches (with keyOf). */
  private readonly inFlight = new Set<string>();
  /**
   * With keyOf: every queued item's key is in a running batch, so there is nothing to send
   * until a batch finishes or an item of another key arrives (without this, each submit
   * on a hot key would scan and copy the whole queue for nothing).
   */
  private stalled = false;

  constructor(
    private readonly run: (items: readonly Item[]) => Promise<readonly Result[]>,
    private readonly options: MicroBatcherOptions<Item>,
  ) {
    if (!(options.maxBatch >= 1 && options.maxConcurrent >= 1)) throw new RangeError('maxBatch and maxConcurrent must be at least 1');
  }

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.stalled && this.options.keyOf && !this.inFlight.has(this.options.keyOf(item))) this.stalled = false;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stalled || this.running >= this.options.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    // Let the rest of this turn's requests join before the batch leaves.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.running < this.options.maxConcurrent && this.queue.length > 0) {
      const { batch, keys } = this.take();
      if (batch.length === 0) {
        this.stalled = true; // every queued key is in a running batch
        return;
      }
      this.running += 1;
      void this.execute(batch, keys);
    }
  }

  /** The next batch: the first maxBatch items, skipping keys that are in a running batch. */
  private take(): { batch: Pending<Item, Result>[]; keys: string[] } {
    const { keyOf, maxBatch } = this.options;
    if (!keyOf) return { batch: this.queue.splice(0, maxBatch), keys: [] };
    if (this.queue.every((pending) => this.inFlight.has(keyOf(pending.item)))) return { batch: [], keys: [] };
    const batch: Pending<Item, Result>[] = [];
    const keys = new Set<string>();
    const rest: Pending<Item, Result>[] = [];
    for (const pending of this.queue) {
      const key = keyOf(pending.item);
      if (batch.length < maxBatch && !this.inFlight.has(key)) {
        batch.push(pending);
        keys.add(key);
      } else {
        rest.push(pending);
      }
    }
    this.queue = rest;
    for (const key of keys) this.inFlight.add(key);
    return { batch, keys: [...keys] };
  }

  private async execute(batch: readonly Pending<Item, Result>[], keys: readonly string[]): Promise<void> {
    try {
      const results = await this.run(batch.map((pending) => pending.item));
      if (results.length !== batch.length) throw new Error(`batch answered ${results.length} results for ${batch.length} items`);
      batch.forEach((pending, index) => pending.resolve(results[index] as Result));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.running -= 1;
      for (const key of keys) this.inFlight.delete(key);
      this.stalled = false;
      this.schedule();
    }
  }
}
