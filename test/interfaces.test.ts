// Interface helpers (src/net/interfaces.ts) on a given interface table: whether an address is
// this host's, and whether a --peer endpoint is this agent's own socket.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { isLocalAddress, isOwnEndpoint } from '../src/net/interfaces.ts';

const info = (address: string): os.NetworkInterfaceInfo => ({ address, netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: `${address}/24` });
const TABLE = { lo: [{ ...info('127.0.0.1'), internal: true }], eth0: [info('198.18.0.7')] };

describe('interfaces', () => {
  it('isLocalAddress: an address of any interface in the table', () => {
    expect(isLocalAddress('198.18.0.7', TABLE)).toBe(true);
    expect(isLocalAddress('198.18.0.8', TABLE)).toBe(false);
  });

  it('isOwnEndpoint: our port at our bound address, or at any local address when bound to all', () => {
    expect(isOwnEndpoint({ address: '198.18.0.7', port: 7412 }, { address: '198.18.0.7', port: 7412 }, TABLE)).toBe(true);
    expect(isOwnEndpoint({ address: '198.18.0.7', port: 7412 }, { address: '0.0.0.0', port: 7412 }, TABLE)).toBe(true);
    expect(isOwnEndpoint({ address: '198.18.0.8', port: 7412 }, { address: '0.0.0.0', port: 7412 }, TABLE)).toBe(false);
    expect(isOwnEndpoint({ address: '198.18.0.7', port: 7413 }, { address: '0.0.0.0', port: 7412 }, TABLE)).toBe(false);
    expect(isOwnEndpoint({ address: '127.0.0.1', port: 7412 }, { address: '198.18.0.7', port: 7412 }, TABLE)).toBe(false);
  });
});
