// Legacy unicast answers (RFC 6762 §6.7). A query from a port other than 5353 comes from dig,
// nslookup or a plain DNS resolver pointed at port 5353. bonjour-service only answers by
// multicast, which such a client never sees; the RFC says to answer it by unicast, with its id,
// its question, and short TTLs. This keeps the agent visible to standard tools
// (`dig -p 5353 @HOST _berkeley._udp.local PTR`). Building the answer needs no socket.
import { MDNS_LEGACY_QUESTIONS_MAX } from '../core/limits.ts';
import type { MdnsRecord, QueryPacket, Question, RecordsLookup, RemoteInfo } from './mdns-bonjour.ts';

/** RFC 6762 §6.7: answers to legacy unicast queries carry a TTL of at most 10 s. */
export const LEGACY_UNICAST_TTL_S = 10;
export const MDNS_PORT = 5353;

export interface LegacyAnswer {
  response: { id: number; questions: Question[]; answers: MdnsRecord[]; additionals: MdnsRecord[] };
  to: { port: number; address: string };
}

/**
 * The unicast answer to a legacy query from `rinfo`, from the records bonjour publishes; null when
 * the query came from the mDNS port (bonjour answers it by multicast), is malformed, or asks for
 * nothing we have.
 */
export function legacyUnicastAnswer(packet: QueryPacket, rinfo: RemoteInfo, recordsFor: RecordsLookup): LegacyAnswer | null {
  const port = rinfo.port;
  const address = rinfo.address;
  if (typeof port !== 'number' || typeof address !== 'string' || port === MDNS_PORT) return null;
  const questions = (Array.isArray(packet.questions) ? packet.questions : [])
    .slice(0, MDNS_LEGACY_QUESTIONS_MAX)
    .filter((question) => typeof question?.name === 'string' && typeof question.type === 'string');
  const answers: MdnsRecord[] = [];
  const additionals: MdnsRecord[] = [];
  for (const question of questions) {
    const found = question.type === 'ANY' ? ['PTR', 'SRV', 'TXT', 'A'].flatMap((type) => recordsFor(question.name, type)) : recordsFor(question.name, question.type);
    answers.push(...found);
    // As bonjour does for multicast: a PTR answer brings its SRV, TXT and A records along.
    for (const record of found) {
      if (record.type !== 'PTR' || typeof record.data !== 'string') continue;
      const srv = recordsFor(record.data, 'SRV');
      additionals.push(...srv, ...recordsFor(record.data, 'TXT'));
      for (const target of srv) {
        const host = (target.data as { target?: unknown } | undefined)?.target;
        if (typeof host === 'string') additionals.push(...recordsFor(host, 'A'));
      }
    }
  }
  if (answers.length === 0) return null;
  const legacy = (record: MdnsRecord): MdnsRecord => ({ ...record, ttl: Math.min(record.ttl ?? LEGACY_UNICAST_TTL_S, LEGACY_UNICAST_TTL_S), flush: false });
  return { response: { id: packet.id ?? 0, questions, answers: answers.map(legacy), additionals: additionals.map(legacy) }, to: { port, address } };
}
