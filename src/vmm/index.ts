export { Machine, exitCodeFor, EXIT_OK, EXIT_GUEST_FAILED, EXIT_VMM_ERROR, type VmResult } from './machine.ts';
export { validateVmConfig, DEFAULT_CMDLINE, DEFAULT_MEM_MIB, type VmConfig, type VmConfigInput } from './vm-config.ts';
export { prepareGuest, type PreparedGuest } from './guest-setup.ts';
export type { StopReason } from './vcpu/exit.ts';
export { parseElf, parseBzImage, detectKernelFormat, type KernelFormat } from './boot/index.ts';
