// The bookkeeping between clock actions and the upstream NTP client (src/core/upstream/feed.ts),
// against the real virtual clock and the real client: a server on true time, our clock 2 ms ahead,
// one sample taken; then slews (one replacing another half done) and a step while a slew runs.
// After each, the client's shifted sample plus the slew still to come must be the true offset
// (server minus our clock) at any later moment, and the moves must add up to what the clock did.
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../src/clock/virtual.ts';
import type { DisciplineAction } from '../src/core/sync/discipline.ts';
import type { UpstreamEstimate } from '../src/core/upstream/estimate.ts';
import { clockMoveNs, estimateNow } from '../src/core/upstream/feed.ts';
import { UpstreamClient } from '../src/ntp/client.ts';
import { asciiRefid, NtpMode, nsToNtpShort, readHeader, unixNsToNtp, writeHeader } from '../src/ntp/packet.ts';

const H0_NS = 1_700_000_000_000_000_000n;
const MS = 1_000_000n;
const RATE_PPM = 500;

const estimateOf = (offsetNs: number): UpstreamEstimate => ({ sampledMs: 0, peerSampledMs: 0, offsetNs, errorBoundNs: 0, rootDistanceNs: 0, stratum: 1, leap: 0, systemPeer: 's:123', truechimers: 1 });

