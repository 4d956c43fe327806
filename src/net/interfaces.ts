// Network interfaces: --interface NAME (or an address) to its IPv4 address and netmask, subnet
// membership, and whether an address is this host's. bonjour-service wants an address, not a name
// (GUIDE §4), and mDNS filters answers by the interface's subnet.
import { isIPv4 } from 'node:net';
import os from 'node:os';

/** Error with a stable machine-readable code (GUIDE §2), thrown by interface resolution and discovery's option checks. */
export class DiscoveryError extends Error {
  constructor(
    readonly code: 'EINTERFACE' | 'EINVAL',
    message: string,
  ) {
    super(message);
    this.name = 'DiscoveryError';
  }
}

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

/** Whether `address` is one of this host's interface addresses. */
export function isLocalAddress(address: string, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): boolean {
  for (const infos of Object.values(interfaces)) {
    if (infos?.some((i) => i.address === address)) return true;
  }
  return false;
}

/**
 * Whether a --peer endpoint is this agent's own socket (its port on one of this host's addresses):
 * the same --peer list on every box names each agent too.
 */
export function isOwnEndpoint(peer: { address: string; port: number }, listen: { address: string; port: number }, interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>): boolean {
  if (peer.port !== listen.port) return false;
  if (peer.address === listen.address) return true;
  if (listen.address !== '0.0.0.0' && listen.address !== '::') return false;
  return isLocalAddress(peer.address, interfaces);
}
