/** The ClientHello reader behind RSA/ECDSA selection: real hellos from Node's client, built ones, and hostile bytes. */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import { captureHello, reframe } from './helpers/tls.ts';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello, type HelloResult } from '../src/tls/client-hello.ts';

const u16 = (n: number) => [n >> 8, n & 0xff];
const u24 = (n: number) => [n >> 16, (n >> 8) & 0xff, n & 0xff];

/** A ClientHello built from its parts (record and handshake headers included). */
function build(o: { suites: number[]; sigalgs?: number[]; versions?: number[]; extRaw?: number[] }): Buffer {
  const ext: number[] = [];
  if (o.sigalgs) ext.push(...u16(0x000d), ...u16(2 + 2 * o.sigalgs.length), ...u16(2 * o.sigalgs.length), ...o.sigalgs.flatMap(u16));
  if (o.versions) ext.push(...u16(0x002b), ...u16(1 + 2 * o.versions.length), 2 * o.versions.length, ...o.versions.flatMap(u16));
  if (o.extRaw) ext.push(...o.extRaw);
  const body = [3, 3, ...new Array(32).fill(7), 0, ...u16(2 * o.suites.length), ...o.suites.flatMap(u16), 1, 0, ...u16(ext.length), ...ext];
  const hs = [1, ...u24(body.length), ...body];
  return Buffer.from([22, 3, 1, ...u16(hs.length), ...hs]);
}

const done = (ecdsa: boolean): HelloResult => ({ state: 'done', ecdsa });
const INVALID: HelloResult = { state: 'invalid' };

describe('parseClientHello: hellos Node sends', () => {
  const real: Record<string, Buffer> = {};
  const opts: Record<string, tls.ConnectionOptions> = {
    default: {},
    rsaSigalgs: { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' },
    ecSigalgs: { sigalgs: 'ecdsa_secp256r1_sha256' },
    tls12Rsa: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' },
    tls12Ec: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
  };
  before(async () => { for (const [k, o] of Object.entries(opts)) real[k] = await captureHello({ servername: 'a.test', ...o }); });

  const cases: { desc: string; hello: string; tls13?: boolean; split?: number; want: HelloResult }[] = [
    { desc: 'a default client accepts ECDSA', hello: 'default', want: done(true) },
    { desc: 'RSA-only signature algorithms', hello: 'rsaSigalgs', want: done(false) },
    { desc: 'ECDSA-only signature algorithms', hello: 'ecSigalgs', want: done(true) },
    { desc: 'TLSv1.2 with ECDHE-RSA suites only', hello: 'tls12Rsa', want: done(false) },
    { desc: 'TLSv1.2 with ECDHE-ECDSA suites only', hello: 'tls12Ec', want: done(true) },
    { desc: 'a default client split into 60-byte records', hello: 'default', split: 60, want: done(true) },
    { desc: 'RSA-only split into 1-byte records', hello: 'rsaSigalgs', split: 1, want: done(false) },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const buf = c.split ? reframe(real[c.hello], c.split) : real[c.hello];
      assert.deepEqual(parseClientHello(buf, c.tls13 ?? true), c.want);
    });
  }

  it('every prefix of a hello asks for more, with a need past what it has', () => {
    for (const name of ['default', 'rsaSigalgs']) {
      const buf = reframe(real[name], 50);
      for (let n = 0; n < buf.length; n++) {
        const r = parseClientHello(buf.subarray(0, n), true);
        assert.equal(r.state, 'more', `${name} at ${n}`);
        if (r.state === 'more') assert.ok(r.need > n && r.need <= buf.length, `${name} at ${n}: need ${r.need}`);
      }
    }
  });

  it('random corruptions of a real hello never throw', () => {
    let seed = 42;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    for (let i = 0; i < 3000; i++) {
      const buf = Buffer.from(real.default);
      for (let k = 0; k < 1 + (i % 4); k++) buf[rnd() % buf.length] = rnd() & 0xff;
      const r = parseClientHello(buf.subarray(0, rnd() % (buf.length + 1)), true);
      assert.ok(['more', 'invalid', 'done'].includes(r.state));
    }
  });
});

