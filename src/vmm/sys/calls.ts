/**
 * Checked system calls: each returns its result or throws a MatchlockError naming the call and errno.
 */
import { ERRNO, errno, raw, nativeView } from './libc.ts';
import { ioctlError, syscallError } from './errors.ts';

export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTDUMP = 16;

/** ioctl with an integer argument; returns the non-negative result. */
export function ioctlInt(fd: number, req: number, name: string, arg: number | bigint = 0): number {
  const r = raw.ioctlInt(fd, req, arg);
  if (r < 0) throw ioctlError(name, { fd });
  return r;
}

/** ioctl with a buffer the kernel reads or fills in place. */
export function ioctlBuf(fd: number, req: number, name: string, buf: Uint8Array): number {
  const r = raw.ioctlPtr(fd, req, buf);
  if (r < 0) throw ioctlError(name, { fd });
  return r;
}

/** KVM_RUN-style call: returns the result, or -errno for EINTR/EAGAIN so the caller can loop. */
export function ioctlRun(fd: number, req: number, name: string): number {
  const r = raw.ioctlInt(fd, req, 0);
  if (r >= 0) return r;
  const e = errno();
  if (e === ERRNO.EINTR || e === ERRNO.EAGAIN) return -e;
  throw ioctlError(name, { fd });
}

export const EINTR = ERRNO.EINTR ?? 4;
export const EAGAIN = ERRNO.EAGAIN ?? 11;

export function openDevice(path: string): number {
  const fd = raw.open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw syscallError(`open ${path}`, { path });
  return fd;
}

export function closeFd(fd: number): void {
  raw.close(fd);
}

/** A native mapping and a view of it. */
export interface Mapping {
  readonly address: bigint;
  readonly size: number;
  readonly bytes: Uint8Array;
}

/** Anonymous private memory that reserves no swap (guest RAM). Pages are allocated as the guest touches them. */
export function mapAnonymous(size: number): Mapping {
  const address = raw.mmap(null, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (address === -1n) throw syscallError('mmap (guest memory)', { size });
  raw.madvise(address, size, MADV_DONTDUMP);
  return { address, size, bytes: new Uint8Array(nativeView(address, size)) };
}

/** A shared mapping of a file descriptor (the kvm_run page of a vCPU). */
export function mapShared(fd: number, size: number): Mapping {
  const address = raw.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address === -1n) throw syscallError('mmap (vcpu run page)', { size, fd });
  return { address, size, bytes: new Uint8Array(nativeView(address, size)) };
}

/** A view of a mapping made by another thread of this process. */
export function viewMapping(address: bigint, size: number): Uint8Array {
  return new Uint8Array(nativeView(address, size));
}

export function unmap(address: bigint, size: number): void {
  if (raw.munmap(address, size) < 0) throw syscallError('munmap', { size });
}

export function gettid(): number {
  return raw.gettid();
}

export function getpid(): number {
  return raw.getpid();
}

/** Send `signal` to one thread of this process; false when the thread is gone. */
export function signalThread(tid: number, signal: number): boolean {
  return raw.tgkill(raw.getpid(), tid, signal) === 0;
}
