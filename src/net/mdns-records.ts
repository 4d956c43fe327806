// What our DNS-SD service says and how we read it, without sockets: the service type, instance
// and host names, the TXT record { id, prio, cluster, pv }, and the reading of a response packet
// (PTR, SRV, TXT and A records) into goodbyes and announcements. Decoding never throws: what is not
// ours or not valid is skipped or reported with a reason (multicast-dns hands us untyped objects).
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { CLUSTER_BYTES_MAX, MDNS_PROTOCOL_VERSION_MAX, NODE_ID_BYTES_MAX, PRIORITY_MAX } from '../core/limits.ts';

export const SERVICE_TYPE = 'berkeley';
export const SERVICE_PROTOCOL = 'udp';
/** Fully qualified DNS-SD service type we browse for. */
export const SERVICE_FQDN = `_${SERVICE_TYPE}._${SERVICE_PROTOCOL}.local`;
/** A DNS label is at most 63 bytes (RFC 1035); dns-packet does not check and corrupts longer ones. */
const DNS_LABEL_BYTES_MAX = 63;
const INSTANCE_PREFIX = 'berkeley-agent ';
/** Node ids and cluster names are printable ASCII without spaces (same rule as the wire codec). */
const IDENTIFIER_PATTERN = /^[\x21-\x7e]+$/;

export interface DiscoveredPeer {
  nodeId: string;
  priority: number;
  cluster: string;
  protocolVersion: number;
  /** IPv4 address to send frames to. */
  address: string;
  port: number;
}

/** What a node announces in its TXT record. */
export type PeerTxt = Omit<DiscoveredPeer, 'address' | 'port'>;

const shortHash = (text: string, hexChars: number): string => createHash('sha256').update(text).digest('hex').slice(0, hexChars);

/**
 * DNS-SD instance name for a node: `berkeley-agent <nodeId>`. Dots (label separators; bonjour
 * would turn them into '-') are replaced, and a short hash of the real id is appended whenever the
 * name had to be altered, so distinct ids never share a name (a name conflict makes bonjour stop
 * the service and send a goodbye for the *other* node's name). At most 63 bytes.
 */
export function instanceNameFor(nodeId: string): string {
  const plain = `${INSTANCE_PREFIX}${nodeId}`;
  const sanitized = plain.replaceAll('.', '-');
  if (sanitized === plain && Buffer.byteLength(plain) <= DNS_LABEL_BYTES_MAX) return plain;
  const suffix = `-${shortHash(nodeId, 8)}`;
  let head = sanitized;
  // Node ids are ASCII (validated), so byte length equals string length here; loop anyway in case
  // a caller passes something else.
  while (Buffer.byteLength(head) + suffix.length > DNS_LABEL_BYTES_MAX) head = head.slice(0, -1);
  return `${head}${suffix}`;
}

/** The lower-cased FQDN of a node's service instance (how goodbyes and announcements name it). */
export function instanceFqdnFor(nodeId: string): string {
  return `${instanceNameFor(nodeId)}.${SERVICE_FQDN}`.toLowerCase();
}

/** SRV target for a node: unique per node id (namespaces and cloned VMs share os.hostname()). */
export function hostNameFor(nodeId: string): string {
  return `berkeley-${shortHash(nodeId, 12)}.local`;
}

/** The TXT record we publish (bonjour-service encodes the object as `key=value` strings). */
export function encodePeerTxt(txt: PeerTxt): Record<string, string> {
  return { id: txt.nodeId, prio: String(txt.priority), cluster: txt.cluster, pv: String(txt.protocolVersion) };
}

export type TxtResult = { ok: true; value: PeerTxt } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes and strictly validates our TXT record (array of `key=value` strings as dns-packet
 * returns them). Keys are case-insensitive and the first occurrence wins (RFC 6763 §6.4). Never
 * throws.
 */
export function decodePeerTxt(data: unknown): TxtResult {
  if (!Array.isArray(data)) return { ok: false, reason: 'TXT data is not an array' };
  const fields = new Map<string, string>();
  for (const item of data) {
    let text: string;
    try {
      if (typeof item === 'string') text = item;
      else if (item instanceof Uint8Array) text = utf8.decode(item);
      else return { ok: false, reason: 'TXT entry is not bytes' };
    } catch {
      return { ok: false, reason: 'TXT entry is not UTF-8' };
    }
    const eq = text.indexOf('=');
    if (eq <= 0) continue; // boolean attribute or empty key: not ours, ignore
    const key = text.slice(0, eq).toLowerCase();
    if (!fields.has(key)) fields.set(key, text.slice(eq + 1));
  }
  const id = fields.get('id');
  const prio = fields.get('prio');
  const cluster = fields.get('cluster');
  const pv = fields.get('pv');
  if (id === undefined || !isIdentifier(id, NODE_ID_BYTES_MAX)) return { ok: false, reason: 'bad or missing id' };
  if (cluster === undefined || !isIdentifier(cluster, CLUSTER_BYTES_MAX)) return { ok: false, reason: 'bad or missing cluster' };
  const priority = parseDecimal(prio, PRIORITY_MAX);
  if (priority === undefined) return { ok: false, reason: 'bad or missing prio' };
  const protocolVersion = parseDecimal(pv, MDNS_PROTOCOL_VERSION_MAX);
  if (protocolVersion === undefined) return { ok: false, reason: 'bad or missing pv' };
  return { ok: true, value: { nodeId: id, priority, cluster, protocolVersion } };
}

