// `--upstream HOST[:PORT]` (issue 18), pure: an NTP server as a host name or an IPv4 address,
// port 123 unless given. `[v6]` and `[v6]:PORT` are recognized only to refuse them with a clear
// message: the client's socket is IPv4, like the rest of the agent. A bad value is refused with a
// message naming the option and the value, for the CLI's one-line exit-2 error. No node:* imports:
// the simulator and the config loader both use it.
import { NTP_PORT_DEFAULT, UPSTREAMS_MAX } from '../core/limits.ts';

export interface UpstreamAddress {
  /** Host name or IPv4 address, as given. */
  host: string;
  port: number;
}

export type UpstreamParse = { ok: true; upstream: UpstreamAddress } | { ok: false; message: string };

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;
const HOST_NAME_BYTES_MAX = 253;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Loose: hex groups and colons (with an optional dotted tail), enough to name the mistake. */
const IPV6_LIKE = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%.+)?$/;
const isIPv4 = (text: string) => IPV4.test(text);
const isIPv6 = (text: string) => IPV6_LIKE.test(text) && (text.includes('::') || text.split(':').length === 8);

/** One value of --upstream; `option` names it in messages (default "upstream"). */
export function parseUpstream(text: string, option = 'upstream'): UpstreamParse {
  const refuse = (problem: string): UpstreamParse => ({ ok: false, message: `--${option} ${JSON.stringify(text)}: ${problem}` });
  const value = text.trim();
  if (value === '') return refuse('is empty; give HOST[:PORT], e.g. ntp.example.org or 192.0.2.1:123');
  let host: string;
  let portText: string | null = null;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
  if (bracketed) {
    if (!isIPv6(bracketed[1] as string)) return refuse('brackets must hold an IPv6 address');
    return refuse('IPv6 upstreams are not supported (the agent speaks IPv4); give a host name or an IPv4 address');
  }
  const colons = value.split(':').length - 1;
  if (colons > 1) {
    return refuse(isIPv6(value) ? 'IPv6 upstreams are not supported (the agent speaks IPv4); give a host name or an IPv4 address' : 'must be HOST[:PORT]');
  }
  if (colons === 1) {
    const at = value.lastIndexOf(':');
    host = value.slice(0, at);
    portText = value.slice(at + 1);
  } else {
    host = value;
  }
  if (host === '') return refuse('the host is missing; give HOST[:PORT]');
  if (!isIPv4(host)) {
    if (/^[0-9.]+$/.test(host)) return refuse('is not a valid IPv4 address');
    if (host.length > HOST_NAME_BYTES_MAX || !HOST_NAME.test(host)) return refuse('the host must be an IPv4 address or a host name');
  }
  let port = NTP_PORT_DEFAULT;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText)) return refuse('the port must be a number 1..65535');
    port = Number(portText);
    if (port < 1 || port > 65535) return refuse('the port must be 1..65535');
  }
  return { ok: true, upstream: { host, port } };
}

/** Every value of a repeatable --upstream: the first bad one, a duplicate, or too many are refused. */
export function parseUpstreams(texts: readonly string[], option = 'upstream'): { ok: true; upstreams: UpstreamAddress[] } | { ok: false; message: string } {
  if (texts.length > UPSTREAMS_MAX) return { ok: false, message: `--${option}: at most ${UPSTREAMS_MAX} servers, got ${texts.length}` };
  const upstreams: UpstreamAddress[] = [];
  const seen = new Set<string>();
  for (const text of texts) {
    const parsed = parseUpstream(text, option);
    if (!parsed.ok) return parsed;
    const key = `${parsed.upstream.host.toLowerCase().replace(/\.$/, '')}:${parsed.upstream.port}`;
    if (seen.has(key)) return { ok: false, message: `--${option} ${JSON.stringify(text)}: given twice (one server counts once in selection)` };
    seen.add(key);
    upstreams.push(parsed.upstream);
  }
  return { ok: true, upstreams };
}
