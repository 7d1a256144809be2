/** The seccomp policy and its BPF: numbers as the kernel headers have them, and what the filter decides. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  JAIL_POLICY, SEALED_POLICY, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SYSCALLS, VMM_IOCTLS, assemble, decide, encode,
} from '../../../src/jailer/index.ts';
import * as sys from '../../../src/vmm/sys/index.ts';

const HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';

test('every syscall number in the policy is the one asm/unistd_64.h gives', (t) => {
  const header = new Map<string, number>();
  for (const m of readFileSync(HEADER, 'utf8').matchAll(/#define __NR_(\w+) (\d+)/g)) header.set(m[1]!, Number(m[2]));
  for (const [name, nr] of Object.entries(SYSCALLS)) t.is(header.get(name), nr, name);
});

const jail = assemble(JAIL_POLICY);
const sealed = assemble(SEALED_POLICY);
const call = (insns: typeof jail, name: keyof typeof SYSCALLS, args: bigint[] = []): number => decide(insns, { nr: SYSCALLS[name], args });

test('the jail filter allows what the VMM does and kills what it must never do', (t) => {
  for (const name of ['read', 'mmap', 'clone3', 'futex', 'epoll_wait', 'accept4', 'pwrite64', 'tgkill', 'execve'] as const) t.is(call(jail, name), SECCOMP_RET_ALLOW, name);
  for (const nr of [165 /* mount */, 155 /* pivot_root */, 101 /* ptrace */, 308 /* setns */, 272 /* unshare */, 321 /* bpf */, 105 /* setuid */, 57 /* fork */]) {
    t.is(decide(jail, { nr }), SECCOMP_RET_KILL_PROCESS, `syscall ${nr}`);
  }
  t.is(call(jail, 'io_uring_setup'), (SECCOMP_RET_ERRNO | 38) >>> 0, 'io_uring: ENOSYS');
});

test('ioctl: KVM and TAP requests pass, others get EPERM, and so does a request with high bits set', (t) => {
  for (const req of [sys.KVM_RUN, sys.KVM_CREATE_VM, sys.KVM_SET_USER_MEMORY_REGION, sys.KVM_IRQFD, sys.TUNSETIFF, 0x5401]) {
    t.is(decide(jail, { nr: SYSCALLS.ioctl, args: [3n, BigInt(req)] }), SECCOMP_RET_ALLOW, req.toString(16));
  }
  t.is(decide(jail, { nr: SYSCALLS.ioctl, args: [3n, 0x1234n] }), (SECCOMP_RET_ERRNO | 1) >>> 0);
  t.is(decide(jail, { nr: SYSCALLS.ioctl, args: [3n, (1n << 32n) | BigInt(sys.KVM_RUN)] }), (SECCOMP_RET_ERRNO | 1) >>> 0);
  t.true(VMM_IOCTLS.every((r) => r > 0xff), 'only request numbers, no flag constants');
});

test('another architecture and x32 numbers are killed', (t) => {
  t.is(decide(jail, { nr: 0, arch: 0x40000003 /* i386 */ }), SECCOMP_RET_KILL_PROCESS);
  t.is(decide(jail, { nr: 0x40000000 }), SECCOMP_RET_KILL_PROCESS);
});

test('the seal kills execve, execveat, fork and vfork, and leaves the rest to the jail filter', (t) => {
  for (const name of ['execve', 'execveat', 'fork', 'vfork'] as const) t.is(call(sealed, name), SECCOMP_RET_KILL_PROCESS, name);
  t.is(call(sealed, 'read'), SECCOMP_RET_ALLOW);
  t.is(decide(sealed, { nr: SYSCALLS.ioctl, args: [0n, 0x1234n] }), SECCOMP_RET_ALLOW);
});

test('encoding: 8 bytes per instruction, little-endian code/jt/jf/k', (t) => {
  const bytes = encode(jail);
  t.is(bytes.length, jail.length * 8);
  const v = new DataView(bytes.buffer);
  t.is(v.getUint16(0, true), 0x20, 'first: load arch');
  t.is(v.getUint32(4, true), 4);
  t.throws(() => assemble({ rules: new Map([[SYSCALLS.ioctl, SECCOMP_RET_ALLOW]]), ioctls: [], ioctlErrno: 1, defaultAction: SECCOMP_RET_KILL_PROCESS }), { message: /ioctl is ruled by request number/ });
});
