import { readFileSync } from 'node:fs';
import path from 'node:path';
import type Stripe from 'stripe';
import ts from 'typescript';
import { describe, expect, expectTypeOf, it } from 'vitest';
import * as objects from '../../src/modules/stripe/sandbox/objects.js';

/**
 * The sandbox's objects are typed with the `stripe` package's types for its pinned API
 * version: a builder that leaves out a field the type requires does not compile.
 */

const objectsFile = path.resolve(import.meta.dirname, '../../src/modules/stripe/sandbox/objects.ts');

let previous: ts.Program | undefined;

/** Type-checks objects.ts, optionally with some lines taken out, as `npm run typecheck` would. */
function diagnosticsFor(remove: readonly string[]): string[] {
  const original = readFileSync(objectsFile, 'utf8');
  let source = original;
  for (const line of remove) {
    if (!source.includes(line)) throw new Error(`objects.ts no longer contains: ${line}`);
    source = source.replace(line, '');
  }
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  host.readFile = (file) => (path.resolve(file) === objectsFile ? source : readFile(file));
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, language, onError, create) =>
    path.resolve(file) === objectsFile ? ts.createSourceFile(file, source, language) : getSourceFile(file, language, onError, create);
  // Reusing the previous program keeps the stripe declarations parsed once.
  const program = ts.createProgram([objectsFile], options, host, previous);
  previous = program;
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
}

describe('sandbox objects and the stripe types', () => {
  it('builds every object as the stripe type of the pinned API version', () => {
    expectTypeOf(objects.customerObject).returns.toEqualTypeOf<Stripe.Customer>();
    expectTypeOf(objects.checkoutSessionObject).returns.toEqualTypeOf<Stripe.Checkout.Session>();
    expectTypeOf(objects.subscriptionObject).returns.toEqualTypeOf<Stripe.Subscription>();
    expectTypeOf(objects.subscriptionItemObject).returns.toEqualTypeOf<Stripe.SubscriptionItem>();
    expectTypeOf(objects.invoiceObject).returns.toEqualTypeOf<Stripe.Invoice>();
    expectTypeOf(objects.invoicePaymentObject).returns.toEqualTypeOf<Stripe.InvoicePayment>();
    expectTypeOf(objects.paymentIntentObject).returns.toEqualTypeOf<Stripe.PaymentIntent>();
    expectTypeOf(objects.chargeObject).returns.toEqualTypeOf<Stripe.Charge>();
    expectTypeOf(objects.refundObject).returns.toEqualTypeOf<Stripe.Refund>();
    expectTypeOf(objects.priceObject).returns.toEqualTypeOf<Stripe.Price>();
    expectTypeOf(objects.productObject).returns.toEqualTypeOf<Stripe.Product>();
    expectTypeOf(objects.couponObject).returns.toEqualTypeOf<Stripe.Coupon>();
    expectTypeOf(objects.promotionCodeObject).returns.toEqualTypeOf<Stripe.PromotionCode>();
    expectTypeOf(objects.testClockObject).returns.toEqualTypeOf<Stripe.TestHelpers.TestClock>();
    // A literal without a required field is not a Stripe.Customer (checked by `npm run typecheck`).
    // @ts-expect-error invoice_settings, balance, created and more are required by Stripe.Customer
    const incomplete: Stripe.Customer = { id: 'cus_1', object: 'customer', email: null };
    expect(incomplete.id).toBe('cus_1');
  });

  it('compiles as it is, and fails to compile when a builder leaves out a required field', () => {
    expect(diagnosticsFor([])).toEqual([]);
    const missing = diagnosticsFor([
      "    invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null },\n",
      "    payment_status: 'unpaid',\n",
      '    current_period_end: input.periodEnd,\n',
    ]);
    expect(missing.join('\n')).toMatch(/Property 'invoice_settings' is missing in type .* but required in type 'Customer'/);
    expect(missing.join('\n')).toMatch(/Property 'payment_status' is missing in type .* but required in type 'Session'/);
    expect(missing.join('\n')).toMatch(/Property 'current_period_end' is missing in type .* but required in type 'SubscriptionItem'/);
  }, 180_000); // two full typechecks of the sandbox: 15 s alone, much longer beside the parallel suite
});
