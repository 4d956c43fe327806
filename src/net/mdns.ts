// mDNS / DNS-SD discovery of cluster peers with bonjour-service (GUIDE §4).
//
// Each agent publishes `<instance>._berkeley._udp.local` with its UDP port and a TXT record
// { id, prio, cluster, pv }, and listens for the same service type from others.
//
// We publish with bonjour-service but do NOT use its Browser to consume answers. We listen to the
// underlying multicast-dns 'response' events and interpret PTR/SRV/TXT/A records ourselves,
// because the Browser:
//   - emits 'up' once per instance name and afterwards compares only name/host/port/type/protocol
//     (browser.js updateServiceSrv): a changed address or a changed source (referer) is never
//     reported, so a service first heard through the wrong interface (IP_MULTICAST_ALL) stays
//     locked to that sighting;
//   - keeps every service it has ever seen in an unbounded array and never expires it;
//   - handles goodbyes without telling us where they came from, so they cannot be filtered by
//     source address;
//   - decodes TXT leniently (last duplicate key wins, `key=` yields undefined).
// Our own handler sees the packet's source address (rinfo), enforces maxPeers, validates TXT
// strictly and never throws. The periodic query is exactly what browser.update() sends
// (`mdns.query('_berkeley._udp.local', 'PTR')`).
//
// mDNS is only a hint of who exists: a killed agent sends no goodbye and nothing expires, so
// liveness must come from the agent's own frames (GUIDE §4).

import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import { Bonjour } from 'bonjour-service';
import { CLUSTER_BYTES_MAX, NODE_ID_BYTES_MAX, PEERS_MAX_DEFAULT, PRIORITY_MAX } from '../core/limits.ts';

export const SERVICE_TYPE = 'berkeley';
export const SERVICE_PROTOCOL = 'udp';
/** Fully qualified DNS-SD service type we browse for. */
export const SERVICE_FQDN = `_${SERVICE_TYPE}._${SERVICE_PROTOCOL}.local`;
export const QUERY_INTERVAL_MS_DEFAULT = 5000;
/** stop() gives the goodbye and socket close this long before resolving anyway. */
export const STOP_TIMEOUT_MS = 1000;
/** Warn-level complaints (peer limit, foreign duplicates of our id) at most this often each. */
export const WARN_LOG_INTERVAL_MS = 10_000;
/** A DNS label is at most 63 bytes (RFC 1035); dns-packet does not check and corrupts longer ones. */
const DNS_LABEL_BYTES_MAX = 63;
export const PROTOCOL_VERSION_MAX = 0xffff;
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

export interface DiscoveryLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface MdnsDiscoveryOptions {
  nodeId: string;
  priority: number;
  cluster: string;
  /** Our UDP port, as bound (not 0). */
  port: number;
  protocolVersion: number;
  /** IPv4 address of the chosen interface; undefined = default (all interfaces, no source filter). */
  interfaceAddress?: string;
  /** Netmask of that interface; looked up in os.networkInterfaces() when omitted. */
  interfaceNetmask?: string;
  /** Send a PTR query this often so late joiners and healed partitions are found. */
  queryIntervalMs?: number;
  /** Peers tracked at most; announcements of further node ids are dropped (warned, rate-limited). */
  maxPeers?: number;
  /** A new peer, or a known one whose address, port, priority or protocol version changed. */
  onUp(peer: DiscoveredPeer): void;
  /** The peer sent an mDNS goodbye (graceful stop). */
  onDown(nodeId: string): void;
  logger: DiscoveryLogger;
}

/** Error with a stable machine-readable code (GUIDE §2). */
export class DiscoveryError extends Error {
  constructor(
    readonly code: 'EINTERFACE' | 'EINVAL',
    message: string,
  ) {
    super(message);
    this.name = 'DiscoveryError';
  }
}

// ---------------------------------------------------------------------------------------------
// Interfaces and addresses

export interface ResolvedInterface {
  name: string;
  address: string;
  netmask: string;
}

/**
 * Resolves an interface name (e.g. 'eth0') to its IPv4 address and netmask. Also accepts an IPv4
 * address of a local interface. Throws DiscoveryError code 'EINTERFACE' naming the interface and
 * listing the available ones when it does not exist or has no IPv4 address.
 */
