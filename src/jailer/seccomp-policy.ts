/**
 * The VMM's seccomp policy (x86_64): what Node.js and our VMM call, found by tracing the VMM (strace -f) through
 * every API operation and a boot with all its devices, and nothing that changes the process's privileges,
 * namespaces, mounts or other processes. The numbers are asm/unistd_64.h's (a unit test checks them).
 *
 * - A syscall not listed kills the process (SIGSYS; `matchlock jailer` reports it).
 * - io_uring gets ENOSYS: its operations would bypass this filter; libuv then uses its thread pool.
 * - ioctl is allowed for the listed requests only (KVM's, the TAP's, and the terminal probes of Node's stdio);
 *   any other request gets EPERM.
 * - The jail's filter also allows execve, to start the VMM; the VMM then adds `SEALED_POLICY` for all its
 *   threads, which refuses execve (and every other way to start a program).
 */
import * as sys from '../vmm/sys/index.ts';
import { SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, errnoAction, type SeccompPolicy } from './seccomp-bpf.ts';

export const SYSCALLS = {
  read: 0, write: 1, open: 2, close: 3, stat: 4, fstat: 5, lstat: 6, poll: 7, lseek: 8, mmap: 9, mprotect: 10,
  munmap: 11, brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, rt_sigreturn: 15, ioctl: 16, pread64: 17, pwrite64: 18,
  readv: 19, writev: 20, access: 21, sched_yield: 24, mremap: 25, madvise: 28, dup: 32, dup2: 33, nanosleep: 35,
  getpid: 39, socket: 41, connect: 42, sendto: 44, recvfrom: 45, sendmsg: 46, recvmsg: 47, shutdown: 48, bind: 49,
  listen: 50, getsockname: 51, getpeername: 52, socketpair: 53, setsockopt: 54, getsockopt: 55, clone: 56,
  fork: 57, vfork: 58, execve: 59, exit: 60, wait4: 61, kill: 62, uname: 63, fcntl: 72, fsync: 74, fdatasync: 75,
  ftruncate: 77, getcwd: 79, rename: 82, mkdir: 83, rmdir: 84, link: 86, unlink: 87, readlink: 89, chmod: 90,
  fchmod: 91, gettimeofday: 96, getrlimit: 97, getrusage: 98, sysinfo: 99, getuid: 102, getgid: 104, geteuid: 107,
  getegid: 108, getppid: 110, capget: 125, sigaltstack: 131, statfs: 137, fstatfs: 138, sched_getparam: 143,
  sched_getscheduler: 145, prctl: 157, arch_prctl: 158, gettid: 186, futex: 202, sched_getaffinity: 204,
  getdents64: 217, set_tid_address: 218, clock_gettime: 228, clock_getres: 229, clock_nanosleep: 230,
  exit_group: 231, epoll_wait: 232, epoll_ctl: 233, tgkill: 234, openat: 257, mkdirat: 258, newfstatat: 262,
  unlinkat: 263, renameat: 264, readlinkat: 267, faccessat: 269, ppoll: 271, set_robust_list: 273,
  get_robust_list: 274, epoll_pwait: 281, fallocate: 285, accept4: 288, eventfd2: 290, epoll_create1: 291,
  dup3: 292, pipe2: 293, preadv: 295, pwritev: 296, prlimit64: 302, getrandom: 318, memfd_create: 319,
  membarrier: 324, statx: 332, rseq: 334, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
  clone3: 435, close_range: 436, faccessat2: 439, epoll_pwait2: 441, seccomp: 317, execveat: 322,
} as const;

type Name = keyof typeof SYSCALLS;

