/** The jailer: runs one VMM confined (namespaces, pivot_root, cgroups, limits, uid/gid, seccomp). */
export { runJailed, jailPaths } from './jailer.ts';
export { parseJailArgs, JAILER_USAGE, type JailSpec, type Bind } from './jail-spec.ts';
export { VmCgroup, cgroupMounts } from './cgroups.ts';
export { assemble, encode, decide, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, type SeccompPolicy } from './seccomp-bpf.ts';
export { JAIL_POLICY, SEALED_POLICY, SYSCALLS, VMM_IOCTLS } from './seccomp-policy.ts';
export { sealVmm } from './seal.ts';
export { runtimeParts, REPO, type RuntimeParts } from './jail-fs.ts';
