// Wire messages of the rendezvous store (newline-delimited JSON), validated with zod on receipt:
// nothing a peer sends is trusted before it parses.
import { z } from 'zod';

/** Largest message either side accepts, newline excluded. */
export const MAX_MESSAGE_BYTES = 1 << 20;
export const MAX_KEY_CHARS = 512;
const MAX_KEYS = 1 << 16;

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes as lowercase hex');
const key = z.string().min(1).max(MAX_KEY_CHARS);
const id = z.number().int().nonnegative();

export const clientMessage = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('hello'),
    rank: z.number().int().nonnegative(),
    worldSize: z.number().int().positive(),
    jobName: z.string().max(MAX_KEY_CHARS),
    nonce: hex32,
    proof: hex32.optional(),
  }),
  z.object({ t: z.literal('set'), id, key, value: z.string() }),
  z.object({ t: z.literal('wait'), id, keys: z.array(key).min(1).max(MAX_KEYS), timeoutMs: z.number().int().positive() }),
  z.object({ t: z.literal('bye'), id }),
]);
export type ClientMessage = z.infer<typeof clientMessage>;
export type Hello = Extract<ClientMessage, { t: 'hello' }>;
export type Request = Exclude<ClientMessage, { t: 'hello' }>;

export const serverMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('challenge'), nonce: hex32, auth: z.boolean() }),
  z.object({ t: z.literal('welcome'), proof: hex32.optional() }),
  z.object({ t: z.literal('refused'), code: z.string(), message: z.string() }),
  z.object({ t: z.literal('ok'), id, values: z.array(z.string()).optional() }),
  z.object({ t: z.literal('error'), id, code: z.string(), message: z.string(), missing: z.array(z.string()).optional() }),
]);
export type ServerMessage = z.infer<typeof serverMessage>;

/** Parses one decoded JSON value, or returns a one-line reason. */
export function parseMessage<T>(schema: z.ZodType<T>, value: unknown): { ok: true; msg: T } | { ok: false; reason: string } {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, msg: r.data };
  return { ok: false, reason: `invalid message: ${z.prettifyError(r.error).replace(/\n/g, ' ')}` };
}
