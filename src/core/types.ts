// Shared vocabulary of the pure core: identities, election keys, endpoints, roles.

export type NodeId = string;

/** A UDP endpoint. The shell fills it from the datagram's source address. */
export interface Endpoint {
  address: string;
  port: number;
}

export function endpointKey(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

export type Role = 'master' | 'slave' | 'electing';

/** `takeover`: two masters met (a healed partition) and the higher key took over in a new term. */
export type ElectionAlgorithm = 'ring' | 'bully' | 'takeover';

/**
 * The election key; higher wins. The clock class first (as PTP's BMCA ranks clockClass before
 * priority1): an agent following a healthy upstream time source (CLOCK_CLASS_UPSTREAM) beats any
 * without one. Then the configured priority, then the node id compared as a byte string.
 */
export interface ElectionKey {
  /** Absent: 0 (CLOCK_CLASS_CLUSTER), as in frames. */
  clockClass?: number;
  priority: number;
  nodeId: NodeId;
}

const utf8 = new TextEncoder();

function compareBytes(a: string, b: string): number {
  const left = utf8.encode(a);
  const right = utf8.encode(b);
  const length = Math.min(left.length, right.length);
  for (let index = 0; index < length; index += 1) {
    const difference = (left[index] as number) - (right[index] as number);
    if (difference !== 0) return difference < 0 ? -1 : 1;
  }
  return left.length === right.length ? 0 : left.length < right.length ? -1 : 1;
}

/** Negative when a < b, 0 when equal, positive when a > b. */
export function compareKeys(a: ElectionKey, b: ElectionKey): number {
  const classA = a.clockClass ?? 0;
  const classB = b.clockClass ?? 0;
  if (classA !== classB) return classA < classB ? -1 : 1;
  if (a.priority !== b.priority) return a.priority < b.priority ? -1 : 1;
  return compareBytes(a.nodeId, b.nodeId);
}

export function utf8ByteLength(text: string): number {
  return utf8.encode(text).length;
}