export function resolveInterface(
  name: string,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): ResolvedInterface {
  const describeAvailable = (): string => {
    const entries = Object.entries(interfaces).map(([ifName, infos]) => {
      const v4 = (infos ?? []).filter((i) => i.family === 'IPv4').map((i) => i.address);
      return v4.length > 0 ? `${ifName} (${v4.join(', ')})` : `${ifName} (no IPv4)`;
    });
    return entries.length > 0 ? entries.join(', ') : 'none';
  };
  const pick = (ifName: string, infos: os.NetworkInterfaceInfo[]): ResolvedInterface | undefined => {
    const v4 = infos.filter((i) => i.family === 'IPv4');
    // Prefer a non-internal address; 'lo' (all internal) still resolves when named explicitly.
    const chosen = v4.find((i) => !i.internal) ?? v4[0];
    return chosen && { name: ifName, address: chosen.address, netmask: chosen.netmask };
  };

  const infos = Object.hasOwn(interfaces, name) ? interfaces[name] : undefined;
  if (infos) {
    const resolved = pick(name, infos);
    if (resolved) return resolved;
    throw new DiscoveryError('EINTERFACE', `interface ${JSON.stringify(name)} has no IPv4 address; available: ${describeAvailable()}`);
  }
  if (isIPv4(name)) {
    for (const [ifName, list] of Object.entries(interfaces)) {
      const match = (list ?? []).find((i) => i.family === 'IPv4' && i.address === name);
      if (match) return { name: ifName, address: match.address, netmask: match.netmask };
    }
  }
  throw new DiscoveryError('EINTERFACE', `interface ${JSON.stringify(name)} not found; available: ${describeAvailable()}`);
}

