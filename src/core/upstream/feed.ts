// The bookkeeping between the clock's actions and the upstream NTP client (issue 18), pure.
//
// The client keeps its samples as "server minus our clock" and shifts them by every move of the
// clock (Upstreams.clockAdjusted), so that an estimate stays current after a correction. Both
// clock drivers end what is left of a slew in progress when a new slew or a step starts, so an
// action moves the clock by its amount minus that remainder (the discipline counts it the same
// way, see trackProvisional). The client is told that whole move at once, when it is decided:
// its samples then say where the clock will be once the slew in progress is done. The node (and
// the discipline, which subtracts the slew in progress itself) wants the offset as of now: the
// estimate plus the slew still to come.
import type { DisciplineAction } from '../sync/discipline.ts';
import type { UpstreamEstimate } from './estimate.ts';

/** How far `action` will have moved the clock once done, ns; null: it does not move it. */
export function clockMoveNs(action: DisciplineAction, slewRemainingNs: number): number | null {
  if (action.kind === 'step') return action.deltaNs - slewRemainingNs;
  if (action.kind === 'slew') return action.phaseNs - slewRemainingNs;
  return null;
}

/** The estimate's offset as of now, with `slewRemainingNs` of the slew in progress still to come. */
export function estimateNow(estimate: UpstreamEstimate, slewRemainingNs: number): UpstreamEstimate {
  return { ...estimate, offsetNs: estimate.offsetNs + slewRemainingNs };
}
