// Shims over bonjour-service internals (private in its types): the multicast-dns instance inside
// it (to see each response with its source address, to catch socket errors, to answer legacy
// unicast queries) and its record lookup. Everything we reach into is named here, so an upgrade
// that moves it breaks in one place, and discovery turns itself off instead of crashing.
import type { Bonjour } from 'bonjour-service';
import type { ResponsePacket } from './mdns-records.ts';

export interface RemoteInfo {
  address?: unknown;
  port?: unknown;
}
export interface Question {
  name: string;
  type: string;
  class?: string;
}
export interface QueryPacket {
  id?: number;
  questions?: Question[];
}
export interface MdnsRecord {
  name: string;
  type: string;
  ttl?: number;
  flush?: boolean;
  data?: unknown;
}
/** The multicast-dns instance inside bonjour-service (Bonjour.server.mdns). */
export interface MulticastDns {
  on(event: 'response', listener: (packet: ResponsePacket, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error' | 'warning', listener: (err: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'query', listener: (packet: QueryPacket, rinfo: RemoteInfo) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  query(name: string, type: string, callback?: (err: Error | null) => void): void;
  respond(
    response: { id?: number; questions?: Question[]; answers: MdnsRecord[]; additionals?: MdnsRecord[] },
    rinfo: { port: number; address: string },
    callback?: (err: Error | null) => void,
  ): void;
}
/** The records bonjour publishes for a name and type (what it answers multicast queries with). */
export type RecordsLookup = (name: string, type: string) => MdnsRecord[];

interface BonjourInternals {
  server?: { mdns?: MulticastDns; recordsFor?: RecordsLookup };
}

/** bonjour.server.mdns, or undefined if bonjour-service no longer has it there. */
export function multicastDnsOf(bonjour: Bonjour): MulticastDns | undefined {
  return (bonjour as unknown as BonjourInternals).server?.mdns;
}

/** bonjour.server.recordsFor (bound), or undefined if bonjour-service no longer has it. */
export function recordsLookupOf(bonjour: Bonjour | undefined): RecordsLookup | undefined {
  const server = (bonjour as unknown as BonjourInternals | undefined)?.server;
  return server?.recordsFor?.bind(server);
}
