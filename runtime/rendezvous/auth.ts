// Mutual authentication with the job token: each side proves it holds the token by an HMAC over the
// other side's fresh nonce and the joining rank's identity. The token never crosses the wire.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const AUTH_FAILED = "authentication failed: peer does not hold this job's token";

export interface Identity {
  rank: number;
  worldSize: number;
  jobName: string;
}

export function newNonce(): string {
  return randomBytes(32).toString('hex');
}

// JSON array encoding keeps the fields unambiguous (a job name may contain any separator).
function proof(token: string, label: string, nonce: string, id: Identity): string {
  return createHmac('sha256', token)
    .update(JSON.stringify([label, nonce, id.rank, id.worldSize, id.jobName]))
    .digest('hex');
}

/** The joining client's proof over the server's nonce. */
export function clientProof(token: string, serverNonce: string, id: Identity): string {
  return proof(token, 'xattn-rdv', serverNonce, id);
}

/** The server's proof over the client's nonce (a different label, so one cannot stand for the other). */
export function serverProof(token: string, clientNonce: string, id: Identity): string {
  return proof(token, 'xattn-rdv-server', clientNonce, id);
}

/** Constant-time comparison of two hex digests; false for anything malformed or missing. */
export function proofMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected, 'hex');
  const b = Buffer.from(given, 'hex');
  return a.length === 32 && b.length === a.length && timingSafeEqual(a, b);
}
