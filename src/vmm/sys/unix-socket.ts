/**
 * Non-blocking Unix stream sockets, for the vsock device's host side (Firecracker's protocol: a listening
 * socket at uds_path for host-initiated connections, and `uds_path_PORT` for guest-initiated ones).
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { ERRNO, errno, errnoName, raw } from './libc.ts';
import { closeFd } from './calls.ts';

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCKADDR_UN_SIZE = 110;
export const SUN_PATH_MAX = 107;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SHUT_WR = 1;
const SOL_SOCKET = 1;
const SO_ERROR = 4;

export function sockaddrUn(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length === 0 || bytes.length > SUN_PATH_MAX) {
    throw new MatchlockError(ErrorCodes.CONFIG, `Unix socket path ${path} is ${bytes.length} bytes: it must be 1 to ${SUN_PATH_MAX}`, { path });
  }
  const a = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(a.buffer).setUint16(0, AF_UNIX, true);
  a.set(bytes, 2);
  return a;
}

function newSocket(): number {
  const fd = raw.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new MatchlockError(ErrorCodes.SYSCALL, `socket (AF_UNIX) failed: ${errnoName(errno())}`, {});
  return fd;
}

/** Listens at `path`; refuses a path that exists (another VM's socket, or a stale one to remove). */
export function listenUnix(path: string, backlog = 128): number {
  const addr = sockaddrUn(path);
  const fd = newSocket();
  if (raw.bind(fd, addr, SOCKADDR_UN_SIZE) < 0 || raw.listen(fd, backlog) < 0) {
    const en = errnoName(errno());
    closeFd(fd);
    throw new MatchlockError(ErrorCodes.VSOCK, en === 'EADDRINUSE'
      ? `vsock socket ${path} already exists: remove it (a VM that did not clean up?) or choose another uds=`
      : `cannot listen on vsock socket ${path}: ${en}`, { path, errno: en });
  }
  return fd;
}

/** A waiting connection, or null when there is none. */
export function acceptUnix(fd: number): number | null {
  const c = raw.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c >= 0) return c;
  const e = errno();
  if (e === ERRNO.EAGAIN || e === ERRNO.EINTR || e === ERRNO.ECONNABORTED) return null;
  throw new MatchlockError(ErrorCodes.VSOCK, `accept failed: ${errnoName(e)}`, {});
}

/** Connects to `path`; the fd is connected or connecting (watch for EPOLLOUT, then socketError); null if refused. */
export function connectUnix(path: string): { fd: number; pending: boolean } | null {
  const addr = sockaddrUn(path);
  const fd = newSocket();
  if (raw.connect(fd, addr, SOCKADDR_UN_SIZE) === 0) return { fd, pending: false };
  const e = errno();
  if (e === ERRNO.EINPROGRESS || e === ERRNO.EAGAIN) return { fd, pending: true };
  closeFd(fd);
  return null;
}

/** The pending error of a socket (0: none; after a non-blocking connect, 0 means connected). */
export function socketError(fd: number): number {
  const v = new Uint8Array(4);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, 4, true);
  if (raw.getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len) < 0) return errno();
  return new DataView(v.buffer).getInt32(0, true);
}

/** Reads what is there: bytes read, 0 at end of stream, -1 when nothing is waiting; throws on a reset. */
export function readSocket(fd: number, buf: Uint8Array): number {
  const n = Number(raw.read(fd, buf, buf.length));
  if (n >= 0) return n;
  const e = errno();
  if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return -1;
  throw new MatchlockError(ErrorCodes.VSOCK, `read failed: ${errnoName(e)}`, { errno: errnoName(e) });
}

/** Writes what fits: bytes written (0 when the socket is full); throws when the peer is gone. */
export function writeSocket(fd: number, buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  const n = Number(raw.send(fd, buf, buf.length, MSG_NOSIGNAL));
  if (n >= 0) return n;
  const e = errno();
  if (e === ERRNO.EAGAIN || e === ERRNO.EINTR) return 0;
  throw new MatchlockError(ErrorCodes.VSOCK, `write failed: ${errnoName(e)}`, { errno: errnoName(e) });
}

export function shutdownWrite(fd: number): void {
  raw.shutdown(fd, SHUT_WR);
}
