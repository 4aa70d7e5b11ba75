import type { SandboxCore } from './core.js';
import * as resources from './resources.js';
import type { Params } from './wire-format.js';

export interface RouteContext {
  readonly core: SandboxCore;
  readonly params: Params;
  readonly path: Readonly<Record<string, string>>;
}

export type RouteHandler = (context: RouteContext) => unknown;

export interface ApiRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly handler: RouteHandler;
}

/** `/v1/customers/:id` -> a pattern and the names of its parameters. */
export function compileTemplate(template: string): { pattern: RegExp; names: string[] } {
  const names: string[] = [];
  const source = template.replace(/:([a-zA-Z]+)/g, (_match, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { pattern: new RegExp(`^${source}$`), names };
}

export function route(method: ApiRoute['method'], template: string, handler: RouteHandler): ApiRoute {
  return { method, ...compileTemplate(template), handler };
}

export const id = (context: RouteContext): string => context.path.id as string;

/** The Stripe API paths the sandbox answers, each with its handler. Extended by later modules. */
export const BASE_ROUTES: readonly ApiRoute[] = [
  route('POST', '/v1/customers', ({ core, params }) => resources.createCustomer(core, params)),
  route('GET', '/v1/customers', ({ core, params }) => resources.listCustomers(core, params)),
  route('GET', '/v1/customers/:id', (context) => context.core.store.get('customer', id(context))),
  route('POST', '/v1/customers/:id', (context) => resources.updateCustomer(context.core, id(context), context.params)),
  route('DELETE', '/v1/customers/:id', (context) => resources.deleteCustomer(context.core, id(context))),

  route('POST', '/v1/products', ({ core, params }) => resources.createProduct(core, params)),
  route('GET', '/v1/products', ({ core, params }) => resources.listProducts(core, params)),
  route('GET', '/v1/products/:id', (context) => context.core.store.get('product', id(context))),
  route('POST', '/v1/products/:id', (context) => resources.updateProduct(context.core, id(context), context.params)),

  route('POST', '/v1/prices', ({ core, params }) => resources.createPrice(core, params)),
  route('GET', '/v1/prices', ({ core, params }) => resources.listPrices(core, params)),
  route('GET', '/v1/prices/:id', (context) => context.core.store.get('price', id(context))),
  route('POST', '/v1/prices/:id', (context) => resources.updatePrice(context.core, id(context), context.params)),

  route('POST', '/v1/coupons', ({ core, params }) => resources.createCoupon(core, params)),
  route('GET', '/v1/coupons', ({ core, params }) => resources.listCoupons(core, params)),
  route('GET', '/v1/coupons/:id', (context) => context.core.store.get('coupon', id(context))),
  route('DELETE', '/v1/coupons/:id', (context) => resources.deleteCoupon(context.core, id(context))),

  route('POST', '/v1/promotion_codes', ({ core, params }) => resources.createPromotionCode(core, params)),
  route('GET', '/v1/promotion_codes', ({ core, params }) => resources.listPromotionCodes(core, params)),
  route('GET', '/v1/promotion_codes/:id', (context) => context.core.store.get('promotion_code', id(context))),
  route('POST', '/v1/promotion_codes/:id', (context) => resources.updatePromotionCode(context.core, id(context), context.params)),

  route('POST', '/v1/test_helpers/test_clocks', ({ core, params }) => resources.createTestClock(core, params)),
  route('GET', '/v1/test_helpers/test_clocks', ({ core, params }) => resources.listTestClocks(core, params)),
  route('GET', '/v1/test_helpers/test_clocks/:id', (context) => context.core.store.get('test_helpers.test_clock', id(context))),
  route('DELETE', '/v1/test_helpers/test_clocks/:id', (context) => resources.deleteTestClock(context.core, id(context))),

  route('GET', '/v1/events', ({ core, params }) => {
    const type = params.string('type');
    const types = params.stringArray('types');
    const created = resources.createdFilter(params);
    const matches = (eventType: string) => {
      if (type !== undefined) return type.endsWith('.*') ? eventType.startsWith(type.slice(0, -1)) : eventType === type;
      return types.length === 0 || types.includes(eventType);
    };
    return core.store.page<{ id: string; type: string; created: number }>('event', '/v1/events', resources.pageParams(params), (event) => matches(event.type) && created(event.created));
  }),
  route('GET', '/v1/events/:id', (context) => context.core.store.get('event', id(context))),
];

export function matchRoute(routes: readonly ApiRoute[], method: string, pathname: string): { route: ApiRoute; path: Record<string, string> } | undefined {
  for (const candidate of routes) {
    if (candidate.method !== method) continue;
    const match = candidate.pattern.exec(pathname);
    if (!match) continue;
    const path: Record<string, string> = {};
    candidate.names.forEach((name, index) => {
      path[name] = decodeURIComponent(match[index + 1] ?? '');
    });
    return { route: candidate, path };
  }
  return undefined;
}
