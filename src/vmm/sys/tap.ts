/**
 * TAP devices for virtio-net: open one by name (created if it does not exist, attached if it does), with the
 * 12-byte virtio-net header on every frame, and the offloads the guest accepted.
 */
import { existsSync } from 'node:fs';
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { errno, errnoName, raw } from './libc.ts';
import { closeFd } from './calls.ts';
import { O_CLOEXEC, O_RDWR } from './calls.ts';

export const TUNSETIFF = 0x400454ca;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNSETOFFLOAD = 0x400454d0;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_UP = 0x1;
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const IFREQ_SIZE = 40;
export const IFREQ_FLAGS_OFFSET = 16;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const O_NONBLOCK = 0o4000;
export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
/** struct virtio_net_hdr_v1: what the TAP prepends to each frame and expects before each. */
export const VNET_HDR_SIZE = 12;
/** Linux's limit for interface names, without the NUL. */
export const IFNAMSIZ_MAX = 15;

function tapError(name: string, what: string, hint = ''): MatchlockError {
  const en = errnoName(errno());
  return new MatchlockError(ErrorCodes.NET, `TAP ${name}: ${what} failed (${en})${hint}`, { tap: name, errno: en });
}

function ifreq(name: string, flags = 0): Uint8Array {
  const b = new Uint8Array(IFREQ_SIZE);
  b.set(new TextEncoder().encode(name));
  new DataView(b.buffer).setUint16(IFREQ_FLAGS_OFFSET, flags, true);
  return b;
}

export interface Tap {
  readonly fd: number;
  readonly name: string;
  /** True when this open made the device (it goes away with the fd); false when an existing one was attached. */
  readonly created: boolean;
}

/** Opens TAP `name` non-blocking with virtio-net headers; a device this call creates is also brought up. */
export function openTap(name: string): Tap {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
    throw new MatchlockError(ErrorCodes.CONFIG, `TAP name ${JSON.stringify(name)} is not 1 to ${IFNAMSIZ_MAX} letters, digits, "_", "." or "-"`, { tap: name });
  }
  const existed = existsSync(`/sys/class/net/${name}`);
  const fd = raw.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw tapError(name, 'open /dev/net/tun', ': load the tun module and run as root or with CAP_NET_ADMIN');
  try {
    if (raw.ioctlPtr(fd, TUNSETIFF, ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)) < 0) {
      throw tapError(name, 'TUNSETIFF', existed ? ': the device exists but is not a TAP this user may attach (multi-queue? owned by another user?)' : '');
    }
    const size = new Uint8Array(4);
    new DataView(size.buffer).setInt32(0, VNET_HDR_SIZE, true);
    if (raw.ioctlPtr(fd, TUNSETVNETHDRSZ, size) < 0) throw tapError(name, 'TUNSETVNETHDRSZ');
    if (!existed) setUp(name);
    return { fd, name, created: !existed };
  } catch (e: unknown) {
    closeFd(fd);
    throw e;
  }
}

/** Sets the offloads (TUN_F_*) the TAP may hand frames to us with. */
export function setTapOffload(tap: Tap, flags: number): void {
  if (raw.ioctlInt(tap.fd, TUNSETOFFLOAD, flags) < 0) throw tapError(tap.name, 'TUNSETOFFLOAD');
}

function setUp(name: string): void {
  const s = raw.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw tapError(name, 'socket (to bring it up)');
  try {
    const req = ifreq(name);
    if (raw.ioctlPtr(s, SIOCGIFFLAGS, req) < 0) throw tapError(name, 'SIOCGIFFLAGS');
    const v = new DataView(req.buffer);
    v.setUint16(IFREQ_FLAGS_OFFSET, v.getUint16(IFREQ_FLAGS_OFFSET, true) | IFF_UP, true);
    if (raw.ioctlPtr(s, SIOCSIFFLAGS, req) < 0) throw tapError(name, 'SIOCSIFFLAGS (up)');
  } finally {
    closeFd(s);
  }
}

/** Reads one frame (with its header) into `buf`; returns its length, or 0 when none is waiting. */
export function readFrame(fd: number, buf: Uint8Array): number {
  const n = Number(raw.read(fd, buf, buf.length));
  if (n >= 0) return n;
  const e = errnoName(errno());
  if (e === 'EAGAIN' || e === 'EWOULDBLOCK' || e === 'EINTR') return 0;
  throw new MatchlockError(ErrorCodes.NET, `TAP read failed (${e})`, { fd, errno: e });
}

/** Writes one frame (with its header); false when the TAP's queue is full (the frame is not sent). */
export function writeFrame(fd: number, frame: Uint8Array): boolean {
  const n = Number(raw.write(fd, frame, frame.length));
  if (n === frame.length) return true;
  const e = errnoName(errno());
  if (n < 0 && (e === 'EAGAIN' || e === 'EWOULDBLOCK')) return false;
  throw new MatchlockError(ErrorCodes.NET, `TAP write of ${frame.length} bytes failed (${n < 0 ? e : `short: ${n}`})`, { fd, errno: e });
}
