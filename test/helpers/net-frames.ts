/** The test guest's Ethernet test frames (test/guests/vnet.c, test/helpers/tap-peer.c), for TypeScript tests. */

export const ETH_TEST = 0x88b5;
export const ETH_ECHO = 0x88b6;
export const PEER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 1);

export function patternByte(seed: number, seq: number, i: number): number {
  let x = (Math.imul(seed, 2654435761) ^ Math.imul(seq, 40503) ^ Math.imul(i, 2246822519)) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 2246822507) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  return x & 0xff;
}

/** Test frame `seq` of `seed`, `size` bytes with its 14-byte Ethernet header. */
export function testFrame(seq: number, seed: number, size: number, src: Uint8Array, type = ETH_TEST): Buffer {
  const f = Buffer.alloc(size);
  f.fill(0xff, 0, 6);
  f.set(src, 6);
  f.writeUInt16BE(type, 12);
  f.writeUInt32BE(seq, 14);
  f.writeUInt32BE(seed >>> 0, 18);
  for (let i = 22; i < size; i++) f[i] = patternByte(seed, seq, i);
  return f;
}

/** Why `f` is not test frame `seq` of `seed`, or null when it is. */
export function frameProblem(f: Uint8Array, seq: number, seed: number, type = ETH_TEST): string | null {
  if (f.length < 22) return `${f.length} bytes`;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (v.getUint16(12) !== type) return `EtherType 0x${v.getUint16(12).toString(16)}`;
  if (v.getUint32(14) !== seq) return `sequence ${v.getUint32(14)}, not ${seq}`;
  if (v.getUint32(18) !== seed >>> 0) return 'seed';
  for (let i = 22; i < f.length; i++) if (f[i] !== patternByte(seed, seq, i)) return `byte ${i}`;
  return null;
}
