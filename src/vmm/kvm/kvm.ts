import { ErrorCodes, MatchlockError } from '../../errors.ts';
import * as sys from '../sys/index.ts';
import type { KvmCpuidEntry } from '../sys/index.ts';
import { VmFd } from './vm-fd.ts';

export const KVM_DEVICE = '/dev/kvm';

function openKvm(path: string): number {
  try {
    return sys.openDevice(path);
  } catch (e: unknown) {
    const errno = e instanceof MatchlockError ? String(e.details['errno']) : 'unknown';
    const hint = errno === 'ENOENT'
      ? 'load the kvm module (kvm_intel or kvm_amd) on a host with hardware virtualization, or run on such a host'
      : errno === 'EACCES' || errno === 'EPERM'
        ? 'run as root or as a user in the group that owns it (usually kvm)'
        : 'check that KVM works on this host (dmesg | grep -i kvm)';
    throw new MatchlockError(ErrorCodes.KVM_UNAVAILABLE, `cannot open ${path} (${errno}): ${hint}`, { path, errno }, { cause: e });
  }
}

/** The KVM system handle: version and capability checks, and what KVM supports on this host. */
export class Kvm {
  readonly fd: number;
  readonly path: string;

  private constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
  }

  /** Opens KVM and checks the API version and every capability the VMM needs. */
  static open(path: string = KVM_DEVICE): Kvm {
    const kvm = new Kvm(openKvm(path), path);
    try {
      let version: number;
      try {
        version = sys.ioctlInt(kvm.fd, sys.KVM_GET_API_VERSION, 'KVM_GET_API_VERSION');
      } catch (e: unknown) {
        throw new MatchlockError(ErrorCodes.KVM_UNAVAILABLE, `${path} is not a KVM device (KVM_GET_API_VERSION failed): point to /dev/kvm`, { path }, { cause: e });
      }
      if (version !== sys.KVM_API_VERSION) {
        throw new MatchlockError(ErrorCodes.KVM_API_VERSION,
          `${path} speaks KVM API ${version}, matchlock needs ${sys.KVM_API_VERSION}: use a Linux kernel with the stable KVM API`,
          { version });
      }
      const missing = sys.REQUIRED_CAPS.filter((c) => !kvm.hasCap(c));
      if (missing.length > 0) {
        throw new MatchlockError(ErrorCodes.KVM_CAPABILITY,
          `KVM on this host lacks ${missing.map((c) => `KVM_CAP_${c}`).join(', ')}: use a newer host kernel`, { missing });
      }
      return kvm;
    } catch (e: unknown) {
      kvm.close();
      throw e;
    }
  }

  checkExtension(cap: number): number {
    return sys.ioctlInt(this.fd, sys.KVM_CHECK_EXTENSION, 'KVM_CHECK_EXTENSION', cap);
  }

  hasCap(name: sys.KvmCapName): boolean {
    return this.checkExtension(sys.KVM_CAP[name]) > 0;
  }

  /** The most vCPUs one VM may have here. */
  maxVcpus(): number {
    return this.checkExtension(sys.KVM_CAP.MAX_VCPUS) || this.checkExtension(sys.KVM_CAP.NR_VCPUS) || 4;
  }

  vcpuMmapSize(): number {
    return sys.ioctlInt(this.fd, sys.KVM_GET_VCPU_MMAP_SIZE, 'KVM_GET_VCPU_MMAP_SIZE');
  }

  supportedCpuid(): KvmCpuidEntry[] {
    const buf = sys.encodeCpuid([], sys.MAX_CPUID_ENTRIES);
    sys.ioctlBuf(this.fd, sys.KVM_GET_SUPPORTED_CPUID, 'KVM_GET_SUPPORTED_CPUID', buf);
    return sys.decodeCpuid(buf);
  }

  createVm(): VmFd {
    const fd = sys.ioctlInt(this.fd, sys.KVM_CREATE_VM, 'KVM_CREATE_VM', 0);
    return new VmFd(fd, this.vcpuMmapSize());
  }

  close(): void {
    sys.closeFd(this.fd);
  }
}
