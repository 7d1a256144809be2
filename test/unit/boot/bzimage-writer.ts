/** A minimal synthetic bzImage for tests: boot sector flag, setup header fields, then a payload. */
import { pattern } from './elf-writer.ts';

export interface BzSpec {
  readonly version?: number;
  readonly xloadflags?: number;
  readonly loadflags?: number;
  readonly setupSects?: number;
  readonly jumpOffset?: number;
  readonly relocatable?: boolean;
  readonly kernelAlignment?: number;
  readonly prefAddress?: bigint;
  readonly initSize?: number;
  readonly cmdlineSize?: number;
  readonly initrdAddrMax?: number;
  readonly payload?: Uint8Array;
}

export const DEFAULT_PAYLOAD = pattern(0x3000, 5);

export function buildBzImage(spec: BzSpec = {}): Uint8Array {
  const sects = spec.setupSects ?? 4;
  const setupSize = ((sects === 0 ? 4 : sects) + 1) * 512;
  const payload = spec.payload ?? DEFAULT_PAYLOAD;
  const out = new Uint8Array(setupSize + payload.length);
  const v = new DataView(out.buffer);
  out.fill(0xcc, 0, setupSize); // the real-mode code; must not leak into the payload
  out.fill(0, 0x1f1, 0x290);
  v.setUint8(0x1f1, sects);
  v.setUint16(0x1fe, 0xaa55, true);
  v.setUint8(0x200, 0xeb);
  v.setUint8(0x201, spec.jumpOffset ?? 0x66);
  out.set([0x48, 0x64, 0x72, 0x53], 0x202);
  v.setUint16(0x206, spec.version ?? 0x020f, true);
  v.setUint8(0x211, spec.loadflags ?? 0x01);
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, spec.initrdAddrMax ?? 0x7fffffff, true);
  v.setUint32(0x230, spec.kernelAlignment ?? 0x200000, true);
  v.setUint8(0x234, spec.relocatable === false ? 0 : 1);
  v.setUint8(0x235, 0x15);
  v.setUint16(0x236, spec.xloadflags ?? 0x7f, true);
  v.setUint32(0x238, spec.cmdlineSize ?? 0x7ff, true);
  v.setBigUint64(0x258, spec.prefAddress ?? 0x1000000n, true);
  v.setUint32(0x260, spec.initSize ?? 0x800000, true);
  out.set(payload, setupSize);
  return out;
}
