// mDNS discovery's pure helpers (no sockets): interface resolution, instance names, TXT records,
// subnets, option checks. The traffic between network namespaces is test/e2e/mdns.test.ts.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { DiscoveryError, MdnsDiscovery, decodePeerTxt, inSubnet, instanceNameFor, resolveInterface, type DiscoveryLogger } from '../src/net/mdns.ts';

const silentLogger: DiscoveryLogger = { debug() {}, info() {}, warn() {}, error() {} };

function info(address: string, netmask: string, internal = false): os.NetworkInterfaceInfo {
  return { address, netmask, family: 'IPv4', mac: '02:00:00:00:00:01', internal, cidr: `${address}/24` };
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(DiscoveryError);
  expect((thrown as DiscoveryError).code).toBe(code);
  if (message) expect((thrown as Error).message).toMatch(message);
}

describe('resolveInterface', () => {
  const interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {
    lo: [info('127.0.0.1', '255.0.0.0', true)],
    eth0: [
      { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
      info('198.18.0.7', '255.255.255.0'),
    ],
    v6only: [{ address: 'fe80::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:02', internal: false, cidr: 'fe80::2/64', scopeid: 3 }],
  };

  it('resolves a name to its IPv4 address and netmask', () => {
    expect(resolveInterface('eth0', interfaces)).toEqual({ name: 'eth0', address: '198.18.0.7', netmask: '255.255.255.0' });
    expect(resolveInterface('lo', interfaces)).toEqual({ name: 'lo', address: '127.0.0.1', netmask: '255.0.0.0' });
  });

  it('accepts a local IPv4 address instead of a name', () => {
    expect(resolveInterface('198.18.0.7', interfaces).name).toBe('eth0');
  });

  it('throws EINTERFACE naming the interface and listing the available ones', () => {
    expectCode(() => resolveInterface('wlan9', interfaces), 'EINTERFACE', /"wlan9" not found.*lo \(127\.0\.0\.1\).*eth0 \(198\.18\.0\.7\).*v6only \(no IPv4\)/);
    expectCode(() => resolveInterface('v6only', interfaces), 'EINTERFACE', /"v6only" has no IPv4 address/);
    expectCode(() => resolveInterface('10.9.9.9', interfaces), 'EINTERFACE', /not found/);
    expectCode(() => resolveInterface('__proto__', interfaces), 'EINTERFACE', /not found/);
    expectCode(() => resolveInterface('eth0', {}), 'EINTERFACE', /available: none/);
  });

  it('uses os.networkInterfaces() by default', () => {
    expect(resolveInterface('lo').address).toBe('127.0.0.1');
    expectCode(() => resolveInterface('no-such-interface-xyz'), 'EINTERFACE', /no-such-interface-xyz/);
  });
});

describe('mdns helpers', () => {
  it('instanceNameFor keeps names within one DNS label and unique', () => {
    expect(instanceNameFor('node-1')).toBe('berkeley-agent node-1');
    const long = instanceNameFor('x'.repeat(64));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long).not.toBe(instanceNameFor(`${'x'.repeat(63)}y`));
    // Dots are label separators; a.b and a-b must not collide after sanitising.
    expect(instanceNameFor('a.b')).not.toContain('.');
    expect(instanceNameFor('a.b')).not.toBe(instanceNameFor('a-b'));
  });

  it('decodePeerTxt validates strictly and never throws', () => {
    const txt = (...entries: string[]): Buffer[] => entries.map((e) => Buffer.from(e));
    expect(decodePeerTxt(txt('id=n1', 'prio=5', 'cluster=lab', 'pv=1'))).toEqual({
      ok: true,
      value: { nodeId: 'n1', priority: 5, cluster: 'lab', protocolVersion: 1 },
    });
    // Keys are case-insensitive, the first occurrence wins, unknown keys are ignored.
    expect(decodePeerTxt(txt('ID=n1', 'id=n2', 'prio=0', 'cluster=lab', 'pv=0', 'extra=1', 'flag'))).toMatchObject({ ok: true, value: { nodeId: 'n1', priority: 0 } });
    for (const bad of [
      txt('prio=5', 'cluster=lab', 'pv=1'),
      txt('id=', 'prio=5', 'cluster=lab', 'pv=1'),
      txt('id=has space', 'prio=5', 'cluster=lab', 'pv=1'),
      txt(`id=${'x'.repeat(65)}`, 'prio=5', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=05', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=-1', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=1e3', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=99999999999', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=5', 'pv=1'),
      txt('id=n1', 'prio=5', 'cluster=lab', 'pv=65536'),
      [Buffer.from([0x69, 0x64, 0x3d, 0xff]), ...txt('prio=5', 'cluster=lab', 'pv=1')],
    ]) {
      expect(decodePeerTxt(bad).ok, bad.map(String).join(' ')).toBe(false);
    }
    for (const garbage of [undefined, null, 'id=n1', 42, {}, [1, 2], [{}]]) expect(decodePeerTxt(garbage).ok).toBe(false);
  });

  it('inSubnet compares under the netmask', () => {
    expect(inSubnet('198.18.0.200', '198.18.0.1', '255.255.255.0')).toBe(true);
    expect(inSubnet('198.18.1.2', '198.18.0.1', '255.255.255.0')).toBe(false);
    expect(inSubnet('198.19.1.2', '198.18.0.1', '255.254.0.0')).toBe(true);
    expect(inSubnet('not-an-ip', '198.18.0.1', '255.255.255.0')).toBe(false);
  });

  it('the constructor rejects bad options with EINVAL/EINTERFACE without opening sockets', () => {
    const base = { nodeId: 'n1', priority: 1, cluster: 'lab', port: 7412, protocolVersion: 1, onUp() {}, onDown() {}, logger: silentLogger };
    expectCode(() => new MdnsDiscovery({ ...base, nodeId: '' }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, nodeId: 'a b' }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, cluster: 'x'.repeat(65) }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, priority: -1 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, port: 0 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, queryIntervalMs: 0 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, interfaceAddress: 'eth0' }), 'EINVAL', /resolveInterface/);
    // An address no local interface has: its netmask cannot be found.
    expectCode(() => new MdnsDiscovery({ ...base, interfaceAddress: '198.19.255.254' }), 'EINTERFACE');
    // Construction alone is inert: stop() without start() resolves at once.
    return new MdnsDiscovery(base).stop();
  });
});