const ALLOWED: readonly Name[] = [
  // memory, threads, signals, time
  'mmap', 'mprotect', 'munmap', 'mremap', 'madvise', 'brk', 'membarrier', 'memfd_create', 'clone', 'clone3', 'futex',
  'set_robust_list', 'get_robust_list', 'set_tid_address', 'rseq', 'arch_prctl', 'prctl', 'sched_yield',
  'sched_getaffinity', 'sched_getparam', 'sched_getscheduler', 'exit', 'exit_group', 'rt_sigaction',
  'rt_sigprocmask', 'rt_sigreturn', 'sigaltstack', 'tgkill', 'kill', 'nanosleep', 'clock_nanosleep', 'clock_gettime',
  'clock_getres', 'gettimeofday', 'getrandom', 'seccomp',
  // identity and limits (read only)
  'getpid', 'getppid', 'gettid', 'getuid', 'getgid', 'geteuid', 'getegid', 'capget', 'getrlimit', 'prlimit64',
  'getrusage', 'sysinfo', 'uname',
  // files: the VM's kernel, drives, overlays, serial, logs, metrics
  'read', 'write', 'pread64', 'pwrite64', 'readv', 'writev', 'preadv', 'pwritev', 'lseek', 'close', 'close_range',
  'open', 'openat', 'stat', 'fstat', 'lstat', 'newfstatat', 'statx', 'statfs', 'fstatfs', 'access', 'faccessat',
  'faccessat2', 'readlink', 'readlinkat', 'getcwd', 'getdents64', 'fcntl', 'fsync', 'fdatasync', 'ftruncate',
  'fallocate', 'unlink', 'unlinkat', 'rename', 'renameat', 'link', 'mkdir', 'mkdirat', 'rmdir', 'chmod', 'fchmod',
  'dup', 'dup2', 'dup3', 'pipe2',
  // event loops: libuv's, the device thread's, the vCPUs' eventfds
  'epoll_create1', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'eventfd2', 'poll', 'ppoll',
  // Unix sockets: the API, vsock
  'socket', 'socketpair', 'bind', 'listen', 'accept4', 'connect', 'shutdown', 'sendto', 'recvfrom', 'sendmsg',
  'recvmsg', 'getsockname', 'getpeername', 'setsockopt', 'getsockopt',
];

const ENOSYS = 38;
const EPERM = 1;

/** TTY probes of Node's stdio: TCGETS, TIOCGWINSZ, FIONBIO, FIONCLEX, FIOCLEX, FIONREAD. */
const STDIO_IOCTLS = [0x5401, 0x5413, 0x5421, 0x5450, 0x5451, 0x541b];

/** Every KVM ioctl our VMM makes (all of ioctl-numbers.ts), and the TAP's. */
export const VMM_IOCTLS: readonly number[] = [
  ...Object.entries(sys).filter(([k, v]) => k.startsWith('KVM_') && typeof v === 'number' && ((v >>> 8) & 0xff) === sys.KVMIO).map(([, v]) => v as number),
  sys.TUNSETIFF, sys.TUNSETVNETHDRSZ, sys.TUNSETOFFLOAD, sys.SIOCGIFFLAGS, sys.SIOCSIFFLAGS,
];

function policy(extra: readonly Name[]): SeccompPolicy {
  const rules = new Map<number, number>([...ALLOWED, ...extra].map((n) => [SYSCALLS[n], SECCOMP_RET_ALLOW]));
  for (const n of ['io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const) rules.set(SYSCALLS[n], errnoAction(ENOSYS));
  return {
    rules,
    ioctls: [...VMM_IOCTLS, ...STDIO_IOCTLS],
    ioctlErrno: EPERM,
    defaultAction: SECCOMP_RET_KILL_PROCESS,
  };
}

/** The jail's filter: the VMM's calls, and execve to start it. */
export const JAIL_POLICY: SeccompPolicy = policy(['execve']);

/** What the running VMM adds for all its threads: starting a program kills the process. */
export const SEALED_POLICY: SeccompPolicy = {
  rules: new Map([SYSCALLS.execve, SYSCALLS.execveat, SYSCALLS.fork, SYSCALLS.vfork].map((nr) => [nr, SECCOMP_RET_KILL_PROCESS])),
  ioctls: null,
  ioctlErrno: EPERM,
  defaultAction: SECCOMP_RET_ALLOW,
};
