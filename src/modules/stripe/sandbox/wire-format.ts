import { invalidParam, missingParam } from './sandbox-errors.js';

/**
 * Stripe's request encoding: application/x-www-form-urlencoded with nested keys
 * (`metadata[plan]=PRO`, `line_items[0][price]=price_1`, `expand[]=customer`), every
 * value a string. Arrays come as `[0]`, `[1]`... or `[]`.
 */
export type WireValue = string | WireObject | WireValue[];
export interface WireObject {
  [key: string]: WireValue;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_DEPTH = 8;

function parseKey(key: string): string[] {
  const open = key.indexOf('[');
  if (open === -1) return [key];
  const segments = [key.slice(0, open)];
  const pattern = /\[([^[\]]*)\]/g;
  let match: RegExpExecArray | null;
  let consumed = open;
  while ((match = pattern.exec(key)) !== null) {
    if (match.index !== consumed) throw invalidParam(key, `Invalid parameter name: ${key}`);
    segments.push(match[1] ?? '');
    consumed = pattern.lastIndex;
  }
  if (consumed !== key.length) throw invalidParam(key, `Invalid parameter name: ${key}`);
  return segments;
}

type Node = Record<string, unknown>;

function toWire(node: unknown): WireValue {
  if (typeof node === 'string') return node;
  const record = node as Node & { [APPEND]?: unknown[] };
  const keys = Object.keys(record);
  const appended = record[APPEND];
  if (appended) return appended.map(toWire);
  if (keys.length > 0 && keys.every((key) => /^\d+$/.test(key))) {
    return keys
      .map(Number)
      .sort((a, b) => a - b)
      .map((index) => toWire(record[String(index)]));
  }
  const result: WireObject = Object.create(null) as WireObject;
  for (const key of keys) result[key] = toWire(record[key]);
  return result;
}

const APPEND = Symbol('append');

/** Parses a form-encoded body or query string into nested objects and arrays of strings. */
export function parseStripeForm(text: string): WireObject {
  const root: Node = Object.create(null) as Node;
  for (const [key, value] of new URLSearchParams(text)) {
    const segments = parseKey(key);
    if (segments.length > MAX_DEPTH) throw invalidParam(key, `Parameter ${key} is nested too deeply`);
    if (segments[0] === '') throw invalidParam(key, `Invalid parameter name: ${key}`);
    let node: Node = root;
    for (let index = 0; index < segments.length; index += 1) {
      const segment = segments[index] as string;
      if (FORBIDDEN_KEYS.has(segment)) throw invalidParam(key, `Invalid parameter name: ${key}`);
      const last = index === segments.length - 1;
      if (segment === '') {
        // `name[]=value` appends; `name[][field]` is not something Stripe's clients send.
        if (!last) throw invalidParam(key, `Invalid parameter name: ${key}`);
        const holder = node as Node & { [APPEND]?: unknown[] };
        holder[APPEND] ??= [];
        holder[APPEND].push(value);
        break;
      }
      if (last) {
        if (typeof node[segment] === 'object') throw invalidParam(key, `Parameter ${key} is given both as a value and as a hash`);
        node[segment] = value;
        break;
      }
      const next = node[segment];
      if (typeof next === 'string') throw invalidParam(key, `Parameter ${key} is given both as a value and as a hash`);
      if (next === undefined) {
        const child: Node = Object.create(null) as Node;
        node[segment] = child;
        node = child;
      } else {
        node = next as Node;
      }
    }
  }
  return toWire(root) as WireObject;
}

/** Encodes nested params the way Stripe's clients do (for tests and the sandbox's own callers). */
export function encodeStripeForm(params: Record<string, unknown>): string {
  const pairs: string[] = [];
  const walk = (prefix: string, value: unknown) => {
    if (value === undefined) return;
    if (value === null) {
      pairs.push(`${encodeURIComponent(prefix)}=`);
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => walk(`${prefix}[${index}]`, item));
    } else if (typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) walk(prefix ? `${prefix}[${key}]` : key, child);
    } else {
      pairs.push(`${encodeURIComponent(prefix)}=${encodeURIComponent(String(value))}`);
    }
  };
  walk('', params);
  return pairs.join('&');
}

/**
 * Typed reading of wire params, each refusal naming the parameter as Stripe does
 * (`line_items[0][price]`).
 */