describe('parseClientHello: built and hostile input', () => {
  const ECDSA_SUITE = 0xc02b;
  const RSA_SUITE = 0xc02f;
  const TLS13_SUITE = 0x1301;
  const tooLong = build({ suites: [RSA_SUITE] });
  tooLong.writeUInt16BE(0x4001, 3); // record length over 16 KiB
  const manyTiny = reframe(build({ suites: [RSA_SUITE], extRaw: [...u16(0xfafa), ...u16(20000), ...new Array(20000).fill(0)].slice(0, 16000) }), 1);
  const cases: { desc: string; buf: Buffer; tls13?: boolean; want: HelloResult | 'more' }[] = [
    { desc: 'no signature_algorithms, an ECDSA suite: the suite decides', buf: build({ suites: [ECDSA_SUITE] }), want: done(true) },
    { desc: 'no signature_algorithms, RSA suites only', buf: build({ suites: [RSA_SUITE] }), want: done(false) },
    { desc: 'TLS 1.3 offered, ECDSA signatures, no ECDSA 1.2 suite', buf: build({ suites: [TLS13_SUITE, RSA_SUITE], sigalgs: [0x0403], versions: [0x0304, 0x0303] }), want: done(true) },
    { desc: 'the same on a listener capped at TLS 1.2: the 1.2 suites decide', buf: build({ suites: [TLS13_SUITE, RSA_SUITE], sigalgs: [0x0403], versions: [0x0304, 0x0303] }), tls13: false, want: done(false) },
    { desc: 'ECDSA suite but only RSA signatures', buf: build({ suites: [ECDSA_SUITE], sigalgs: [0x0804, 0x0401] }), want: done(false) },
    { desc: 'ECDSA P-384 signature (0x0503)', buf: build({ suites: [ECDSA_SUITE], sigalgs: [0x0503] }), want: done(true) },
    { desc: 'not a handshake record (HTTP)', buf: Buffer.from('GET / HTTP/1.1\r\n\r\n'), want: INVALID },
    { desc: 'an application-data record first', buf: Buffer.from([23, 3, 3, 0, 1, 0]), want: INVALID },
    { desc: 'SSLv2-style first byte', buf: Buffer.from([0x80, 0x2e, 1, 3, 1]), want: INVALID },
    { desc: 'a record of length 0', buf: Buffer.from([22, 3, 1, 0, 0]), want: INVALID },
    { desc: 'a record over 16 KiB', buf: tooLong, want: INVALID },
    { desc: 'a handshake that is not a ClientHello', buf: Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0]), want: INVALID },
    { desc: 'a ClientHello announcing 64 KiB', buf: Buffer.from([22, 3, 1, 0, 4, 1, 1, 0, 0]), want: INVALID },
    { desc: 'a session id length past the end', buf: Buffer.from([22, 3, 1, 0, 39, 1, 0, 0, 35, 3, 3, ...new Array(32).fill(0), 200]), want: INVALID },
    { desc: 'an extension length past the end', buf: build({ suites: [RSA_SUITE], extRaw: [0, 13, 0, 50, 0] }), want: INVALID },
    { desc: 'an odd cipher suites length', buf: Buffer.from([22, 3, 1, 0, 41, 1, 0, 0, 37, 3, 3, ...new Array(32).fill(0), 0, 0, 1, 0xc0]), want: INVALID },
    { desc: 'a hello spread over more than 16 KiB of 1-byte records', buf: manyTiny, want: INVALID },
    { desc: 'only a record header', buf: Buffer.from([22, 3, 1, 0, 200]), want: 'more' },
    { desc: 'nothing yet', buf: Buffer.alloc(0), want: 'more' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const r = parseClientHello(c.buf, c.tls13 ?? true);
      if (c.want === 'more') assert.equal(r.state, 'more');
      else assert.deepEqual(r, c.want);
    });
  }

  it('the bound is one full record and its header', () => assert.equal(MAX_CLIENT_HELLO_BYTES, 16389));
});
