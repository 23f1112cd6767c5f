// The transport's own SHA-256 / HMAC-SHA256 (native/core/hmac_sha256.cc) against RFC 4231 and node:crypto.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { loadAddon } from '../../runtime/native/addon.js';

const addon = loadAddon();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fill = (byte: number, n: number) => Buffer.alloc(n, byte);

// RFC 4231 section 4: key, data, HMAC-SHA-256 (test case 5 is truncated to 128 bits).
const RFC4231: { name: string; key: Buffer; data: Buffer; mac: string }[] = [
  { name: '1', key: fill(0x0b, 20), data: Buffer.from('Hi There'), mac: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  { name: '2', key: Buffer.from('Jefe'), data: Buffer.from('what do ya want for nothing?'), mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { name: '3', key: fill(0xaa, 20), data: fill(0xdd, 50), mac: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe' },
  {
    name: '4',
    key: Buffer.from(Array.from({ length: 25 }, (_, i) => i + 1)),
    data: fill(0xcd, 50),
    mac: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
  },
  { name: '5 (truncated)', key: fill(0x0c, 20), data: Buffer.from('Test With Truncation'), mac: 'a3b6167473100ee06e0c796c2955552b' },
  {
    name: '6',
    key: fill(0xaa, 131),
    data: Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    mac: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  },
  {
    name: '7',
    key: fill(0xaa, 131),
    data: Buffer.from(
      'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
    ),
    mac: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  },
];

describe('hmacSha256 (native)', () => {
  for (const tc of RFC4231) {
    it(`matches RFC 4231 test case ${tc.name}`, () => {
      const mac = hex(addon.hmacSha256(tc.key, tc.data));
      expect(mac.slice(0, tc.mac.length)).toBe(tc.mac);
      expect(mac).toBe(createHmac('sha256', tc.key).update(tc.data).digest('hex'));
    });
  }

  it('matches node:crypto for keys around the 64-byte block size and an empty message', () => {
    for (const keyLen of [0, 1, 63, 64, 65, 200]) {
      const key = Buffer.from(Array.from({ length: keyLen }, (_, i) => (i * 37 + 11) & 0xff));
      for (const data of [Buffer.alloc(0), Buffer.from('xattn-tcp|acceptor|nonce')]) {
        expect(hex(addon.hmacSha256(key, data))).toBe(createHmac('sha256', key).update(data).digest('hex'));
      }
    }
  });
});

describe('sha256 (native)', () => {
  it('matches the FIPS 180-2 examples', () => {
    expect(hex(addon.sha256(Buffer.from('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(addon.sha256(Buffer.alloc(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('matches node:crypto at every padding boundary and for a large input', () => {
    for (const n of [1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, (1 << 20) + 1]) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff));
      expect(hex(addon.sha256(data)), `length ${n}`).toBe(createHash('sha256').update(data).digest('hex'));
    }
  });

  it('reads a typed array view at its offset', () => {
    const backing = Buffer.from('xxabcxx');
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 3);
    expect(hex(addon.sha256(view))).toBe(createHash('sha256').update('abc').digest('hex'));
  });
});
