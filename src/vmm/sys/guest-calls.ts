/**
 * What the guest agent needs from the kernel that Node does not give: vsock sockets (Node's net module knows
 * only TCP and Unix sockets), waiting for orphans it inherits as PID 1, and syncing and ending the VM.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { accept4OnWorker, errno, errnoName, raw } from './libc.ts';
import { syscallError } from './errors.ts';
import { AF_UNIX, SOCKADDR_UN_SIZE, sockaddrUn } from './unix-socket.ts';

export const AF_VSOCK = 40;
/** Any local CID: the guest's own. */
const VMADDR_CID_ANY = 0xffffffff;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SHUT_RDWR = 2;
const WNOHANG = 1;
/** reboot(2): the VM's reset (with `reboot=k` the guest kernel resets through the i8042, which ends our VMM's VM). */
export const LINUX_REBOOT_CMD_RESTART = 0x01234567;
export const LINUX_REBOOT_CMD_POWER_OFF = 0x4321fedc;

function listenBlocking(family: number, addr: Uint8Array, len: number, where: string, backlog: number): number {
  const fd = raw.socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const hint = family === AF_VSOCK ? ' (is virtio-vsock in the guest kernel?)' : '';
    throw new MatchlockError(ErrorCodes.VSOCK, `cannot make a socket for ${where}: ${errnoName(errno())}${hint}`, {});
  }
  if (raw.bind(fd, addr, len) < 0 || raw.listen(fd, backlog) < 0) {
    const en = errnoName(errno());
    raw.close(fd);
    throw new MatchlockError(ErrorCodes.VSOCK, `cannot listen on ${where}: ${en}`, { where, errno: en });
  }
  return fd;
}

/** A blocking vsock stream socket listening on `port` of the guest's CID. */
export function listenVsock(port: number, backlog = 4): number {
  const addr = new Uint8Array(16);
  const v = new DataView(addr.buffer);
  v.setUint16(0, AF_VSOCK, true);
  v.setUint32(4, port, true);
  v.setUint32(8, VMADDR_CID_ANY, true);
  return listenBlocking(AF_VSOCK, addr, addr.length, `vsock port ${port}`, backlog);
}

/** The same as a blocking Unix socket at `path` (the agent run as a process): one code path for both. */
export function listenUnixBlocking(path: string, backlog = 4): number {
  return listenBlocking(AF_UNIX, sockaddrUn(path), SOCKADDR_UN_SIZE, path, backlog);
}

/** The next connection on a listening socket, waited for on a worker thread so the event loop runs on. */
export async function acceptOnWorker(fd: number): Promise<number> {
  const c = await accept4OnWorker(fd, SOCK_CLOEXEC);
  if (c < 0) throw new MatchlockError(ErrorCodes.VSOCK, `accept on vsock failed (fd ${fd})`, { fd });
  return c;
}

/** Ends both directions: a read blocked on the socket in another thread returns at once. */
export function shutdownBoth(fd: number): void {
  raw.shutdown(fd, SHUT_RDWR);
}

/** Collects a child that has exited; true when there was one to collect. */
export function reapIfExited(pid: number): boolean {
  return raw.waitpid(pid, null, WNOHANG) === pid;
}

export function syncFileSystems(): void {
  raw.sync();
}

/** Ends the VM (or, as PID 1 of a PID namespace, the namespace: its init dies of SIGHUP or SIGINT). */
export function rebootSystem(cmd: number): void {
  if (raw.reboot(cmd) < 0) throw syscallError('reboot');
}
