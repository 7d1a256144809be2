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

/** The basic virtio-blk session that both VMMs are held to (qemu-guest.test.ts, virtio-blk.test.ts), on an 8 MiB disk. */
export const BASIC_BLK = {
  cmdline: 'ml.vblk.info ml.vblk.id ml.vblk.sum=16:2048 ml.vblk.write=4096:8192:11 ml.vblk.verify=4096:8192:11 ml.vblk.verify=4096:8:12 ml.vblk.flush',
  diskBytes: 8 * 1024 * 1024,
  /** The VBLK lines the guest must print for a disk that held `before` and has serial `id`. */
  expected(before: Uint8Array, id: string): string[] {
    return [
      `INFO sectors ${before.length / 512} ro 0`,
      `ID ${id}`,
      `SUM 16 2048 ${fnv1a64(before.subarray(16 * 512, (16 + 2048) * 512))}`,
      'WRITE 4096 8192 status 0',
      'VERIFY 4096 8192 ok',
      'VERIFY 4096 8 bad 4096',
      'FLUSH status 0',
    ];
  },
  /** What is wrong with the disk afterwards: the pattern where the guest wrote it, the rest as it was. */
  fileProblems(before: Uint8Array, after: Uint8Array): string[] {
    const problems: string[] = [];
    if (!Buffer.from(after.subarray(4096 * 512, (4096 + 8192) * 512)).equals(patternBytes(11, 4096, 8192))) problems.push('the pattern is not where the guest wrote it');
    if (!Buffer.from(after.subarray(0, 4096 * 512)).equals(before.subarray(0, 4096 * 512))) problems.push('bytes before it changed');
    return problems;
  },
};
