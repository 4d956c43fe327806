// Frame authentication (--key-file): every datagram is the msgpack frame followed by a trailer
//   [0xA7 marker][key id, uint16 big-endian][HMAC-SHA256 over frame || marker || key id, first 16 bytes]
// Agents send with the first key and accept any key of the file, so keys can be rotated: add the
// new key second everywhere, then move it first everywhere, then remove the old one. A datagram
// that fails is dropped and counted by reason; the comparison is constant-time.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const AUTH_MARKER = 0xa7;
/** 128 bits: the shortest tag the issue (and RFC 2104's advice for truncation) allows. */
export const AUTH_TAG_BYTES = 16;
export const AUTH_TRAILER_BYTES = 1 + 2 + AUTH_TAG_BYTES;
export const KEY_ID_MAX = 65_535;
/** Secrets shorter than this are refused: an HMAC is only as strong as its key. */
export const KEY_SECRET_BYTES_MIN = 16;

export interface FrameKey {
  id: number;
  secret: Buffer;
}

export type AuthRejectReason = 'unauthenticated' | 'unknown-key' | 'bad-mac';
export const AUTH_REJECT_REASONS: readonly AuthRejectReason[] = ['unauthenticated', 'unknown-key', 'bad-mac'];

export type OpenResult = { ok: true; frame: Uint8Array; keyId: number } | { ok: false; reason: AuthRejectReason; detail: string };

export class FrameAuth {
  private readonly sendKey: FrameKey;
  private readonly keys = new Map<number, Buffer>();

  constructor(keys: readonly FrameKey[]) {
    const first = keys[0];
    if (first === undefined) throw new RangeError('FrameAuth needs at least one key');
    this.sendKey = first;
    for (const key of keys) this.keys.set(key.id, key.secret);
  }

  get sendKeyId(): number {
    return this.sendKey.id;
  }

  get keyIds(): number[] {
    return [...this.keys.keys()];
  }

  /** The datagram for an encoded frame: the frame and its trailer. */
  seal(frame: Uint8Array): Buffer {
    const header = Buffer.from([AUTH_MARKER, this.sendKey.id >> 8, this.sendKey.id & 0xff]);
    return Buffer.concat([frame, header, tag(this.sendKey.secret, frame, header)]);
  }

  /** The frame inside an authenticated datagram, or why it is not one. */
  open(datagram: Uint8Array): OpenResult {
    if (datagram.length <= AUTH_TRAILER_BYTES) return { ok: false, reason: 'unauthenticated', detail: `${datagram.length} bytes: too short for a frame and its tag` };
    const trailerAt = datagram.length - AUTH_TRAILER_BYTES;
    if (datagram[trailerAt] !== AUTH_MARKER) return { ok: false, reason: 'unauthenticated', detail: 'no authentication trailer (a sender without --key-file?)' };
    const keyId = ((datagram[trailerAt + 1] as number) << 8) | (datagram[trailerAt + 2] as number);
    const secret = this.keys.get(keyId);
    if (secret === undefined) return { ok: false, reason: 'unknown-key', detail: `key id ${keyId} is not in the key file` };
    const frame = datagram.subarray(0, trailerAt);
    const expected = tag(secret, frame, datagram.subarray(trailerAt, trailerAt + 3));
    const received = datagram.subarray(trailerAt + 3);
    if (!timingSafeEqual(expected, received)) return { ok: false, reason: 'bad-mac', detail: `tag does not match key ${keyId}` };
    return { ok: true, frame, keyId };
  }
}

function tag(secret: Buffer, frame: Uint8Array, header: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(frame).update(header).digest().subarray(0, AUTH_TAG_BYTES);
}
