// Errors with a stable code (XATTN_E_*) that tests assert on and the CLI maps to exit codes.

export type ErrorCode =
  | 'XATTN_E_ENV'
  | 'XATTN_E_MANIFEST'
  | 'XATTN_E_USAGE'
  | 'XATTN_E_RENDEZVOUS_TIMEOUT'
  | 'XATTN_E_RENDEZVOUS'
  | 'XATTN_E_AUTH'
  | 'XATTN_E_WORKER_FAILED'
  | 'XATTN_E_CHECKPOINT'
  | 'XATTN_E_DATA'
  | (string & {});

export class XattnError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'XattnError';
  }
}

/** The code of any error: ours, the addon's (err.code = XATTN_E_*), or a generic one. */
export function errorCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'XATTN_E_INTERNAL';
}
