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
export interface MicroBatcherOptions {
  readonly maxBatch: number;
  readonly maxConcurrent: number;
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

  constructor(
    private readonly run: (items: readonly Item[]) => Promise<readonly Result[]>,
    private readonly options: MicroBatcherOptions,
  ) {
    if (!(options.maxBatch >= 1 && options.maxConcurrent >= 1)) throw new RangeError('maxBatch and maxConcurrent must be at least 1');
  }

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.options.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    // Let the rest of this turn's requests join before the batch leaves.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.running < this.options.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.running += 1;
      void this.execute(batch);
    }
  }

  private async execute(batch: readonly Pending<Item, Result>[]): Promise<void> {
    try {
      const results = await this.run(batch.map((pending) => pending.item));
      if (results.length !== batch.length) throw new Error(`batch answered ${results.length} results for ${batch.length} items`);
      batch.forEach((pending, index) => pending.resolve(results[index] as Result));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.running -= 1;
      this.schedule();
    }
  }
}
