// A loopback port for a server that another process will bind a moment later (the master rank's
// rendezvous, a test kube-apiserver). Asking the kernel for port 0 would hand back an ephemeral
// port, and once our probe closes it any outgoing connection may take that port as its source
// before the server binds it ("address already in use"). Ports below the ephemeral range are
// never given out as source ports, so only another listener can race us for one.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;
const FALLBACK_EPHEMERAL_START = 32_768; // Linux's default ip_local_port_range

/** The first port the kernel may hand out as a source port. */
export function ephemeralStart(rangeFile = '/proc/sys/net/ipv4/ip_local_port_range'): number {
  try {
    const first = Number(readFileSync(rangeFile, 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : FALLBACK_EPHEMERAL_START;
  } catch {
    return FALLBACK_EPHEMERAL_START;
  }
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive ports below the ephemeral range that nothing listens on now. */
export async function freePortRange(count: number, host = '127.0.0.1', random: () => number = Math.random): Promise<number> {
  const top = ephemeralStart() - count;
  for (let attempt = 0; attempt < 64; attempt++) {
    const base = LOWEST + Math.floor(random() * (top - LOWEST));
    let free = true;
    for (let i = 0; i < count && free; i++) free = await canListen(base + i, host);
    if (free) return base;
  }
  throw new Error(`no ${count} free consecutive port(s) between ${LOWEST} and ${top + count} on ${host} after 64 tries`);
}

/** A port below the ephemeral range that nothing listens on now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return freePortRange(1, host);
}