describe('clockMoveNs and estimateNow', () => {
  it('keep the client\'s estimate equal to the true offset through slews and a step', () => {
    const clock = new VirtualClock({ initialOffsetNs: 2_000_000, driftPpm: 0, startHostNs: H0_NS });
    const client = new UpstreamClient({ pollIntervalMs: 16_000 });
    // One exchange, 100 us each way, the server on host (true) time.
    const request = client.request(0, () => clock.readAtNs(H0_NS)) as Uint8Array;
    const t2 = H0_NS + 100_000n;
    const reply = writeHeader({
      leap: 0, version: 4, mode: NtpMode.server, stratum: 1, poll: 4, precision: -20, rootDelay: 0, rootDispersion: nsToNtpShort(20_000), refid: asciiRefid('GPS'),
      referenceTs: unixNsToNtp(t2 - 1_000_000_000n), originTs: readHeader(request).transmitTs, receiveTs: unixNsToNtp(t2), transmitTs: unixNsToNtp(t2),
    });
    expect(client.receive(reply, clock.readAtNs(H0_NS + 200_000n), 0.2).ok).toBe(true);

    const trueOffsetNs = (hostNs: bigint) => -clock.offsetAtNs(hostNs);
    const estimatedNs = (hostNs: bigint) => estimateNow(estimateOf(client.report(Number((hostNs - H0_NS) / MS)).offsetNs as number), clock.slewRemainingAtNs(hostNs)).offsetNs;
    expect(estimatedNs(H0_NS + MS)).toBeCloseTo(trueOffsetNs(H0_NS + MS), -1);

    let movedNs = 0;
    const act = (atMs: bigint, action: DisciplineAction) => {
      const hostNs = H0_NS + atMs * MS;
      const remainingNs = clock.slewRemainingAtNs(hostNs);
      if (action.kind === 'slew') clock.slew(action.phaseNs, action.ratePpm, hostNs);
      if (action.kind === 'step') clock.step(action.deltaNs, hostNs);
      const moveNs = clockMoveNs(action, remainingNs);
      if (moveNs !== null) {
        client.clockAdjusted(moveNs);
        movedNs += moveNs;
      }
    };
    // -1 ms at 500 ppm takes 2 s; half of it is done when a -0.8 ms slew replaces it.
    act(10n, { kind: 'slew', phaseNs: -1_000_000, ratePpm: RATE_PPM, frequencyPpm: 0 });
    for (const atMs of [500n, 1_010n]) expect(estimatedNs(H0_NS + atMs * MS)).toBeCloseTo(trueOffsetNs(H0_NS + atMs * MS), -1);
    act(1_010n, { kind: 'slew', phaseNs: -800_000, ratePpm: RATE_PPM, frequencyPpm: 0 });
    for (const atMs of [1_300n, 1_900n]) expect(estimatedNs(H0_NS + atMs * MS)).toBeCloseTo(trueOffsetNs(H0_NS + atMs * MS), -1);
    // A step while the slew runs ends it; held and refused corrections move nothing.
    act(2_000n, { kind: 'step', deltaNs: -150_000, frequencyPpm: 0, why: 'threshold' });
    act(2_100n, { kind: 'hold', correctionNs: 5e6, limitNs: 1e6 });
    act(2_200n, { kind: 'refuse', correctionNs: 5e9, correctionNsMax: 1e9 });
    act(2_300n, { kind: 'slew', phaseNs: -50_000, ratePpm: RATE_PPM, frequencyPpm: 0 });
    for (const atMs of [2_310n, 2_400n, 10_000n]) expect(estimatedNs(H0_NS + atMs * MS)).toBeCloseTo(trueOffsetNs(H0_NS + atMs * MS), -1);
    // Once everything is done the clock moved by the sum of the moves: -0.5 ms (half the first
    // slew), -0.495 ms (0.99 s of the second at 500 ppm, until the step), -0.15 ms, -0.05 ms.
    expect(movedNs).toBeCloseTo(-1_195_000, -1);
    expect(clock.offsetAtNs(H0_NS + 10_000n * MS) - 2_000_000).toBeCloseTo(movedNs, -1);
  });

  it('a sample taken while a slew runs is kept as of the slew\'s end (request and receive told the slew remaining), so the estimate is the true offset', () => {
    // Found in the simulator: the master slewing 40 ms onto its upstream took its next burst
    // sample mid-slew; kept as measured, the estimate added the slew still to come twice and the
    // master's frequency ran 400 ppm off.
    const clock = new VirtualClock({ initialOffsetNs: 2_000_000, driftPpm: 0, startHostNs: H0_NS });
    clock.slew(-2_000_000, RATE_PPM, H0_NS);
    const client = new UpstreamClient({ pollIntervalMs: 16_000 });
    const sentAtNs = H0_NS + 1_000n * MS; // half of the slew done
    const request = client.request(1_000, () => clock.readAtNs(sentAtNs), clock.slewRemainingAtNs(sentAtNs)) as Uint8Array;
    const t2 = sentAtNs + 100_000n;
    const reply = writeHeader({
      leap: 0, version: 4, mode: NtpMode.server, stratum: 1, poll: 4, precision: -20, rootDelay: 0, rootDispersion: nsToNtpShort(20_000), refid: asciiRefid('GPS'),
      referenceTs: unixNsToNtp(t2 - 1_000_000_000n), originTs: readHeader(request).transmitTs, receiveTs: unixNsToNtp(t2), transmitTs: unixNsToNtp(t2),
    });
    const arrivedNs = sentAtNs + 200_000n;
    expect(client.receive(reply, clock.readAtNs(arrivedNs), 1_000.2, clock.slewRemainingAtNs(arrivedNs)).ok).toBe(true);
    for (const atMs of [1_001n, 1_500n, 5_000n]) {
      const hostNs = H0_NS + atMs * MS;
      const estimatedNs = estimateNow(estimateOf(client.report(Number(atMs)).offsetNs as number), clock.slewRemainingAtNs(hostNs)).offsetNs;
      // Within 0.5 us: the clock slews 100 ns during the 200 us round trip.
      expect(estimatedNs).toBeCloseTo(-clock.offsetAtNs(hostNs), -3);
    }
  });

  it('counting each action in full instead (the slew left over included) would be wrong', () => {
    // The property the test above rests on, shown on the numbers: a slew replaced half-way moved
    // the clock by half of it, not all of it.
    expect(clockMoveNs({ kind: 'slew', phaseNs: -800_000, ratePpm: RATE_PPM, frequencyPpm: 0 }, -500_000)).toBe(-300_000);
    expect(clockMoveNs({ kind: 'step', deltaNs: 1_000, frequencyPpm: 0, why: 'initial' }, 200)).toBe(800);
    expect(clockMoveNs({ kind: 'hold', correctionNs: 1, limitNs: 1 }, 0)).toBeNull();
  });
});