/** 1..bytesMax printable ASCII characters without spaces. */
export function isIdentifier(text: string, bytesMax: number): boolean {
  return text.length > 0 && text.length <= bytesMax && IDENTIFIER_PATTERN.test(text);
}

/** Canonical unsigned decimal (no sign, no leading zeros, no spaces) in 0..max, else undefined. */
function parseDecimal(text: string | undefined, max: number): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(text)) return undefined;
  const value = Number(text);
  return value <= max ? value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Response packets. Minimal shapes of what multicast-dns hands us (untyped; every field is checked).

export interface ResourceRecord {
  name?: unknown;
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}
export interface ResponsePacket {
  answers?: unknown;
  additionals?: unknown;
}

const lower = (name: unknown): string | undefined => (typeof name === 'string' ? name.toLowerCase() : undefined);
const live = (rr: ResourceRecord): boolean => typeof rr.ttl === 'number' && rr.ttl > 0;

/** One of our services in a response: valid (with the A records of its SRV target), or why not. */
export type ServiceAnswer =
  | { ok: true; fqdn: string; port: number; txt: PeerTxt; addresses: string[] }
  | { ok: false; fqdn: string; why: 'bad SRV port' }
  | { ok: false; fqdn: string; why: 'bad TXT'; reason: string };

export interface ServiceResponse {
  /** Lower-cased instance FQDNs that said goodbye (PTR with TTL 0), in packet order. */
  goodbyes: string[];
  /** Announcements (PTR with TTL > 0 plus its SRV and TXT), in packet order; bare PTRs are left out. */
  announcements: ServiceAnswer[];
}

/**
 * Reads a response packet for our service type. null: it has no PTR of ours (most mDNS traffic on
 * a LAN is for other service types). Never throws.
 */
export function readServiceResponse(packet: ResponsePacket): ServiceResponse | null {
  const records = [
    ...(Array.isArray(packet.answers) ? (packet.answers as ResourceRecord[]) : []),
    ...(Array.isArray(packet.additionals) ? (packet.additionals as ResourceRecord[]) : []),
  ].filter((rr): rr is ResourceRecord => typeof rr === 'object' && rr !== null);
  const pointers = records.filter((rr) => rr.type === 'PTR' && lower(rr.name) === SERVICE_FQDN && typeof rr.data === 'string');
  if (pointers.length === 0) return null;
  // Goodbyes first (TTL 0), as a re-publish may carry a goodbye and a new announcement.
  const goodbyes = pointers.filter((ptr) => ptr.ttl === 0).map((ptr) => (ptr.data as string).toLowerCase());
  const announcements: ServiceAnswer[] = [];
  for (const ptr of pointers) {
    if (!live(ptr)) continue;
    const answer = readAnnouncement((ptr.data as string).toLowerCase(), records);
    if (answer !== null) announcements.push(answer);
  }
  return { goodbyes, announcements };
}

function readAnnouncement(fqdn: string, records: ResourceRecord[]): ServiceAnswer | null {
  const srv = records.find((rr) => rr.type === 'SRV' && lower(rr.name) === fqdn && live(rr));
  const txt = records.find((rr) => rr.type === 'TXT' && lower(rr.name) === fqdn && live(rr));
  // A bare PTR (e.g. a known-answer list); the next full answer will carry SRV and TXT.
  if (!srv || !txt) return null;
  const srvData = srv.data as { port?: unknown; target?: unknown } | undefined;
  const port = srvData?.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, fqdn, why: 'bad SRV port' };
  const decoded = decodePeerTxt(txt.data);
  if (!decoded.ok) return { ok: false, fqdn, why: 'bad TXT', reason: decoded.reason };
  const target = lower(srvData?.target);
  const addresses = records
    .filter((rr) => rr.type === 'A' && live(rr) && target !== undefined && lower(rr.name) === target)
    .map((rr) => rr.data)
    .filter((a): a is string => typeof a === 'string' && isIPv4(a));
  return { ok: true, fqdn, port, txt: decoded.value, addresses };
}
