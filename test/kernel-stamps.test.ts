// Kernel receive timestamps (ioctl SIOCGSTAMPNS through koffi) on real loopback sockets. The event
// loop is held busy after the datagrams were sent, so the handler runs tens of milliseconds after
// they arrived: the stamps must show their arrival, not the handler's time, one per datagram.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { arrivalNs, openKernelRxStamps } from '../src/net/kernel-stamps.ts';
import { immediateLookup, UdpTransport, type Datagram } from '../src/net/udp.ts';
import { HostClock } from '../src/clock/host.ts';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});

function busyMs(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Hold the event loop: nothing is read from the socket meanwhile.
  }
}

function bound(): Promise<dgram.Socket> {
  // With a lookup that answers at once, sendto() runs inside send(): the datagram has arrived
  // when send() returns, so the busy waits below surely come after the arrivals.
  const socket = dgram.createSocket({ type: 'udp4', lookup: immediateLookup });
  sockets.push(socket);
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

describe.runIf(process.platform === 'linux')('kernel receive timestamps', () => {
  it('stamp each datagram at its arrival, not when the busy process reads it', async () => {
    const receiver = await bound();
    const sender = await bound();
    const stamps = openKernelRxStamps(receiver);
    if ('error' in stamps) throw new Error(stamps.error);
    const port = receiver.address().port;
    // Linux turns receive timestamping on through a deferred static key: a datagram that arrives
    // right after the first request may carry no stamp (the ioctl then reports the time of the
    // call). One warm-up datagram, read and discarded, makes sure stamping is on.
    await new Promise<void>((resolve) => {
      receiver.once('message', () => {
        stamps.latencyNs();
        resolve();
      });
      setTimeout(() => sender.send('warm-up', port, '127.0.0.1'), 20);
    });
    const latenciesNs: number[] = [];
    const received = new Promise<void>((resolve) => {
      receiver.on('message', () => {
        latenciesNs.push(stamps.latencyNs() ?? Number.NaN);
        if (latenciesNs.length === 2) resolve();
      });
    });
    // First datagram, hold the loop 10 ms, the second, hold it 40 ms more, all before anything
    // can be read. (Waiting for send callbacks raced with the read of the first datagram.)
    sender.send('one', port, '127.0.0.1');
    busyMs(10);
    sender.send('two', port, '127.0.0.1');
    busyMs(40);
    await received;
    const [first, second] = latenciesNs as [number, number];
    expect(first).toBeGreaterThanOrEqual(49e6);
    expect(second).toBeGreaterThanOrEqual(39e6);
    // Two stamps, 10 ms of busy waiting apart: one per datagram.
    expect(first - second).toBeGreaterThanOrEqual(9e6);
  });

  it('the transport uses them: a datagram read late keeps its arrival time', async () => {
    const hostClock = new HostClock();
    const seen: Datagram[] = [];
    const handledAtNs: bigint[] = [];
    const transport = new UdpTransport({
      bindAddress: '127.0.0.1',
      port: 0,
      hostClock,
      onDatagrams: (batch) => {
        seen.push(...batch);
        handledAtNs.push(hostClock.nowNs());
      },
      onError: (error) => {
        throw error;
      },
    });
    const endpoint = await transport.start();
    expect(transport.rxTimestamps).toBe('kernel');
    const sender = await bound();
    const sentAtNs = hostClock.nowNs();
    sender.send('late', endpoint.port, '127.0.0.1', () => busyMs(30));
    while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const datagram = seen[0] as Datagram;
    expect(transport.rxStampedByKernel).toBe(1);
    // Arrival within the 30 ms before the loop was free, and well before it was handled.
    expect(datagram.rxHostNs >= sentAtNs).toBe(true);
    expect(Number((handledAtNs[0] as bigint) - datagram.rxHostNs)).toBeGreaterThanOrEqual(29e6);
    await transport.close();
  });

  it('--no-kernel-timestamps: the transport stamps in user space', async () => {
    const transport = new UdpTransport({ bindAddress: '127.0.0.1', port: 0, hostClock: new HostClock(), kernelTimestamps: false, onDatagrams: () => {}, onError: () => {} });
    await transport.start();
    expect(transport.rxTimestamps).toBe('user');
    expect(transport.rxTimestampsWhyNot).toBeNull();
    await transport.close();
  });
});

describe('arrivalNs', () => {
  const clock = { nowNs: () => 1_000_000_000n };
  it('moves the kernel stamp into the clock by its age, or takes the clock now when there is none', () => {
    expect(arrivalNs({ latencyNs: () => 2500.4 }, clock)).toEqual({ rxNs: 999_997_500n, byKernel: true });
    expect(arrivalNs({ latencyNs: () => null }, clock)).toEqual({ rxNs: 1_000_000_000n, byKernel: false });
    expect(arrivalNs(null, clock)).toEqual({ rxNs: 1_000_000_000n, byKernel: false });
  });
});
