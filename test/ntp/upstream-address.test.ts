// --upstream HOST[:PORT] (src/ntp/upstream-address.ts): names and IPv4 addresses, port 123 by
// default; a bad value is refused with one message naming the option and the value.
import { describe, expect, it } from 'vitest';
import { UPSTREAMS_MAX } from '../../src/core/limits.ts';
import { parseUpstream, parseUpstreams } from '../../src/ntp/upstream-address.ts';

describe('parseUpstream', () => {
  it.each([
    ['ntp.example.org', { host: 'ntp.example.org', port: 123 }],
    ['ntp.example.org:1123', { host: 'ntp.example.org', port: 1123 }],
    ['192.0.2.1', { host: '192.0.2.1', port: 123 }],
    ['  192.0.2.1:65535 ', { host: '192.0.2.1', port: 65535 }],
    ['localhost', { host: 'localhost', port: 123 }],
  ])('accepts %s', (text, upstream) => {
    expect(parseUpstream(text)).toEqual({ ok: true, upstream });
  });

  it.each([
    ['', /is empty/],
    [':123', /host is missing/],
    ['host:', /port must be a number/],
    ['host:0', /port must be 1\.\.65535/],
    ['host:70000', /port must be 1\.\.65535/],
    ['host:12x', /port must be a number/],
    ['999.1.1.1', /not a valid IPv4 address/],
    ['bad_host!', /host must be an IPv4 address or a host name/],
    ['[::1]:123', /IPv6 upstreams are not supported/],
    ['[::1]', /IPv6 upstreams are not supported/],
    ['2001:db8::1', /IPv6 upstreams are not supported/],
    ['[nonsense]:1', /brackets must hold an IPv6 address/],
    ['a:b:c', /must be HOST\[:PORT\]/],
    ['host:1:2', /must be HOST\[:PORT\]/],
  ])('refuses %j naming the option and the value', (text, problem) => {
    const parsed = parseUpstream(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.message).toMatch(problem);
    expect(parsed.message.startsWith(`--upstream ${JSON.stringify(text)}: `)).toBe(true);
    expect(parsed.message).not.toContain('\n');
  });
});

describe('parseUpstreams', () => {
  it('keeps the order, and refuses the first bad value, a duplicate and too many', () => {
    expect(parseUpstreams(['a.example', '192.0.2.1:124'])).toEqual({ ok: true, upstreams: [{ host: 'a.example', port: 123 }, { host: '192.0.2.1', port: 124 }] });
    expect(parseUpstreams(['a.example', 'b:x'])).toMatchObject({ ok: false, message: expect.stringContaining('"b:x"') });
    expect(parseUpstreams(['A.example', 'a.example:123'])).toMatchObject({ ok: false, message: expect.stringContaining('given twice') });
    const many = Array.from({ length: UPSTREAMS_MAX + 1 }, (_, index) => `192.0.2.${index + 1}`);
    expect(parseUpstreams(many)).toMatchObject({ ok: false, message: `--upstream: at most ${UPSTREAMS_MAX} servers, got ${UPSTREAMS_MAX + 1}` });
  });
});
