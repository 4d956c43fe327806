// Upstream NTP servers in the simulator (issue 18): each node that has some polls them as the
// daemon's client does (src/ntp/client.ts), in outline: a burst while nothing answers, then one
// request per poll interval; an eight-bit reach register; the filter's choice (filterChoice) among the last
// eight; the kept samples shifted by every correction the node's clock takes (clockAdjusted).
// Selection is the real one (src/ntp/selection.ts), so falsetickers and disagreeing servers meet
// the same Marzullo vote as in the daemon. A server is modelled by its error against true time
// (a falseticker: seconds), its jitter, the path's delay and loss, its stratum and root distance.
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, UPSTREAM_BURST_INTERVAL_MS, UPSTREAM_BURST_REQUESTS, UPSTREAM_FILTER_SAMPLES } from '../core/limits.ts';
import type { UpstreamEstimate } from '../core/upstream/estimate.ts';
import { filterChoice, type UpstreamCandidate } from '../ntp/client.ts';
import { selectUpstreams, type SelectionResult } from '../ntp/selection.ts';
import { upstreamEstimate } from '../ntp/estimate.ts';
import { estimateNow } from '../core/upstream/feed.ts';
import type { SeededRandom } from './random.ts';

export interface SimUpstreamSpec {
  id: string;
  /** The server's time minus true time, ns (a falseticker: seconds). */
  offsetNs?: number;
  /** Mean of the server's own random error per answer, ns (exponential, either sign). */
  jitterNs?: number;
  /** Round trip of the path, ns, and the mean of its random extra each way (exponential). */
  delayNs?: number;
  delayJitterNs?: number;
  lossRate?: number;
  stratum?: number;
  /** The server's own root distance (to its reference clock), ns. */
  rootDistanceNs?: number;
  /** false: the server answers nobody (stopped). */
  up?: boolean;
}

type Server = Required<SimUpstreamSpec>;

/** A reply on its way back from a server. */
export interface SimUpstreamReply {
  serverId: string;
  roundTripMs: number;
  sample: Sample;
}

interface Sample {
  offsetNs: number;
  delayNs: number;
  /** The node's adjustment total when the sample was taken (see PolledServer.adjustedNs). */
  adjustedNs: number;
  atMs: number;
}

interface PolledServer {
  reach: number;
  samples: Sample[];
}

/** One node's client: its servers' reach and samples. */
export class SimUpstreamClient {
  private readonly polled = new Map<string, PolledServer>();
  /** Total of the steps and slews applied to the node's clock (the client's clockAdjusted). */
  adjustedNs = 0;
  /** Requests left in the running burst (iburst: sent while nothing was heard for 8 requests). */
  private burstLeft = 0;
  /** The path from this node to the servers is cut (the node is cut off, not the servers down). */
  cut = false;
  lastSelection: SelectionResult | null = null;

  constructor(readonly serverIds: readonly string[]) {
    for (const id of serverIds) this.polled.set(id, { reach: 0, samples: [] });
  }

