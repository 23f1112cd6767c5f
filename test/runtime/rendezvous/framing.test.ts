import { describe, expect, it } from 'vitest';

import { encodeMessage, LineDecoder } from '../../../runtime/rendezvous/framing.js';

describe('LineDecoder', () => {
  it('reassembles messages split across chunks and splits several in one chunk', () => {
    const d = new LineDecoder(1000);
    expect(d.push(Buffer.from('{"a":1}\n{"b"'))).toEqual({ messages: [{ a: 1 }] });
    expect(d.push(Buffer.from(':2'))).toEqual({ messages: [] });
    expect(d.push(Buffer.from('}\n{"c":"é"}\n'))).toEqual({ messages: [{ b: 2 }, { c: 'é' }] });
  });

  it('rejects a line over the cap even before its newline arrives', () => {
    const d = new LineDecoder(10);
    expect(d.push(Buffer.from('{"k":"0123'))).toEqual({ messages: [] });
    expect(d.push(Buffer.from('45678"}')).error).toBe('message exceeds the 10-byte limit');
  });

  it('accepts a line of exactly the cap and rejects one byte more', () => {
    expect(new LineDecoder(9).push(Buffer.from('"1234567"\n'))).toEqual({ messages: ['1234567'] });
    expect(new LineDecoder(8).push(Buffer.from('"1234567"\n')).error).toBe('message of 9 bytes exceeds the 8-byte limit');
  });

  it('reports malformed JSON and stays rejected afterwards', () => {
    const d = new LineDecoder(100);
    expect(d.push(Buffer.from('{"ok":true}\nnot json\n'))).toEqual({ messages: [{ ok: true }], error: 'malformed JSON' });
    expect(d.push(Buffer.from('{"ok":true}\n')).error).toBeDefined();
  });
});

describe('encodeMessage', () => {
  it('frames a message as one line even when values contain newlines', () => {
    const line = encodeMessage({ value: 'a\nb' });
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual({ value: 'a\nb' });
  });

  it('refuses to build a message the peer would reject', () => {
    expect(() => encodeMessage({ value: 'x'.repeat(100) }, 50)).toThrow(/exceeds the 50-byte limit/);
  });
});
