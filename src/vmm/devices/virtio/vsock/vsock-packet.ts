/** virtio-vsock packet headers (struct virtio_vsock_hdr, 44 bytes, little-endian) and their constants. */

export const VSOCK_HDR_SIZE = 44;
export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
/** The host's CID: the only destination a guest may address here. */
export const VSOCK_HOST_CID = 2;

export interface VsockHeader {
  readonly srcCid: number;
  readonly dstCid: number;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly len: number;
  readonly type: number;
  readonly op: number;
  readonly flags: number;
  readonly bufAlloc: number;
  readonly fwdCnt: number;
}

/** CIDs above 2^53 cannot be numbers; no guest has one (ours are u32 in practice), so they read as -1. */
function cid(v: DataView, at: number): number {
  const c = v.getBigUint64(at, true);
  return c > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(c);
}

export function decodeHeader(b: Uint8Array): VsockHeader {
  const v = new DataView(b.buffer, b.byteOffset, VSOCK_HDR_SIZE);
  return {
    srcCid: cid(v, 0), dstCid: cid(v, 8), srcPort: v.getUint32(16, true), dstPort: v.getUint32(20, true),
    len: v.getUint32(24, true), type: v.getUint16(28, true), op: v.getUint16(30, true), flags: v.getUint32(32, true),
    bufAlloc: v.getUint32(36, true), fwdCnt: v.getUint32(40, true),
  };
}

export function encodeHeader(h: VsockHeader, into: Uint8Array = new Uint8Array(VSOCK_HDR_SIZE)): Uint8Array {
  const v = new DataView(into.buffer, into.byteOffset, VSOCK_HDR_SIZE);
  v.setBigUint64(0, BigInt(h.srcCid), true);
  v.setBigUint64(8, BigInt(h.dstCid), true);
  v.setUint32(16, h.srcPort, true);
  v.setUint32(20, h.dstPort, true);
  v.setUint32(24, h.len, true);
  v.setUint16(28, h.type, true);
  v.setUint16(30, h.op, true);
  v.setUint32(32, h.flags, true);
  v.setUint32(36, h.bufAlloc, true);
  v.setUint32(40, h.fwdCnt, true);
  return into;
}
