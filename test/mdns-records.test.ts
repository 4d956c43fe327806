// The mDNS pieces that need no socket: our TXT record and names (mdns-records.ts), reading a
// response packet, the peer table (mdns-peers.ts) and the legacy unicast answer (mdns-responder.ts).
import { describe, expect, it } from 'vitest';
import { MDNS_LEGACY_QUESTIONS_MAX, MDNS_PROTOCOL_VERSION_MAX } from '../src/core/limits.ts';
import type { MdnsRecord } from '../src/net/mdns-bonjour.ts';
import { MdnsPeerTable } from '../src/net/mdns-peers.ts';
import {
  decodePeerTxt,
  encodePeerTxt,
  hostNameFor,
  instanceFqdnFor,
  instanceNameFor,
  readServiceResponse,
  SERVICE_FQDN,
  type DiscoveredPeer,
} from '../src/net/mdns-records.ts';
import { LEGACY_UNICAST_TTL_S, legacyUnicastAnswer, MDNS_PORT } from '../src/net/mdns-responder.ts';

const TXT = { nodeId: 'node-1', priority: 100, cluster: 'lab', protocolVersion: 2 };
/** The TXT strings as dns-packet hands them to us. */
const txtStrings = (txt: Record<string, string>) => Object.entries(txt).map(([key, value]) => `${key}=${value}`);

describe('TXT record', () => {
  it('what we publish decodes to what we announced', () => {
    expect(encodePeerTxt(TXT)).toEqual({ id: 'node-1', prio: '100', cluster: 'lab', pv: '2' });
    expect(decodePeerTxt(txtStrings(encodePeerTxt(TXT)))).toEqual({ ok: true, value: TXT });
    expect(decodePeerTxt(txtStrings(encodePeerTxt(TXT)).map((text) => new TextEncoder().encode(text)))).toEqual({ ok: true, value: TXT });
  });

  it('the protocol version is bounded by MDNS_PROTOCOL_VERSION_MAX', () => {
    expect(decodePeerTxt(txtStrings({ ...encodePeerTxt(TXT), pv: String(MDNS_PROTOCOL_VERSION_MAX) })).ok).toBe(true);
    expect(decodePeerTxt(txtStrings({ ...encodePeerTxt(TXT), pv: String(MDNS_PROTOCOL_VERSION_MAX + 1) }))).toEqual({ ok: false, reason: 'bad or missing pv' });
  });
});

describe('names', () => {
  it('instance FQDN and host name are per node id', () => {
    expect(instanceFqdnFor('Node-1')).toBe(`berkeley-agent node-1.${SERVICE_FQDN}`);
    expect(instanceFqdnFor('a.b')).toBe(`${instanceNameFor('a.b')}.${SERVICE_FQDN}`.toLowerCase());
    expect(hostNameFor('node-1')).toMatch(/^berkeley-[0-9a-f]{12}\.local$/);
    expect(hostNameFor('node-1')).not.toBe(hostNameFor('node-2'));
  });
});

/** A full announcement of one node as bonjour sends it (PTR, SRV, TXT, A). */
function announcement(nodeId: string, options: { ttl?: number; port?: unknown; address?: string; txt?: string[] } = {}) {
  const ttl = options.ttl ?? 4500;
  const fqdn = `${instanceNameFor(nodeId)}.${SERVICE_FQDN}`;
  const host = hostNameFor(nodeId);
  return {
    answers: [{ name: SERVICE_FQDN, type: 'PTR', ttl, data: fqdn }],
    additionals: [
      { name: fqdn, type: 'SRV', ttl, data: { port: options.port ?? 7412, target: host } },
      { name: fqdn, type: 'TXT', ttl, data: options.txt ?? txtStrings(encodePeerTxt({ ...TXT, nodeId })) },
      { name: host, type: 'A', ttl, data: options.address ?? '198.18.0.2' },
      { name: 'other.local', type: 'A', ttl, data: '10.9.9.9' },
    ],
  };
}

describe('readServiceResponse', () => {
  it('an announcement: the instance, its port, TXT and the A records of its SRV target only', () => {
    expect(readServiceResponse(announcement('node-2'))).toEqual({
      goodbyes: [],
      announcements: [{ ok: true, fqdn: instanceFqdnFor('node-2'), port: 7412, txt: { ...TXT, nodeId: 'node-2' }, addresses: ['198.18.0.2'] }],
    });
  });

  it('a goodbye (TTL 0) names the instance; it is not an announcement', () => {
    expect(readServiceResponse(announcement('node-2', { ttl: 0 }))).toEqual({ goodbyes: [instanceFqdnFor('node-2')], announcements: [] });
  });

  it('not ours, or malformed: null, skipped, or a reason; never a throw', () => {
    expect(readServiceResponse({ answers: [{ name: '_http._tcp.local', type: 'PTR', ttl: 10, data: 'x' }] })).toBeNull();
    expect(readServiceResponse({ answers: 'garbage', additionals: [null, 7] })).toBeNull();
    // A bare PTR (a known-answer list): nothing to act on yet.
    expect(readServiceResponse({ answers: announcement('node-2').answers })).toEqual({ goodbyes: [], announcements: [] });
    expect(readServiceResponse(announcement('node-2', { port: 0 }))?.announcements).toEqual([{ ok: false, fqdn: instanceFqdnFor('node-2'), why: 'bad SRV port' }]);
    expect(readServiceResponse(announcement('node-2', { txt: ['id=node 2', 'prio=1', 'cluster=lab', 'pv=2'] }))?.announcements).toEqual([
      { ok: false, fqdn: instanceFqdnFor('node-2'), why: 'bad TXT', reason: 'bad or missing id' },
    ]);
    expect(readServiceResponse(announcement('node-2', { address: 'not-an-address' }))?.announcements[0]).toMatchObject({ ok: true, addresses: [] });
  });
});