function ipv4ToInt(address: string): number {
  const parts = address.split('.').map(Number);
  return (((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0) as number;
}

/** Whether `address` is in the subnet of `interfaceAddress`/`netmask` (all dotted IPv4). */
export function inSubnet(address: string, interfaceAddress: string, netmask: string): boolean {
  if (!isIPv4(address) || !isIPv4(interfaceAddress) || !isIPv4(netmask)) return false;
  const mask = ipv4ToInt(netmask);
  return ((ipv4ToInt(address) & mask) >>> 0) === ((ipv4ToInt(interfaceAddress) & mask) >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Names and TXT

const shortHash = (text: string, hexChars: number): string =>
  createHash('sha256').update(text).digest('hex').slice(0, hexChars);

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

/** SRV target for a node: unique per node id (namespaces and cloned VMs share os.hostname()). */
function hostNameFor(nodeId: string): string {
  return `berkeley-${shortHash(nodeId, 12)}.local`;
}

export type TxtResult = { ok: true; value: Omit<DiscoveredPeer, 'address' | 'port'> } | { ok: false; reason: string };

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
  const protocolVersion = parseDecimal(pv, PROTOCOL_VERSION_MAX);
  if (protocolVersion === undefined) return { ok: false, reason: 'bad or missing pv' };
  return { ok: true, value: { nodeId: id, priority, cluster, protocolVersion } };
}

function isIdentifier(text: string, bytesMax: number): boolean {
  return text.length > 0 && text.length <= bytesMax && IDENTIFIER_PATTERN.test(text);
}

/** Canonical unsigned decimal (no sign, no leading zeros, no spaces) in 0..max, else undefined. */
function parseDecimal(text: string | undefined, max: number): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(text)) return undefined;
  const value = Number(text);
  return value <= max ? value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Minimal shapes of what multicast-dns hands us (it is untyped; every field is checked).

interface ResourceRecord {
  name?: unknown;
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}
interface ResponsePacket {
  answers?: unknown;
  additionals?: unknown;
}
interface RemoteInfo {
  address?: unknown;
  port?: unknown;
}
/** The multicast-dns instance inside bonjour-service (Bonjour.server.mdns, private in its types). */
interface MulticastDns {
  on(event: 'response', listener: (packet: ResponsePacket, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error' | 'warning', listener: (err: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  query(name: string, type: string, callback?: (err: Error | null) => void): void;
  on(event: 'query', listener: (packet: QueryPacket, rinfo: RemoteInfo) => void): unknown;
  respond(
    response: { id?: number; questions?: Question[]; answers: MdnsRecord[]; additionals?: MdnsRecord[] },
    rinfo: { port: number; address: string },
    callback?: (err: Error | null) => void,
  ): void;
}
interface Question {
  name: string;
  type: string;
  class?: string;
}
interface QueryPacket {
  id?: number;
  questions?: Question[];
}
interface MdnsRecord {
  name: string;
  type: string;
  ttl?: number;
  flush?: boolean;
  data?: unknown;
}
interface BonjourInternals {
  server?: { mdns?: MulticastDns; recordsFor?: (name: string, type: string) => MdnsRecord[] };
}

/** RFC 6762 §6.7: answers to legacy unicast queries carry a TTL of at most 10 s. */
const LEGACY_UNICAST_TTL_S = 10;
const MDNS_PORT = 5353;
/** Questions of one legacy query looked at (a query is a few; more is not a real client). */
const LEGACY_QUESTIONS_MAX = 8;

const lower = (name: unknown): string | undefined => (typeof name === 'string' ? name.toLowerCase() : undefined);

// ---------------------------------------------------------------------------------------------
// Discovery

interface TrackedPeer {
  peer: DiscoveredPeer;
  /** Lower-cased instance FQDN the peer announced, to map its goodbye back to a node id. */
  fqdn: string;
}

export class MdnsDiscovery {
  private readonly opts: MdnsDiscoveryOptions;
  private readonly queryIntervalMs: number;
  private readonly maxPeers: number;
  private readonly netmask: string | undefined;
  private readonly instanceName: string;
  private readonly ownFqdn: string;

  private readonly peers = new Map<string, TrackedPeer>();
  private readonly fqdnToNodeId = new Map<string, string>();
  private readonly lastWarnAt = new Map<string, number>();
  private readonly suppressedWarns = new Map<string, number>();

  private bonjour: Bonjour | undefined;
  private mdns: MulticastDns | undefined;
  private queryTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private stopPromise: Promise<void> | undefined;

  // Arrow functions so they can be removed with removeListener.
  private readonly onResponse = (packet: ResponsePacket, rinfo: RemoteInfo): void => {
    try {
      this.handleResponse(packet, rinfo);
    } catch (err) {
      // A bug here must not take the agent down with it.
      this.warnLimited('handler', { err: errorInfo(err) }, 'mdns response handler failed');
    }
  };
  /**
   * A query from a port other than 5353 is a "legacy unicast" one (dig, nslookup, a plain DNS
   * resolver pointed at port 5353). bonjour-service only answers by multicast, which such a client
   * never sees; RFC 6762 §6.7 says to answer it by unicast, with its id, its question, and short
   * TTLs. This keeps the agent visible to standard tools (`dig -p 5353 @HOST _berkeley._udp.local PTR`).
   */
  private readonly onQuery = (packet: QueryPacket, rinfo: RemoteInfo): void => {
    try {
      const port = rinfo.port;
      const address = rinfo.address;
      if (typeof port !== 'number' || typeof address !== 'string' || port === MDNS_PORT || !this.mdns) return;
      const server = (this.bonjour as unknown as BonjourInternals | undefined)?.server;
      const recordsFor = server?.recordsFor?.bind(server);
      if (!recordsFor) return;
      const questions = (Array.isArray(packet.questions) ? packet.questions : [])
        .slice(0, LEGACY_QUESTIONS_MAX)
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
      if (answers.length === 0) return;
      const legacy = (record: MdnsRecord): MdnsRecord => ({ ...record, ttl: Math.min(record.ttl ?? LEGACY_UNICAST_TTL_S, LEGACY_UNICAST_TTL_S), flush: false });
      this.mdns.respond(
        { id: packet.id ?? 0, questions, answers: answers.map(legacy), additionals: additionals.map(legacy) },
        { port, address },
        (err) => {
          if (err) this.warnLimited('respond', { err: errorInfo(err) }, 'mdns unicast answer could not be sent');
        },
      );
    } catch (err) {
      this.warnLimited('handler', { err: errorInfo(err) }, 'mdns query handler failed');
    }
  };
  private readonly onMdnsError = (err: Error): void => {
    // multicast-dns emits 'error' for EADDRINUSE/EACCES (e.g. something bound 5353 without
    // SO_REUSEADDR). Without this listener the EventEmitter would throw and crash the process.
    this.opts.logger.error({ err: errorInfo(err) }, 'mdns socket error; discovery is not working');
  };
  private readonly onMdnsWarning = (err: Error): void => {
    // addMembership/setMulticastInterface failures and undecodable packets land here.
    this.opts.logger.debug({ err: errorInfo(err) }, 'mdns warning');
  };
  private readonly onMdnsReady = (): void => {
    this.opts.logger.debug({ interfaceAddress: this.opts.interfaceAddress ?? null }, 'mdns socket bound');
  };

  constructor(opts: MdnsDiscoveryOptions) {
    if (!isIdentifier(opts.nodeId, NODE_ID_BYTES_MAX)) {
      throw new DiscoveryError('EINVAL', `nodeId must be 1..${NODE_ID_BYTES_MAX} printable ASCII characters without spaces`);
    }
    if (!isIdentifier(opts.cluster, CLUSTER_BYTES_MAX)) {
      throw new DiscoveryError('EINVAL', `cluster must be 1..${CLUSTER_BYTES_MAX} printable ASCII characters without spaces`);
    }
    if (!Number.isInteger(opts.priority) || opts.priority < 0 || opts.priority > PRIORITY_MAX) {
      throw new DiscoveryError('EINVAL', `priority must be an integer in 0..${PRIORITY_MAX}`);
    }
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new DiscoveryError('EINVAL', `port must be the bound UDP port (1..65535), got ${opts.port}`);
    }
    if (!Number.isInteger(opts.protocolVersion) || opts.protocolVersion < 0 || opts.protocolVersion > PROTOCOL_VERSION_MAX) {
      throw new DiscoveryError('EINVAL', `protocolVersion must be an integer in 0..${PROTOCOL_VERSION_MAX}`);
    }
    this.queryIntervalMs = opts.queryIntervalMs ?? QUERY_INTERVAL_MS_DEFAULT;
    if (!Number.isFinite(this.queryIntervalMs) || this.queryIntervalMs < 100) {
      throw new DiscoveryError('EINVAL', 'queryIntervalMs must be at least 100');
    }
    this.maxPeers = opts.maxPeers ?? PEERS_MAX_DEFAULT;
    if (!Number.isInteger(this.maxPeers) || this.maxPeers < 0) throw new DiscoveryError('EINVAL', 'maxPeers must be a non-negative integer');

    if (opts.interfaceAddress !== undefined) {
      if (!isIPv4(opts.interfaceAddress)) {
        throw new DiscoveryError('EINVAL', `interfaceAddress must be an IPv4 address (resolve names with resolveInterface), got ${JSON.stringify(opts.interfaceAddress)}`);
      }
      // Without the netmask we cannot tell which responses came in through our interface.
      this.netmask = opts.interfaceNetmask ?? resolveInterface(opts.interfaceAddress).netmask;
      if (!isIPv4(this.netmask)) throw new DiscoveryError('EINVAL', `interfaceNetmask must be a dotted IPv4 netmask, got ${this.netmask}`);
    }
    this.opts = opts;
    this.instanceName = instanceNameFor(opts.nodeId);
    this.ownFqdn = `${this.instanceName}.${SERVICE_FQDN}`.toLowerCase();
  }

  /** Publishes our service and starts listening and querying. Call once. */
  start(): void {
    if (this.state !== 'new') {
      this.opts.logger.warn({ state: this.state }, 'MdnsDiscovery.start() called twice; ignored');
      return;
    }
    this.state = 'running';
    const { logger } = this.opts;

    // `interface` must be an address: multicast-dns joins the group and sends on it. Alone it
    // would also bind the socket to that unicast address and receive no multicast, hence
    // `bind: '0.0.0.0'`. Neither option is in bonjour-service's types (they are passed straight
    // to multicast-dns), hence the cast.
    const mdnsOptions: Record<string, unknown> =
      this.opts.interfaceAddress === undefined ? {} : { interface: this.opts.interfaceAddress, bind: '0.0.0.0' };
    // The error callback replaces bonjour's default, which *throws* (inside a socket callback,
    // i.e. uncaught) when answering a query fails, e.g. ENETUNREACH while the link is down.
    const onRespondError = (err: Error): void => this.warnLimited('respond', { err: errorInfo(err) }, 'mdns answer could not be sent');
    this.bonjour = new Bonjour(mdnsOptions as ConstructorParameters<typeof Bonjour>[0], onRespondError);

    const mdns = (this.bonjour as unknown as BonjourInternals).server?.mdns;
    if (!mdns) {
      // bonjour-service changed its internals; we could neither see responses nor catch errors.
      logger.error({}, 'bonjour-service internals not found (server.mdns); mDNS discovery disabled');
      this.bonjour.destroy();
      this.bonjour = undefined;
      return;
    }
    this.mdns = mdns;
    mdns.on('error', this.onMdnsError);
    mdns.on('warning', this.onMdnsWarning);
    mdns.on('ready', this.onMdnsReady);
    mdns.on('response', this.onResponse);
    mdns.on('query', this.onQuery);

    try {
      this.bonjour.publish({
        name: this.instanceName,
        type: SERVICE_TYPE,
        protocol: SERVICE_PROTOCOL,
        port: this.opts.port,
        host: hostNameFor(this.opts.nodeId),
        txt: {
          id: this.opts.nodeId,
          prio: String(this.opts.priority),
          cluster: this.opts.cluster,
          pv: String(this.opts.protocolVersion),
        },
        // No probing: on a conflict bonjour only console.logs, stops our service and sends a
        // goodbye for the *other* node's name. Names embed the node id, so a conflict means a
        // duplicate node id, which we detect and warn about ourselves (handleSelf).
        probe: false,
        // The agent speaks IPv4 only; AAAA records would only bloat every answer.
        disableIPv6: true,
      });
    } catch (err) {
      logger.error({ err: errorInfo(err) }, 'mdns publish failed');
    }

    this.query();
    this.scheduleQuery();
    logger.info(
      { instance: this.instanceName, port: this.opts.port, interfaceAddress: this.opts.interfaceAddress ?? null, queryIntervalMs: this.queryIntervalMs },
      'mdns discovery started',
    );
  }

  /**
   * Sends goodbyes (unpublishAll) and closes the socket. Resolves within STOP_TIMEOUT_MS even if
   * that fails. No onUp/onDown is delivered once stop() has been called. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.stopOnce();
    return this.stopPromise;
  }

  /** Peers currently known (a copy). */
  knownPeers(): DiscoveredPeer[] {
    return [...this.peers.values()].map((t) => ({ ...t.peer }));
  }

  /** Sends a PTR query now (what browser.update() does), e.g. after the link came back. */
  query(): void {
    if (this.state !== 'running' || !this.mdns) return;
    try {
      this.mdns.query(SERVICE_FQDN, 'PTR', (err) => {
        if (err) this.warnLimited('query', { err: errorInfo(err) }, 'mdns query could not be sent');
      });
    } catch (err) {
      this.warnLimited('query', { err: errorInfo(err) }, 'mdns query could not be sent');
    }
  }

  private scheduleQuery(): void {
    // ±10 % jitter so agents started together do not query in lockstep forever.
    const delayMs = this.queryIntervalMs * (0.9 + Math.random() * 0.2);
    this.queryTimer = setTimeout(() => {
      this.query();
      if (this.state === 'running') this.scheduleQuery();
    }, delayMs);
    this.queryTimer.unref();
  }

  private async stopOnce(): Promise<void> {
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    if (this.queryTimer) clearTimeout(this.queryTimer);
    this.queryTimer = undefined;
    this.mdns?.removeListener('response', this.onResponse);
    this.mdns?.removeListener('query', this.onQuery);
    const bonjour = this.bonjour;
    this.bonjour = undefined;
    if (!wasRunning || !bonjour) return;

    const work = new Promise<void>((resolve) => {
      const destroy = (): void => {
        try {
          bonjour.destroy(() => resolve());
        } catch (err) {
          this.opts.logger.debug({ err: errorInfo(err) }, 'mdns destroy failed');
          resolve();
        }
      };
      try {
        // destroy() alone sends no goodbye; unpublishAll sends our records with TTL 0 first.
        bonjour.unpublishAll((err?: Error | null) => {
          if (err) this.opts.logger.debug({ err: errorInfo(err) }, 'mdns goodbye could not be sent');
          destroy();
        });
      } catch (err) {
        this.opts.logger.debug({ err: errorInfo(err) }, 'mdns unpublishAll failed');
        destroy();
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
    });
    const outcome = await Promise.race([work.then(() => 'done' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.opts.logger.warn({ timeoutMs: STOP_TIMEOUT_MS }, 'mdns stop timed out');
    // Keep the error listener attached: a late socket error after stop must still not throw.
    this.mdns?.removeListener('warning', this.onMdnsWarning);
    this.mdns?.removeListener('ready', this.onMdnsReady);
    this.peers.clear();
    this.fqdnToNodeId.clear();
    this.opts.logger.info({}, 'mdns discovery stopped');
  }

  // -------------------------------------------------------------------------------------------
  // Response handling

  private handleResponse(packet: ResponsePacket, rinfo: RemoteInfo): void {
    if (this.state !== 'running') return;
    const records = [
      ...(Array.isArray(packet.answers) ? (packet.answers as ResourceRecord[]) : []),
      ...(Array.isArray(packet.additionals) ? (packet.additionals as ResourceRecord[]) : []),
    ].filter((rr): rr is ResourceRecord => typeof rr === 'object' && rr !== null);
    // Cheap pre-filter: most mDNS traffic on a LAN is for other service types.
    const pointers = records.filter((rr) => rr.type === 'PTR' && lower(rr.name) === SERVICE_FQDN && typeof rr.data === 'string');
    if (pointers.length === 0) return;

    const source = typeof rinfo.address === 'string' ? rinfo.address : '';
    if (this.netmask !== undefined && !inSubnet(source, this.opts.interfaceAddress!, this.netmask)) {
      // IP_MULTICAST_ALL: another socket on this host joined 224.0.0.251 on another interface,
      // so its traffic reaches our 0.0.0.0-bound socket too. Only our interface's subnet counts.
      this.opts.logger.debug({ source, interfaceAddress: this.opts.interfaceAddress }, 'mdns response from outside our interface subnet ignored');
      return;
    }

    // Goodbyes first (TTL 0), as a re-publish may carry a goodbye and a new announcement.
    for (const ptr of pointers) {
      if (ptr.ttl === 0) this.handleGoodbye((ptr.data as string).toLowerCase(), source);
    }
    for (const ptr of pointers) {
      if (typeof ptr.ttl === 'number' && ptr.ttl > 0) this.handleAnnouncement((ptr.data as string).toLowerCase(), records, source);
    }
  }

  private handleGoodbye(fqdn: string, source: string): void {
    if (fqdn === this.ownFqdn) return;
    const nodeId = this.fqdnToNodeId.get(fqdn);
    if (nodeId === undefined) return;
    this.fqdnToNodeId.delete(fqdn);
    this.peers.delete(nodeId);
    this.opts.logger.info({ nodeId, source }, 'mdns peer said goodbye');
    this.opts.onDown(nodeId);
  }

  private handleAnnouncement(fqdn: string, records: ResourceRecord[], source: string): void {
    const live = (rr: ResourceRecord): boolean => typeof rr.ttl === 'number' && rr.ttl > 0;
    const srv = records.find((rr) => rr.type === 'SRV' && lower(rr.name) === fqdn && live(rr));
    const txt = records.find((rr) => rr.type === 'TXT' && lower(rr.name) === fqdn && live(rr));
    if (!srv || !txt) {
      // A bare PTR (e.g. a known-answer list); the next full answer will carry SRV and TXT.
      return;
    }
    const srvData = srv.data as { port?: unknown; target?: unknown } | undefined;
    const port = srvData?.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.opts.logger.debug({ fqdn, source }, 'mdns service ignored: bad SRV port');
      return;
    }
    const decoded = decodePeerTxt(txt.data);
    if (!decoded.ok) {
      this.opts.logger.debug({ fqdn, source, reason: decoded.reason }, 'mdns service ignored: bad TXT');
      return;
    }
    const info = decoded.value;
    if (info.nodeId === this.opts.nodeId) {
      this.handleSelf(fqdn, port, source);
      return;
    }
    if (info.cluster !== this.opts.cluster) {
      this.opts.logger.debug({ nodeId: info.nodeId, cluster: info.cluster }, 'mdns peer of another cluster ignored');
      return;
    }

    const target = lower(srvData?.target);
    const addresses = records
      .filter((rr) => rr.type === 'A' && live(rr) && target !== undefined && lower(rr.name) === target)
      .map((rr) => rr.data)
      .filter((a): a is string => typeof a === 'string' && isIPv4(a));
    const address = this.chooseAddress(addresses, source);
    if (address === undefined) {
      this.opts.logger.debug({ nodeId: info.nodeId, source, addresses }, 'mdns peer ignored: no usable IPv4 address');
      return;
    }
    const peer: DiscoveredPeer = { ...info, address, port };

    // The same instance name now claims a different node id: the old one is gone.
    const previousId = this.fqdnToNodeId.get(fqdn);
    if (previousId !== undefined && previousId !== peer.nodeId) this.handleGoodbye(fqdn, source);

    const known = this.peers.get(peer.nodeId);
    if (known === undefined && this.peers.size >= this.maxPeers) {
      this.warnLimited('maxPeers', { nodeId: peer.nodeId, maxPeers: this.maxPeers }, 'mdns peer limit reached; peer dropped');
      return;
    }
    if (known && known.fqdn !== fqdn) {
      // Two instance names claim one node id (duplicate ids, or a renamed instance): last wins.
      this.warnLimited(`dup:${peer.nodeId}`, { nodeId: peer.nodeId, fqdn, previousFqdn: known.fqdn }, 'mdns: two services claim the same node id');
      this.fqdnToNodeId.delete(known.fqdn);
    }
    this.peers.set(peer.nodeId, { peer, fqdn });
    this.fqdnToNodeId.set(fqdn, peer.nodeId);
    if (known && samePeer(known.peer, peer)) return;
    this.opts.logger.info({ peer, source, changed: known !== undefined }, known ? 'mdns peer changed' : 'mdns peer discovered');
    this.opts.onUp({ ...peer });
  }

  /** Our own id came back: our own announcement (multicast loopback) or a duplicate node id. */
  private handleSelf(fqdn: string, port: number, source: string): void {
    if (fqdn === this.ownFqdn && port === this.opts.port && isLocalAddress(source)) return;
    this.warnLimited(
      'selfdup',
      { nodeId: this.opts.nodeId, source, port, fqdn },
      'mdns: another agent announces our node id; node ids must be unique',
    );
  }

  /** Prefer an advertised address in our interface's subnet, else the address it sent from. */
  private chooseAddress(addresses: string[], source: string): string | undefined {
    if (this.netmask !== undefined) {
      const onLink = addresses.find((a) => inSubnet(a, this.opts.interfaceAddress!, this.netmask!));
      if (onLink !== undefined) return onLink;
    }
    // The source is the address of the interface the peer multicasts on, so it is reachable from
    // the link we heard it on; advertised addresses may include unrelated interfaces (bonjour
    // publishes every non-internal address of the host).
    if (isIPv4(source)) return source;
    return addresses[0];
  }

  private warnLimited(key: string, obj: object, msg: string): void {
    const now = Date.now();
    const last = this.lastWarnAt.get(key);
    if (last !== undefined && now - last < WARN_LOG_INTERVAL_MS) {
      this.suppressedWarns.set(key, (this.suppressedWarns.get(key) ?? 0) + 1);
      return;
    }
    // Bound the limiter's own memory: keys include node ids.
    if (this.lastWarnAt.size >= 256 && last === undefined) {
      this.lastWarnAt.clear();
      this.suppressedWarns.clear();
    }
    const suppressed = this.suppressedWarns.get(key) ?? 0;
    this.lastWarnAt.set(key, now);
    this.suppressedWarns.delete(key);
    this.opts.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
  }
}

function samePeer(a: DiscoveredPeer, b: DiscoveredPeer): boolean {
  return a.address === b.address && a.port === b.port && a.priority === b.priority && a.protocolVersion === b.protocolVersion && a.cluster === b.cluster;
}

function isLocalAddress(address: string): boolean {
  for (const infos of Object.values(os.networkInterfaces())) {
    if (infos?.some((i) => i.address === address)) return true;
  }
  return false;
}

function errorInfo(err: unknown): { message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? { message: err.message } : { message: err.message, code };
  }
  return { message: String(err) };
}
