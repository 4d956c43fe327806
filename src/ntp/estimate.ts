// What the core is told of the upstream (issue 18), pure: the selection among the servers
// (selection.ts) turned into the core's UpstreamEstimate, or null with the selection's reason.
//
// `sampledMs` must name each sample exactly once (the core acts on each distinct value once, and
// counts usable estimates in a row by it), so it comes from the samples' own monotonic stamps
// (the atMs of the sample each server's filter chose, Upstreams.chosenSamples()), never from "now
// minus an age", which would differ between two readings of the same sample. It is the newest of
// the truechimers' chosen samples: a new sample from a falseticker, or one the filter passes over,
// changes nothing the estimate rests on, so it yields the same sampledMs and is not counted again.
// `peerSampledMs` is the system peer's chosen sample: what the master steers on (once a poll).
import type { UpstreamEstimate } from '../core/upstream/estimate.ts';
import type { SelectionResult } from './selection.ts';

export type EstimateOutcome = { estimate: UpstreamEstimate; why: null } | { estimate: null; why: string };

/**
 * The estimate of a selection. `lastSampleAtMs`: per server id, the monotonic ms of the sample
 * its filter chose (absent: none yet).
 */
export function upstreamEstimate(selection: SelectionResult, lastSampleAtMs: ReadonlyMap<string, number>): EstimateOutcome {
  if (!selection.ok) return { estimate: null, why: selection.reason };
  const peer = selection.servers.find((server) => server.id === selection.systemPeer);
  if (peer === undefined || peer.rootDistanceNs === null) return { estimate: null, why: `the system peer ${selection.systemPeer} has no root distance` };
  let sampledMs = Number.NEGATIVE_INFINITY;
  for (const id of selection.selected) sampledMs = Math.max(sampledMs, lastSampleAtMs.get(id) ?? Number.NEGATIVE_INFINITY);
  if (!Number.isFinite(sampledMs)) return { estimate: null, why: 'no sample time known for the selected servers' };
  return {
    estimate: {
      sampledMs,
      peerSampledMs: lastSampleAtMs.get(selection.systemPeer) ?? sampledMs,
      offsetNs: selection.offsetNs,
      errorBoundNs: selection.errorBoundNs,
      rootDistanceNs: peer.rootDistanceNs,
      stratum: selection.stratum,
      leap: selection.leap,
      systemPeer: selection.systemPeer,
      truechimers: selection.selected.length,
    },
    why: null,
  };
}
