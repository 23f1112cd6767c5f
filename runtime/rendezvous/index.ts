// The rendezvous: rank 0's key-value store that the ranks use to find each other.
export { joinRendezvous, type Rendezvous, type RendezvousOptions } from './rendezvous.js';
export { RendezvousServer, type Logger, type ServerOptions } from './server.js';
export { advertisedHost, hostPort } from './advertise.js';
