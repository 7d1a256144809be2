/**
 * A seccomp filter as classic BPF, assembled from a policy: the architecture must be x86_64 (x32 numbers are
 * refused too), listed syscalls are allowed, some get an errno instead (what a runtime only probes for), ioctl
 * is allowed only for listed request numbers, and anything else gets the default action.
 * The layout is `struct seccomp_data` and `struct sock_filter` from <linux/seccomp.h> and <linux/filter.h>.
 */

export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const X32_SYSCALL_BIT = 0x40000000;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SYS_ioctl = 16;

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_RET_K = 0x06;
const SIZEOF_SOCK_FILTER = 8;
/** The kernel's limit on a filter's length (BPF_MAXINSNS). */
const BPF_MAXINSNS = 4096;

const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG1_LO = 24;
const OFF_ARG1_HI = 28;

export interface SeccompPolicy {
  /** Syscall number → action (SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | errno, SECCOMP_RET_KILL_PROCESS). */
  readonly rules: ReadonlyMap<number, number>;
  /** ioctl request numbers let through, other requests get SECCOMP_RET_ERRNO | `ioctlErrno`; null: ioctl takes the default action. */
  readonly ioctls: readonly number[] | null;
  readonly ioctlErrno: number;
  /** For everything else. */
  readonly defaultAction: number;
}

export const errnoAction = (errno: number): number => (SECCOMP_RET_ERRNO | (errno & 0xffff)) >>> 0;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const load = (off: number): Insn => ({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: off });
const ret = (action: number): Insn => ({ code: BPF_RET_K, jt: 0, jf: 0, k: action >>> 0 });
/** if (A == k) next; else skip one: followed by the instruction for the match. */
const ifEqual = (k: number): Insn => ({ code: BPF_JEQ_K, jt: 0, jf: 1, k: k >>> 0 });

/** The filter's instructions; throws when the policy is malformed. */
export function assemble(policy: SeccompPolicy): Insn[] {
  const insns: Insn[] = [];
  insns.push(load(OFF_ARCH), { code: BPF_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 }, ret(SECCOMP_RET_KILL_PROCESS));
  insns.push(load(OFF_NR), { code: BPF_JGE_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT }, ret(SECCOMP_RET_KILL_PROCESS));
  for (const [nr, action] of policy.rules) {
    if (!Number.isInteger(nr) || nr < 0 || nr >= X32_SYSCALL_BIT) throw new RangeError(`syscall ${nr} is not an x86_64 syscall number`);
    if (nr === SYS_ioctl) throw new RangeError('ioctl is ruled by request number (ioctls), not as a whole');
    insns.push(ifEqual(nr), ret(action));
  }
  if (policy.ioctls === null) {
    insns.push(ret(policy.defaultAction));
    return checkLength(insns);
  }
  // ioctl: the request is the low 32 bits of args[1]; the high bits must be 0.
  insns.push({ code: BPF_JEQ_K, jt: 1, jf: 0, k: SYS_ioctl }, ret(policy.defaultAction));
  insns.push(load(OFF_ARG1_HI), { code: BPF_JEQ_K, jt: 1, jf: 0, k: 0 }, ret(errnoAction(policy.ioctlErrno)));
  insns.push(load(OFF_ARG1_LO));
  for (const req of new Set(policy.ioctls)) insns.push(ifEqual(req), ret(SECCOMP_RET_ALLOW));
  insns.push(ret(errnoAction(policy.ioctlErrno)));
  return checkLength(insns);
}

function checkLength(insns: Insn[]): Insn[] {
  if (insns.length > BPF_MAXINSNS) throw new RangeError(`the filter has ${insns.length} instructions, more than ${BPF_MAXINSNS}`);
  return insns;
}

/** The program as the kernel reads it: an array of struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}. */
export function encode(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * SIZEOF_SOCK_FILTER);
  const view = new DataView(out.buffer);
  insns.forEach((insn, i) => {
    const at = i * SIZEOF_SOCK_FILTER;
    view.setUint16(at, insn.code, true);
    view.setUint8(at + 2, insn.jt);
    view.setUint8(at + 3, insn.jf);
    view.setUint32(at + 4, insn.k, true);
  });
  return out;
}

/** What the filter decides for one call: an interpreter of our own instructions, for tests and diagnostics. */
export function decide(insns: readonly Insn[], data: { nr: number; arch?: number; args?: readonly bigint[] }): number {
  const words = new DataView(new ArrayBuffer(64));
  words.setUint32(OFF_NR, data.nr >>> 0, true);
  words.setUint32(OFF_ARCH, data.arch ?? AUDIT_ARCH_X86_64, true);
  (data.args ?? []).forEach((a, i) => words.setBigUint64(16 + i * 8, BigInt.asUintN(64, a), true));
  let acc = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const insn = insns[pc]!;
    if (insn.code === BPF_LD_W_ABS) acc = words.getUint32(insn.k, true);
    else if (insn.code === BPF_RET_K) return insn.k;
    else if (insn.code === BPF_JEQ_K) pc += acc === insn.k ? insn.jt : insn.jf;
    else if (insn.code === BPF_JGE_K) pc += acc >= insn.k ? insn.jt : insn.jf;
    else throw new Error(`unknown BPF opcode ${insn.code}`);
  }
  throw new Error('the filter ran off its end');
}
