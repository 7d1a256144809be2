export { Kvm, KVM_DEVICE } from './kvm.ts';
export { VmFd } from './vm-fd.ts';
export { VcpuFd } from './vcpu-fd.ts';
export { kvmUnusableReason } from './probe.ts';
