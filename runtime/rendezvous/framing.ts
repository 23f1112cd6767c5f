// Newline-delimited JSON framing with a size cap, kept free of I/O so it can be tested directly.
import { XattnError } from '../errors.js';
import { MAX_MESSAGE_BYTES } from './protocol.js';

const NEWLINE = 0x0a;

export type DecodeResult = { messages: unknown[]; error?: string };

/** Splits a byte stream into JSON values; a line over the cap or not JSON ends the stream with an error. */
export class LineDecoder {
  private parts: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  push(chunk: Buffer): DecodeResult {
    const messages: unknown[] = [];
    if (this.failed) return { messages, error: 'stream already rejected' };
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      const line = this.take(chunk.subarray(start, nl));
      start = nl + 1;
      if (line.length > this.maxBytes) return this.fail(messages, `message of ${line.length} bytes exceeds the ${this.maxBytes}-byte limit`);
      if (line.length === 0) continue;
      try {
        messages.push(JSON.parse(line.toString('utf8')));
      } catch {
        return this.fail(messages, 'malformed JSON');
      }
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      this.parts.push(rest);
      this.buffered += rest.length;
    }
    if (this.buffered > this.maxBytes) return this.fail(messages, `message exceeds the ${this.maxBytes}-byte limit`);
    return { messages };
  }

  private take(tail: Buffer): Buffer {
    if (this.parts.length === 0) return tail;
    const line = Buffer.concat([...this.parts, tail]);
    this.parts = [];
    this.buffered = 0;
    return line;
  }

  private fail(messages: unknown[], error: string): DecodeResult {
    this.failed = true;
    this.parts = [];
    this.buffered = 0;
    return { messages, error };
  }
}

/** One framed message; refuses to build a message the peer would reject. */
export function encodeMessage(msg: object, maxBytes = MAX_MESSAGE_BYTES): string {
  const line = JSON.stringify(msg);
  const bytes = Buffer.byteLength(line);
  if (bytes > maxBytes) {
    throw new XattnError('XATTN_E_RENDEZVOUS', `rendezvous message of ${bytes} bytes exceeds the ${maxBytes}-byte limit (value too large)`);
  }
  return line + '\n';
}
