// Which host name or address the other ranks should dial to reach this rank's transport.
import { ENV } from '../../crds/env.js';

export const ADVERTISE_ADDR_ENV = 'XATTN_ADVERTISE_ADDR';

/** An explicit address wins, then the pod's DNS name (set by the operator), else loopback for local runs. */
export function advertisedHost(env: NodeJS.ProcessEnv): string {
  const explicit = env[ADVERTISE_ADDR_ENV]?.trim();
  if (explicit) return explicit;
  const pod = env[ENV.podHostname]?.trim();
  if (pod) return pod;
  return '127.0.0.1';
}

/** "host:port", bracketing IPv6 literals. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
