/**
 * eventfd and epoll: how KVM tells a device thread that a queue was notified (ioeventfd), how that thread
 * raises an interrupt (irqfd), and how it waits for all of its file descriptors at once.
 */
import { ERRNO, errno, raw } from './libc.ts';
import { syscallError } from './errors.ts';

export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
/** struct epoll_event is packed on x86_64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;

/** A non-blocking eventfd. */
export function eventFd(): number {
  const fd = raw.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw syscallError('eventfd', {});
  return fd;
}

const one = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Adds 1 to an eventfd's counter (wakes whoever waits on it). */
export function signalEventFd(fd: number): void {
  const r = Number(raw.write(fd, one, 8));
  if (r !== 8 && errno() !== ERRNO.EAGAIN) throw syscallError('write (eventfd)', { fd });
}

/** Reads and clears an eventfd's counter; 0 when it was not signalled. */
export function drainEventFd(fd: number): number {
  const b = new Uint8Array(8);
  const r = Number(raw.read(fd, b, 8));
  if (r === 8) return Number(new DataView(b.buffer).getBigUint64(0, true));
  if (errno() === ERRNO.EAGAIN) return 0;
  throw syscallError('read (eventfd)', { fd });
}

export function epollCreate(): number {
  const fd = raw.epollCreate1(EPOLL_CLOEXEC);
  if (fd < 0) throw syscallError('epoll_create1', {});
  return fd;
}

function encodeEvent(events: number, token: number): Uint8Array {
  const b = new Uint8Array(EPOLL_EVENT_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, events, true);
  v.setBigUint64(4, BigInt(token), true);
  return b;
}

/** Watches `fd` for `events`; `token` comes back with each of its events. */
export function epollAdd(epfd: number, fd: number, events: number, token: number): void {
  if (raw.epollCtl(epfd, EPOLL_CTL_ADD, fd, encodeEvent(events, token)) < 0) throw syscallError('epoll_ctl (add)', { fd });
}

export function epollModify(epfd: number, fd: number, events: number, token: number): void {
  if (raw.epollCtl(epfd, EPOLL_CTL_MOD, fd, encodeEvent(events, token)) < 0) throw syscallError('epoll_ctl (mod)', { fd });
}

export function epollRemove(epfd: number, fd: number): void {
  if (raw.epollCtl(epfd, EPOLL_CTL_DEL, fd, null) < 0) throw syscallError('epoll_ctl (del)', { fd });
}

/** An fd and the epoll events to wait for. */
export interface Watch {
  readonly fd: number;
  readonly events: number;
}

export interface ReadyEvent {
  readonly token: number;
  readonly events: number;
}

/** Waits up to `timeoutMs` (-1: for ever) for events; an interrupted wait returns none. */
export function epollWait(epfd: number, buf: Uint8Array, timeoutMs: number): ReadyEvent[] {
  const max = Math.floor(buf.length / EPOLL_EVENT_SIZE);
  const n = raw.epollWait(epfd, buf, max, timeoutMs);
  if (n < 0) {
    if (errno() === ERRNO.EINTR) return [];
    throw syscallError('epoll_wait', { epfd });
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: ReadyEvent[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ events: v.getUint32(i * EPOLL_EVENT_SIZE, true), token: Number(v.getBigUint64(i * EPOLL_EVENT_SIZE + 4, true)) });
  }
  return out;
}
