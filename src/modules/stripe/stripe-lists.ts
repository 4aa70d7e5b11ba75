import type Stripe from 'stripe';

/** Every item of a Stripe list, following `starting_after` pages, up to `maxItems`. */
export async function listAll<T extends { id: string }>(
  page: (startingAfter: string | undefined) => Promise<Stripe.ApiList<T>>,
  maxItems: number,
): Promise<T[]> {
  const items: T[] = [];
  let startingAfter: string | undefined;
  for (;;) {
    const list = await page(startingAfter);
    items.push(...list.data);
    const last = list.data.at(-1);
    if (!list.has_more || !last || items.length >= maxItems) return items;
    startingAfter = last.id;
  }
}
