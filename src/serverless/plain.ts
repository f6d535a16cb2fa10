/**
 * Reading what a function hands back, in the worker, without running any of
 * its code: own data properties only (a getter, a Proxy or a class instance is
 * refused, never invoked), within a byte budget, so the copy ends in bounded
 * time. The copy is plain data, which the main thread then reads as it is.
 */
import { types } from 'node:util';

/** A value a function left that cannot be sent back; the call fails closed. */
export class Unsendable extends Error {}
/** The result is over max_result_bytes. */
export class TooLarge extends Error {}

/** Bytes left for one call's result. */
export class Budget {
  left: number;
  readonly limit: number;
  constructor(limit: number) { this.limit = limit; this.left = limit; }
  take(n: number): void {
    this.left -= n;
    if (this.left < 0) throw new TooLarge(`result is over the ${this.limit}-byte limit`);
  }
}

const MAX_DEPTH = 100;
const { getOwnPropertyDescriptor, getPrototypeOf } = Reflect;
const { keys } = Object;
const { isProxy, isMap, isSet, isDate, isRegExp, isArrayBufferView, isAnyArrayBuffer } = types;
const mapForEach = Map.prototype.forEach;
const setForEach = Set.prototype.forEach;

/** An own data property of `o`, or undefined; a getter or a Proxy is refused. */
export function field(o: unknown, key: string, what: string): unknown {
  if (o === null || typeof o !== 'object') return undefined;
  if (isProxy(o)) throw new Unsendable(`${what} is a Proxy`);
  const d = getOwnPropertyDescriptor(o, key);
  if (d === undefined) return undefined;
  if (!('value' in d)) throw new Unsendable(`${what}.${key} is a getter`);
  return d.value;
}

/** The own enumerable string-keyed data properties of a plain object or array. */
function entries(o: object, what: string): [string, unknown][] {
  const out: [string, unknown][] = [];
  // Object.keys: own, enumerable, string-keyed (o is no Proxy: no trap runs).
  for (const k of keys(o)) {
    const d = getOwnPropertyDescriptor(o, k)!;
    if (!('value' in d)) throw new Unsendable(`${what}.${k} is a getter`);
    out.push([k, d.value]);
  }
  return out;
}

/** A copy of `v` as plain, cloneable data (cycles kept). */
export function plain(v: unknown, budget: Budget, what: string, seen = new Map<object, unknown>(), depth = 0): unknown {
  switch (typeof v) {
    case 'string': budget.take(v.length + 4); return v;
    case 'number': case 'boolean': case 'undefined': budget.take(8); return v;
    case 'bigint': budget.take(16); return v;
    case 'function': case 'symbol': throw new Unsendable(`${what} is a ${typeof v}, which cannot be sent back`);
  }
  if (v === null) { budget.take(1); return v; }
  const o = v as object;
  const again = seen.get(o);
  if (again !== undefined) return again;
  if (isProxy(o)) throw new Unsendable(`${what} is a Proxy`);
  if (depth > MAX_DEPTH) throw new Unsendable(`${what} is nested more than ${MAX_DEPTH} deep`);
  const proto = getPrototypeOf(o);
  if (proto === Array.prototype) {
    const len = field(o, 'length', what) as number;
    budget.take(8 + len);
    const out: unknown[] = [];
    seen.set(o, out);
    for (let i = 0; i < len; i++) out.push(plain(field(o, String(i), what), budget, `${what}[${i}]`, seen, depth + 1));
    return out;
  }
  if (proto === Object.prototype || proto === null) {
    const out: Record<string, unknown> = {};
    seen.set(o, out);
    budget.take(8);
    for (const [k, x] of entries(o, what)) {
      budget.take(k.length);
      const copy = plain(x, budget, `${what}.${k}`, seen, depth + 1);
      // A name Object.prototype has (__proto__, a frozen toString) is defined: assigned, it would set the
      // copy's prototype or throw. Any other is assigned: defineProperty costs ten times as much.
      if (k in out) Object.defineProperty(out, k, { value: copy, enumerable: true, writable: true, configurable: true });
      else out[k] = copy;
    }
    return out;
  }
  if (isMap(o) && proto === Map.prototype) {
    const out = new Map();
    seen.set(o, out);
    budget.take(8);
    mapForEach.call(o, (x: unknown, k: unknown) => { out.set(plain(k, budget, what, seen, depth + 1), plain(x, budget, what, seen, depth + 1)); });
    return out;
  }
  if (isSet(o) && proto === Set.prototype) {
    const out = new Set();
    seen.set(o, out);
    budget.take(8);
    setForEach.call(o, (x: unknown) => { out.add(plain(x, budget, what, seen, depth + 1)); });
    return out;
  }
  if (isDate(o) || isRegExp(o) || isArrayBufferView(o) || isAnyArrayBuffer(o)) {
    // Cloned from internal slots: no property of theirs is read.
    const out = structuredClone(o) as object;
    budget.take(8 + ((out as { byteLength?: number }).byteLength ?? 0));
    seen.set(o, out);
    return out;
  }
  throw new Unsendable(`${what} is not plain data (an object of another class), which cannot be sent back`);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function headerValue(v: unknown, what: string): string | string[] {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    if (BAD_VALUE.test(v)) throw new Unsendable(`${what} holds a character not allowed in a header value`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => headerValue(x, `${what}[${i}]`) as string);
  throw new Unsendable(`${what} must be a string or an array of strings`);
}

/**
 * Headers as a function left them: names lower-cased and checked, values
 * strings (or arrays of strings) without control characters. `undefined`
 * values are kept as removals.
 */
export function headers(h: unknown, budget: Budget, what: string): Record<string, string | string[] | undefined> {
  if (h === undefined || h === null) return {};
  const copy = plain(h, budget, what);
  if (copy === null || typeof copy !== 'object' || Array.isArray(copy) || getPrototypeOf(copy) !== Object.prototype) throw new Unsendable(`${what} must be an object`);
  const out: Record<string, string | string[] | undefined> = {};
  for (const k in copy as Record<string, unknown>) {
    const name = k.toLowerCase();
    if (!TOKEN.test(name) || name === '__proto__') throw new Unsendable(`${what} has an invalid header name ${JSON.stringify(k.slice(0, 64))}`);
    if (Object.hasOwn(out, name)) throw new Unsendable(`${what} sets the header ${name} twice`);
    const v = (copy as Record<string, unknown>)[k];
    out[name] = v === undefined ? undefined : headerValue(v, `${what}.${name}`);
  }
  return out;
}

/** A status a reply or response may carry. */
export function status(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) throw new Unsendable(`${what} must be an integer from 100 to 599`);
  return v;
}

/** A body: a string, bytes, or plain data sent as JSON. */
export function body(v: unknown, budget: Budget, what: string): unknown {
  if (v === undefined || v === null || typeof v === 'string') return plain(v ?? undefined, budget, what);
  if (typeof v === 'object') return plain(v, budget, what);
  return plain(String(v), budget, what);
}