describe('MdnsPeerTable', () => {
  const peer = (nodeId: string, change: Partial<DiscoveredPeer> = {}): DiscoveredPeer => ({ ...TXT, nodeId, address: '198.18.0.2', port: 7412, ...change });

  it('new, same, changed, and a goodbye by instance name', () => {
    const table = new MdnsPeerTable(8);
    expect(table.announce('fqdn-a', peer('a'))).toEqual({ replacedNodeId: null, outcome: 'new', previousFqdn: null });
    expect(table.announce('fqdn-a', peer('a')).outcome).toBe('same');
    expect(table.announce('fqdn-a', peer('a', { port: 7413 })).outcome).toBe('changed');
    expect(table.list()).toEqual([peer('a', { port: 7413 })]);
    expect(table.goodbye('fqdn-unknown')).toBeUndefined();
    expect(table.goodbye('fqdn-a')).toBe('a');
    expect(table.size).toBe(0);
  });

  it('at most peersMax node ids; known ones still update', () => {
    const table = new MdnsPeerTable(2);
    table.announce('fqdn-a', peer('a'));
    table.announce('fqdn-b', peer('b'));
    expect(table.announce('fqdn-c', peer('c')).outcome).toBe('limit');
    expect(table.announce('fqdn-a', peer('a', { priority: 5 })).outcome).toBe('changed');
    expect(table.size).toBe(2);
  });

  it('an instance name that now claims another node id replaces it; a node id under two names keeps the last', () => {
    const table = new MdnsPeerTable(8);
    table.announce('fqdn-x', peer('a'));
    expect(table.announce('fqdn-x', peer('b'))).toEqual({ replacedNodeId: 'a', outcome: 'new', previousFqdn: null });
    expect(table.announce('fqdn-y', peer('b'))).toEqual({ replacedNodeId: null, outcome: 'same', previousFqdn: 'fqdn-x' });
    // The old name no longer maps to b: its goodbye is not b's.
    expect(table.goodbye('fqdn-x')).toBeUndefined();
    expect(table.goodbye('fqdn-y')).toBe('b');
  });
});

describe('legacyUnicastAnswer', () => {
  const fqdn = `${instanceNameFor('node-1')}.${SERVICE_FQDN}`;
  const host = hostNameFor('node-1');
  const published: MdnsRecord[] = [
    { name: SERVICE_FQDN, type: 'PTR', ttl: 4500, data: fqdn },
    { name: fqdn, type: 'SRV', ttl: 120, flush: true, data: { port: 7412, target: host } },
    { name: fqdn, type: 'TXT', ttl: 4500, flush: true, data: txtStrings(encodePeerTxt(TXT)) },
    { name: host, type: 'A', ttl: 120, flush: true, data: '198.18.0.1' },
  ];
  const recordsFor = (name: string, type: string) => published.filter((record) => record.name === name && record.type === type);
  const dig = { address: '198.18.0.9', port: 40_000 };

  it('a PTR question from dig: the PTR with its SRV, TXT and A, short TTLs, no cache flush, its id and question', () => {
    const answer = legacyUnicastAnswer({ id: 77, questions: [{ name: SERVICE_FQDN, type: 'PTR' }] }, dig, recordsFor);
    expect(answer?.to).toEqual(dig);
    expect(answer?.response.id).toBe(77);
    expect(answer?.response.questions).toEqual([{ name: SERVICE_FQDN, type: 'PTR' }]);
    expect(answer?.response.answers.map((r) => r.type)).toEqual(['PTR']);
    expect(answer?.response.additionals.map((r) => r.type)).toEqual(['SRV', 'TXT', 'A']);
    for (const record of [...answer!.response.answers, ...answer!.response.additionals]) {
      expect(record.ttl).toBeLessThanOrEqual(LEGACY_UNICAST_TTL_S);
      expect(record.flush).toBe(false);
    }
  });

  it('nothing for a multicast query (bonjour answers it), a malformed sender, or a question we cannot answer', () => {
    expect(legacyUnicastAnswer({ questions: [{ name: SERVICE_FQDN, type: 'PTR' }] }, { address: '198.18.0.9', port: MDNS_PORT }, recordsFor)).toBeNull();
    expect(legacyUnicastAnswer({ questions: [{ name: SERVICE_FQDN, type: 'PTR' }] }, { address: 5, port: 40_000 }, recordsFor)).toBeNull();
    expect(legacyUnicastAnswer({ questions: [{ name: 'other.local', type: 'A' }] }, dig, recordsFor)).toBeNull();
  });

  it('looks at MDNS_LEGACY_QUESTIONS_MAX questions at most', () => {
    const junk = Array.from({ length: MDNS_LEGACY_QUESTIONS_MAX }, () => ({ name: 'other.local', type: 'A' }));
    expect(legacyUnicastAnswer({ questions: [...junk, { name: SERVICE_FQDN, type: 'PTR' }] }, dig, recordsFor)).toBeNull();
    expect(legacyUnicastAnswer({ questions: [{ name: fqdn, type: 'ANY' }] }, dig, recordsFor)?.response.answers.map((r) => r.type)).toEqual(['SRV', 'TXT']);
  });
});
