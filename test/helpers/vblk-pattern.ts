/** The test guest's virtio-blk data pattern and checksum (test/guests/vblk.c), for checking files on the host. */

const M64 = (1n << 64n) - 1n;

/** The 8-byte word the guest writes at byte offset `offset` of the disk for `seed`. */
export function patternWord(seed: bigint, offset: bigint): bigint {
  let z = (seed * 0x9e3779b97f4a7c15n + offset) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** The bytes `ml.vblk.write=S:N:seed` puts on the disk. */
export function patternBytes(seed: number, sector: number, count: number): Buffer {
  const out = Buffer.alloc(count * 512);
  const base = BigInt(sector * 512);
  for (let i = 0; i < out.length; i += 8) out.writeBigUInt64LE(patternWord(BigInt(seed), base + BigInt(i)), i);
  return out;
}

/** FNV-1a 64, as `ml.vblk.sum` prints it (`0x…`). */
export function fnv1a64(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  return `0x${h.toString(16)}`;
}
