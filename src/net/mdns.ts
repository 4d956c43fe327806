// mDNS / DNS-SD discovery of cluster peers with bonjour-service (GUIDE §4): the composition of
// the records we publish and read (mdns-records.ts), the peer table (mdns-peers.ts), the legacy
// unicast responder (mdns-responder.ts) and the shims over bonjour's internals (mdns-bonjour.ts),
// with the lifecycle: publish, query periodically, listen, say goodbye.
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
// Our own handler sees the packet's source address (rinfo), enforces peersMax, validates TXT
// strictly and never throws. The periodic query is exactly what browser.update() sends
// (`mdns.query('_berkeley._udp.local', 'PTR')`).
//
// mDNS is only a hint of who exists: a killed agent sends no goodbye and nothing expires, so
// liveness must come from the agent's own frames (GUIDE §4).

import { isIPv4 } from 'node:net';
import { Bonjour } from 'bonjour-service';
import {
  CLUSTER_BYTES_MAX,
  MDNS_PROTOCOL_VERSION_MAX,
  MDNS_QUERY_INTERVAL_MS_DEFAULT,
  MDNS_QUERY_INTERVAL_MS_MIN,
  MDNS_STOP_TIMEOUT_MS,
  MDNS_WARN_KEYS_MAX,
  MDNS_WARN_LOG_INTERVAL_MS,
  NODE_ID_BYTES_MAX,
  PEERS_MAX_DEFAULT,
  PRIORITY_MAX,
} from '../core/limits.ts';
import { KeyedRateLimiter } from '../core/rate-limiter.ts';
import { DiscoveryError, inSubnet, isLocalAddress, resolveInterface } from './interfaces.ts';
import { multicastDnsOf, recordsLookupOf, type MulticastDns, type QueryPacket, type RemoteInfo } from './mdns-bonjour.ts';
import { MdnsPeerTable } from './mdns-peers.ts';
import {
  encodePeerTxt,
  hostNameFor,
  instanceFqdnFor,
  instanceNameFor,
  isIdentifier,
  readServiceResponse,
  SERVICE_FQDN,
  SERVICE_PROTOCOL,
  SERVICE_TYPE,
  type DiscoveredPeer,
  type ResponsePacket,
  type ServiceAnswer,
} from './mdns-records.ts';
import { legacyUnicastAnswer } from './mdns-responder.ts';

// What callers and tests used from here before the split lived in this file.
export { DiscoveryError, inSubnet, resolveInterface, type ResolvedInterface } from './interfaces.ts';
export { decodePeerTxt, instanceNameFor, SERVICE_FQDN, type DiscoveredPeer, type TxtResult } from './mdns-records.ts';

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
  peersMax?: number;
  /** A new peer, or a known one whose address, port, priority or protocol version changed. */
  onUp(peer: DiscoveredPeer): void;
  /** The peer sent an mDNS goodbye (graceful stop). */
  onDown(nodeId: string): void;
  logger: DiscoveryLogger;
}

export class MdnsDiscovery {
  private readonly opts: MdnsDiscoveryOptions;
  private readonly queryIntervalMs: number;
  private readonly peersMax: number;
  private readonly netmask: string | undefined;
  private readonly instanceName: string;
  private readonly ownFqdn: string;

