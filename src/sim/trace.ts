// A running 64-bit digest of a simulation's events (two 32-bit multiply-xor lanes, cyrb53's
// finalizer): two runs from the same seed must produce the same digest, any difference in any
// event, time or frame byte changes it. Not cryptographic; cheap enough to feed every event.
export class TraceHash {
  private h1 = 0xdeadbeef;
  private h2 = 0x41c6ce57;
  private count = 0;

  private mix(code: number): void {
    this.h1 = Math.imul(this.h1 ^ code, 2654435761);
    this.h2 = Math.imul(this.h2 ^ code, 1597334677);
  }

  add(text: string): void {
    this.count += 1;
    for (let index = 0; index < text.length; index += 1) this.mix(text.charCodeAt(index));
    this.mix(0x0a);
  }

  addBytes(text: string, bytes: Uint8Array): void {
    this.add(text);
    for (let index = 0; index < bytes.length; index += 1) this.mix(bytes[index] as number);
  }

  /** Hex digest of everything added so far, with the number of entries. */
  digest(): string {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    const hex = (value: number) => (value >>> 0).toString(16).padStart(8, '0');
    return `${hex(h2)}${hex(h1)}-${this.count}`;
  }
}
