/**
 * The one koffi boundary: every native call matchlock makes is declared here. Nothing else imports koffi.
 * Raw calls return what libc returns (-1 on failure); `errno()` reads the error of the last call on this thread.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const accept4Blocking = libc.func('int accept4(int fd, void *addr, void *len, int flags)');

const mmapRaw = libc.func('int64_t mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as (
  addr: null, len: number, prot: number, flags: number, fd: number, off: number,
) => number | bigint;

export const raw = {
  open: libc.func('int open(const char *path, int flags, uint32_t mode)') as (path: string, flags: number, mode: number) => number,
  close: libc.func('int close(int fd)') as (fd: number) => number,
  /** ioctl with an integer (or no) argument. */
  ioctlInt: libc.func('int ioctl(int fd, unsigned long req, uint64_t arg)') as (fd: number, req: number, arg: number | bigint) => number,
  /** ioctl with a pointer to a buffer the kernel reads and/or writes in place. */
  ioctlPtr: libc.func('int ioctl(int fd, unsigned long req, void *arg)') as (fd: number, req: number, arg: Uint8Array) => number,
  /** Returns the address as a bigint, -1n on failure (koffi gives a 64-bit integer as a number when it fits). */
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number): bigint =>
    BigInt(mmapRaw(addr, len, prot, flags, fd, off)),
  munmap: libc.func('int munmap(uint64_t addr, size_t len)') as (addr: bigint, len: number) => number,
  madvise: libc.func('int madvise(uint64_t addr, size_t len, int advice)') as (addr: bigint, len: number, advice: number) => number,
  gettid: libc.func('int gettid(void)') as () => number,
  getpid: libc.func('int getpid(void)') as () => number,
  socket: libc.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number,
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)') as (fd: number, addr: Uint8Array, len: number) => number,
  listen: libc.func('int listen(int fd, int backlog)') as (fd: number, backlog: number) => number,
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)') as (fd: number, addr: null, len: null, flags: number) => number,
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)') as (fd: number, addr: Uint8Array, len: number) => number,
  send: libc.func('int64_t send(int fd, void *buf, size_t len, int flags)') as (fd: number, buf: Uint8Array, len: number, flags: number) => number | bigint,
  shutdown: libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number,
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *value, void *len)') as (fd: number, level: number, name: number, value: Uint8Array, len: Uint8Array) => number,
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)') as (initval: number, flags: number) => number,
  epollCreate1: libc.func('int epoll_create1(int flags)') as (flags: number) => number,
  epollCtl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as (epfd: number, op: number, fd: number, event: Uint8Array | null) => number,
  /** Blocks the calling thread: only for threads that do nothing else (a device thread). */
  epollWait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as (epfd: number, events: Uint8Array, max: number, timeout: number) => number,
  read: libc.func('int64_t read(int fd, void *buf, size_t len)') as (fd: number, buf: Uint8Array, len: number) => number | bigint,
  write: libc.func('int64_t write(int fd, void *buf, size_t len)') as (fd: number, buf: Uint8Array, len: number) => number | bigint,
  tgkill: libc.func('int tgkill(int tgid, int tid, int sig)') as (tgid: number, tid: number, sig: number) => number,
  // The jail: namespaces, mounts, identity, limits, seccomp, exec.
  unshare: libc.func('int unshare(int flags)') as (flags: number) => number,
  setns: libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number,
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as (
    source: string | null, target: string, fstype: string | null, flags: number, data: string | null,
  ) => number,
  umount2: libc.func('int umount2(const char *target, int flags)') as (target: string, flags: number) => number,
  pivotRoot: libc.func('syscall', 'long', ['long', 'str', 'str']) as (nr: number, newRoot: string, putOld: string) => number,
  chroot: libc.func('int chroot(const char *path)') as (path: string) => number,
  chdir: libc.func('int chdir(const char *path)') as (path: string) => number,
  mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as (path: string, mode: number, dev: number) => number,
  // Image layers: extended attributes on the tree a layer is applied to (never through a symlink).
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as (
    path: string, name: string, value: Uint8Array, size: number, flags: number,
  ) => number,
  setgroups: libc.func('int setgroups(size_t size, void *list)') as (size: number, list: null) => number,
  setresgid: libc.func('int setresgid(uint32_t r, uint32_t e, uint32_t s)') as (r: number, e: number, s: number) => number,
  setresuid: libc.func('int setresuid(uint32_t r, uint32_t e, uint32_t s)') as (r: number, e: number, s: number) => number,
  prctl: libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as (
    option: number, a2: number, a3: number, a4: number, a5: number,
  ) => number,
  seccomp: libc.func('syscall', 'long', ['long', 'unsigned long', 'unsigned long', 'void *']) as (nr: number, op: number, flags: number, prog: Uint8Array) => number,
  setrlimit: libc.func('int setrlimit(int resource, void *rlim)') as (resource: number, rlim: Uint8Array) => number,
  fcntlInt: libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number,
  closeRange: libc.func('int close_range(unsigned int first, unsigned int last, int flags)') as (first: number, last: number, flags: number) => number,
  // The guest agent (PID 1 in a job VM): power, reaping, file system sync.
  sync: libc.func('void sync(void)') as () => void,
  reboot: libc.func('int reboot(int cmd)') as (cmd: number) => number,
  waitpid: libc.func('int waitpid(int pid, void *status, int options)') as (pid: number, status: Uint8Array | null, options: number) => number,
  execve: libc.func('int execve(const char *path, const char **argv, const char **envp)') as (path: string, argv: (string | null)[], envp: (string | null)[]) => number,
} as const;

/** accept4 on a blocking socket, run on a worker thread: resolves with the new fd, or a negative number on failure. */
export function accept4OnWorker(fd: number, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    accept4Blocking.async(fd, null, null, flags, (err: unknown, res: unknown) => {
      if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(Number(res));
    });
  });
}

export function errno(): number {
  return koffi.errno();
}

/** An ArrayBuffer over native memory, without copying. */
export function nativeView(address: bigint, len: number): ArrayBuffer {
  return koffi.view(address, len);
}

/** The name of an errno value (`ENOENT`), or `errno N`. */
export function errnoName(code: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === code) return name;
  return `errno ${code}`;
}

export const ERRNO = koffi.os.errno as Readonly<Record<string, number>>;
