import { describe, expect, it } from 'vitest';

import { advertisedHost, hostPort } from '../../../runtime/rendezvous/advertise.js';

describe('advertisedHost', () => {
  it('prefers XATTN_ADVERTISE_ADDR', () => {
    expect(advertisedHost({ XATTN_ADVERTISE_ADDR: '10.1.2.3', XATTN_POD_HOSTNAME: 'job-worker-1.job' })).toBe('10.1.2.3');
  });

  it('falls back to the pod hostname set by the operator', () => {
    expect(advertisedHost({ XATTN_POD_HOSTNAME: 'job-worker-1.job.default.svc' })).toBe('job-worker-1.job.default.svc');
  });

  it('uses loopback for local runs and ignores blank values', () => {
    expect(advertisedHost({})).toBe('127.0.0.1');
    expect(advertisedHost({ XATTN_ADVERTISE_ADDR: '  ', XATTN_POD_HOSTNAME: '' })).toBe('127.0.0.1');
  });
});

describe('hostPort', () => {
  it('brackets IPv6 literals only', () => {
    expect(hostPort('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(hostPort('fd00::1', 80)).toBe('[fd00::1]:80');
  });
});