export class Params {
  constructor(
    readonly raw: WireObject,
    private readonly prefix = '',
  ) {}

  private name(key: string): string {
    return this.prefix ? `${this.prefix}[${key}]` : key;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  /** Stripe's "unset" value: an empty string. */
  isEmpty(key: string): boolean {
    return this.raw[key] === '';
  }

  string(key: string, options: { max?: number } = {}): string | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw invalidParam(this.name(key), `Invalid string: ${this.name(key)} must be a string`);
    if (value.length > (options.max ?? 5000)) throw invalidParam(this.name(key), `${this.name(key)} is too long`);
    return value;
  }

  requiredString(key: string, options: { max?: number } = {}): string {
    const value = this.string(key, options);
    if (value === undefined || value === '') throw missingParam(this.name(key));
    return value;
  }

  /** A string or null when sent empty (Stripe's way to clear a field). */
  nullableString(key: string): string | null | undefined {
    const value = this.string(key);
    return value === '' ? null : value;
  }

  enumValue<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(value)) {
      throw invalidParam(this.name(key), `Invalid ${this.name(key)}: must be one of ${allowed.join(', ')}`);
    }
    return value as T;
  }

  integer(key: string, options: { min?: number; max?: number } = {}): number | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) throw invalidParam(this.name(key), `Invalid integer: ${value}`);
    const number = Number(value);
    const min = options.min ?? Number.MIN_SAFE_INTEGER;
    const max = options.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(number) || number < min || number > max) {
      throw invalidParam(this.name(key), `${this.name(key)} must be between ${min} and ${max}`);
    }
    return number;
  }

  /** A decimal such as a coupon's percent_off, as hundredths (12.5 -> 1250), never a binary float. */
  hundredths(key: string, options: { min: number; max: number }): number | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(value);
    if (!match) throw invalidParam(this.name(key), `Invalid decimal: ${value}`);
    const hundredths = Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
    if (hundredths < options.min || hundredths > options.max) {
      throw invalidParam(this.name(key), `${this.name(key)} is out of range`);
    }
    return hundredths;
  }

  boolean(key: string): boolean | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw invalidParam(this.name(key), `Invalid boolean: ${value}`);
  }

  object(key: string): Params | undefined {
    const value = this.raw[key];
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) throw invalidParam(this.name(key), `Invalid hash: ${this.name(key)}`);
    return new Params(value, this.name(key));
  }

  array(key: string): Params[] {
    const value = this.raw[key];
    if (value === undefined || value === '') return [];
    if (!Array.isArray(value)) throw invalidParam(this.name(key), `Invalid array: ${this.name(key)}`);
    return value.map((item, index) => {
      if (typeof item !== 'object' || Array.isArray(item)) throw invalidParam(`${this.name(key)}[${index}]`, 'Invalid hash');
      return new Params(item, `${this.name(key)}[${index}]`);
    });
  }

  stringArray(key: string): string[] {
    const value = this.raw[key];
    if (value === undefined || value === '') return [];
    const items = Array.isArray(value) ? value : [value];
    return items.map((item, index) => {
      if (typeof item !== 'string') throw invalidParam(`${this.name(key)}[${index}]`, 'Invalid string');
      return item;
    });
  }

  /**
   * Metadata as Stripe merges it: keys up to 40 characters, values up to 500, at most 50
   * keys; an empty value deletes the key; `metadata=` clears everything.
   */
  metadata(key = 'metadata', current: Record<string, string> = {}): Record<string, string> | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (value === '') return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw invalidParam(this.name(key), 'Invalid hash');
    const result: Record<string, string> = { ...current };
    for (const [field, entry] of Object.entries(value)) {
      if (typeof entry !== 'string') throw invalidParam(`${this.name(key)}[${field}]`, 'Metadata values must be strings');
      if (field.length > 40) throw invalidParam(`${this.name(key)}[${field}]`, 'Metadata keys can be at most 40 characters');
      if (entry.length > 500) throw invalidParam(`${this.name(key)}[${field}]`, 'Metadata values can be at most 500 characters');
      if (entry === '') delete result[field];
      else result[field] = entry;
    }
    if (Object.keys(result).length > 50) throw invalidParam(this.name(key), 'Metadata can have at most 50 keys');
    return result;
  }

  /** The `expand` list (`expand[]=a` or `expand[0]=a`). */
  expand(): string[] {
    return this.stringArray('expand');
  }
}