  private readonly peers: MdnsPeerTable;
  /** Warnings by kind (and node id), each at most once per MDNS_WARN_LOG_INTERVAL_MS. */
  private readonly warnings = new KeyedRateLimiter<string>({ burst: 1, intervalMs: MDNS_WARN_LOG_INTERVAL_MS }, MDNS_WARN_KEYS_MAX);

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
  /** Legacy unicast queries (dig, nslookup): answered by unicast (mdns-responder.ts). */
  private readonly onQuery = (packet: QueryPacket, rinfo: RemoteInfo): void => {
    try {
      const recordsFor = recordsLookupOf(this.bonjour);
      if (!this.mdns || !recordsFor) return;
      const answer = legacyUnicastAnswer(packet, rinfo, recordsFor);
      if (answer === null) return;
      this.mdns.respond(answer.response, answer.to, (err) => {
        if (err) this.warnLimited('respond', { err: errorInfo(err) }, 'mdns unicast answer could not be sent');
      });
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
    if (!Number.isInteger(opts.protocolVersion) || opts.protocolVersion < 0 || opts.protocolVersion > MDNS_PROTOCOL_VERSION_MAX) {
      throw new DiscoveryError('EINVAL', `protocolVersion must be an integer in 0..${MDNS_PROTOCOL_VERSION_MAX}`);
    }
    this.queryIntervalMs = opts.queryIntervalMs ?? MDNS_QUERY_INTERVAL_MS_DEFAULT;
    if (!Number.isFinite(this.queryIntervalMs) || this.queryIntervalMs < MDNS_QUERY_INTERVAL_MS_MIN) {
      throw new DiscoveryError('EINVAL', `queryIntervalMs must be at least ${MDNS_QUERY_INTERVAL_MS_MIN}`);
    }
    this.peersMax = opts.peersMax ?? PEERS_MAX_DEFAULT;
    if (!Number.isInteger(this.peersMax) || this.peersMax < 0) throw new DiscoveryError('EINVAL', 'peersMax must be a non-negative integer');

    if (opts.interfaceAddress !== undefined) {
      if (!isIPv4(opts.interfaceAddress)) {
        throw new DiscoveryError('EINVAL', `interfaceAddress must be an IPv4 address (resolve names with resolveInterface), got ${JSON.stringify(opts.interfaceAddress)}`);
      }
      // Without the netmask we cannot tell which responses came in through our interface.
      this.netmask = opts.interfaceNetmask ?? resolveInterface(opts.interfaceAddress).netmask;
      if (!isIPv4(this.netmask)) throw new DiscoveryError('EINVAL', `interfaceNetmask must be a dotted IPv4 netmask, got ${this.netmask}`);
    }
    this.opts = opts;
    this.peers = new MdnsPeerTable(this.peersMax);
    this.instanceName = instanceNameFor(opts.nodeId);
    this.ownFqdn = instanceFqdnFor(opts.nodeId);
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

    const mdns = multicastDnsOf(this.bonjour);
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
        txt: encodePeerTxt(this.opts),
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
   * Sends goodbyes (unpublishAll) and closes the socket. Resolves within MDNS_STOP_TIMEOUT_MS even
   * if that fails. No onUp/onDown is delivered once stop() has been called. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.stopOnce();
    return this.stopPromise;
  }

  /** Peers currently known (a copy). */
  knownPeers(): DiscoveredPeer[] {
    return this.peers.list();
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
      timer = setTimeout(() => resolve('timeout'), MDNS_STOP_TIMEOUT_MS);
    });
    const outcome = await Promise.race([work.then(() => 'done' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.opts.logger.warn({ timeoutMs: MDNS_STOP_TIMEOUT_MS }, 'mdns stop timed out');
    // Keep the error listener attached: a late socket error after stop must still not throw.
    this.mdns?.removeListener('warning', this.onMdnsWarning);
    this.mdns?.removeListener('ready', this.onMdnsReady);
    this.peers.clear();
    this.opts.logger.info({}, 'mdns discovery stopped');
  }

  // -------------------------------------------------------------------------------------------
  // Response handling

  private handleResponse(packet: ResponsePacket, rinfo: RemoteInfo): void {
    if (this.state !== 'running') return;
    const response = readServiceResponse(packet);
    if (response === null) return;

    const source = typeof rinfo.address === 'string' ? rinfo.address : '';
    if (this.netmask !== undefined && !inSubnet(source, this.opts.interfaceAddress!, this.netmask)) {
      // IP_MULTICAST_ALL: another socket on this host joined 224.0.0.251 on another interface,
      // so its traffic reaches our 0.0.0.0-bound socket too. Only our interface's subnet counts.
      this.opts.logger.debug({ source, interfaceAddress: this.opts.interfaceAddress }, 'mdns response from outside our interface subnet ignored');
      return;
    }
    for (const fqdn of response.goodbyes) this.handleGoodbye(fqdn, source);
    for (const answer of response.announcements) this.handleAnnouncement(answer, source);
  }

  private handleGoodbye(fqdn: string, source: string): void {
    if (fqdn === this.ownFqdn) return;
    const nodeId = this.peers.goodbye(fqdn);
    if (nodeId !== undefined) this.reportGoodbye(nodeId, source);
  }

  private reportGoodbye(nodeId: string, source: string): void {
    this.opts.logger.info({ nodeId, source }, 'mdns peer said goodbye');
    this.opts.onDown(nodeId);
  }

  private handleAnnouncement(answer: ServiceAnswer, source: string): void {
    const fqdn = answer.fqdn;
    if (!answer.ok) {
      if (answer.why === 'bad TXT') this.opts.logger.debug({ fqdn, source, reason: answer.reason }, 'mdns service ignored: bad TXT');
      else this.opts.logger.debug({ fqdn, source }, 'mdns service ignored: bad SRV port');
      return;
    }
    const info = answer.txt;
    if (info.nodeId === this.opts.nodeId) {
      this.handleSelf(fqdn, answer.port, source);
      return;
    }
    if (info.cluster !== this.opts.cluster) {
      this.opts.logger.debug({ nodeId: info.nodeId, cluster: info.cluster }, 'mdns peer of another cluster ignored');
      return;
    }
    const address = this.chooseAddress(answer.addresses, source);
    if (address === undefined) {
      this.opts.logger.debug({ nodeId: info.nodeId, source, addresses: answer.addresses }, 'mdns peer ignored: no usable IPv4 address');
      return;
    }
    const peer: DiscoveredPeer = { ...info, address, port: answer.port };
    const announced = this.peers.announce(fqdn, peer);
    if (announced.replacedNodeId !== null) this.reportGoodbye(announced.replacedNodeId, source);
    if (announced.outcome === 'limit') {
      this.warnLimited('maxPeers', { nodeId: peer.nodeId, maxPeers: this.peersMax }, 'mdns peer limit reached; peer dropped');
      return;
    }
    if (announced.previousFqdn !== null) {
      // Two instance names claim one node id (duplicate ids, or a renamed instance): last wins.
      this.warnLimited(`dup:${peer.nodeId}`, { nodeId: peer.nodeId, fqdn, previousFqdn: announced.previousFqdn }, 'mdns: two services claim the same node id');
    }
    if (announced.outcome === 'same') return;
    const changed = announced.outcome === 'changed';
    this.opts.logger.info({ peer, source, changed }, changed ? 'mdns peer changed' : 'mdns peer discovered');
    this.opts.onUp({ ...peer });
  }

  /** Our own id came back: our own announcement (multicast loopback) or a duplicate node id. */
  private handleSelf(fqdn: string, port: number, source: string): void {
    if (fqdn === this.ownFqdn && port === this.opts.port && isLocalAddress(source)) return;
    this.warnLimited('selfdup', { nodeId: this.opts.nodeId, source, port, fqdn }, 'mdns: another agent announces our node id; node ids must be unique');
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

  /** A warning at most once per MDNS_WARN_LOG_INTERVAL_MS per key, with the count of those left out. */
  private warnLimited(key: string, obj: object, msg: string): void {
    if (!this.warnings.allow(key, performance.now())) return;
    const suppressed = this.warnings.takeSuppressed(key);
    this.opts.logger.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg);
  }
}

function errorInfo(err: unknown): { message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? { message: err.message } : { message: err.message, code };
  }
  return { message: String(err) };
}