  /**
   * One request to every server at true time `trueNs`, the node's clock reading `clockNs`: the
   * replies that will come back, each with its round trip (deliver them with receive(), one event
   * each, as the daemon's socket hands them over one by one), and when to poll next (ms from now).
   */
  poll(servers: ReadonlyMap<string, Server>, nowMs: number, trueNs: bigint, clockNs: bigint, slewRemainingNs: number, random: SeededRandom, pollIntervalMs: number): { replies: SimUpstreamReply[]; nextMs: number } {
    if (this.burstLeft === 0 && [...this.polled.values()].every((polled) => polled.reach === 0)) this.burstLeft = UPSTREAM_BURST_REQUESTS;
    const replies: SimUpstreamReply[] = [];
    for (const id of this.serverIds) {
      const server = servers.get(id);
      const polled = this.polled.get(id) as PolledServer;
      polled.reach = (polled.reach << 1) & 0xff;
      if (server === undefined || !server.up || this.cut || random.next() < server.lossRate) continue;
      const outNs = server.delayNs / 2 + exponential(random, server.delayJitterNs);
      const backNs = server.delayNs / 2 + exponential(random, server.delayJitterNs);
      const serverErrorNs = server.offsetNs + (random.next() < 0.5 ? -1 : 1) * exponential(random, server.jitterNs);
      // Server time minus our clock, as the four timestamps measure it: the path's asymmetry shows.
      // ... as of the end of the clock's slew in progress, as the client keeps it; the moves of the
      // clock until the reply arrives shift it as they shift every kept sample (adjustedNs).
      const offsetNs = Number(trueNs - clockNs) + serverErrorNs + (outNs - backNs) / 2 - slewRemainingNs;
      replies.push({ serverId: id, roundTripMs: (outNs + backNs) / 1e6, sample: { offsetNs, delayNs: outNs + backNs, adjustedNs: this.adjustedNs, atMs: nowMs } });
    }
    if (this.burstLeft > 0) this.burstLeft -= 1;
    return { replies, nextMs: this.burstLeft > 0 ? UPSTREAM_BURST_INTERVAL_MS : pollIntervalMs };
  }

  /** A reply arrives at `nowMs` (its sample named by its arrival, as the daemon's client names it). */
  receive(reply: SimUpstreamReply, nowMs: number): void {
    const polled = this.polled.get(reply.serverId) as PolledServer;
    polled.reach |= 1;
    polled.samples.push({ ...reply.sample, atMs: nowMs });
    if (polled.samples.length > UPSTREAM_FILTER_SAMPLES) polled.samples.shift();
  }

  /**
   * Selection now, and what the core is told (the daemon's conversion, src/ntp/estimate.ts): an
   * estimate as of now (with `slewRemainingNs` of the clock's slew still to come), or null and why.
   */
  estimate(servers: ReadonlyMap<string, Server>, nowMs: number, slewRemainingNs: number): { estimate: UpstreamEstimate | null; why: string | null } {
    const candidates: UpstreamCandidate[] = this.serverIds.map((id) => {
      const polled = this.polled.get(id) as PolledServer;
      const server = servers.get(id);
      if (server === undefined || polled.reach === 0 || polled.samples.length === 0) return { id, usable: false, exclusion: 'unreachable', reason: 'no answer to the last 8 requests' };
      const best = filterChoice(polled.samples) as Sample;
      const ageMs = nowMs - best.atMs;
      return {
        id,
        usable: true,
        offsetNs: best.offsetNs - (this.adjustedNs - best.adjustedNs),
        rootDistanceNs: server.rootDistanceNs + best.delayNs / 2 + ERROR_BOUND_FREQUENCY_TOLERANCE_PPM * ageMs,
        stratum: server.stratum,
        leap: 0,
      };
    });
    const selection = selectUpstreams(candidates);
    this.lastSelection = selection;
    // Each server's chosen sample names the estimate: a new one is a new estimate.
    const chosenAtMs = new Map<string, number>();
    for (const [id, polled] of this.polled) if (polled.samples.length > 0) chosenAtMs.set(id, (filterChoice(polled.samples) as Sample).atMs);
    const outcome = upstreamEstimate(selection, chosenAtMs);
    return outcome.estimate === null ? outcome : { estimate: estimateNow(outcome.estimate, slewRemainingNs), why: null };
  }
}

export function upstreamServer(spec: SimUpstreamSpec): Server {
  return {
    offsetNs: 0,
    jitterNs: 20_000,
    delayNs: 500_000,
    delayJitterNs: 30_000,
    lossRate: 0,
    stratum: 1,
    rootDistanceNs: 100_000,
    up: true,
    ...spec,
  };
}

function exponential(random: SeededRandom, meanNs: number): number {
  return meanNs <= 0 ? 0 : -meanNs * Math.log(1 - random.next());
}
