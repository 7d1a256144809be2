/**
 * Errors a user or an operator can hit carry a stable code (`MATCHLOCK_ERR_*`), documented in docs/errors.md.
 * The message is one line: what is wrong, with the path or value involved, and what to do.
 */
export const ErrorCodes = {
  USAGE: 'MATCHLOCK_ERR_USAGE',
  CONFIG: 'MATCHLOCK_ERR_CONFIG',
  KVM_UNAVAILABLE: 'MATCHLOCK_ERR_KVM_UNAVAILABLE',
  KVM_API_VERSION: 'MATCHLOCK_ERR_KVM_API_VERSION',
  KVM_CAPABILITY: 'MATCHLOCK_ERR_KVM_CAPABILITY',
  IOCTL: 'MATCHLOCK_ERR_IOCTL',
  SYSCALL: 'MATCHLOCK_ERR_SYSCALL',
  KERNEL_NOT_FOUND: 'MATCHLOCK_ERR_KERNEL_NOT_FOUND',
  KERNEL_UNREADABLE: 'MATCHLOCK_ERR_KERNEL_UNREADABLE',
  KERNEL_FORMAT: 'MATCHLOCK_ERR_KERNEL_FORMAT',
  KERNEL_TOO_BIG: 'MATCHLOCK_ERR_KERNEL_TOO_BIG',
  KERNEL: 'MATCHLOCK_ERR_KERNEL',
  INITRD: 'MATCHLOCK_ERR_INITRD',
  CMDLINE_TOO_LONG: 'MATCHLOCK_ERR_CMDLINE_TOO_LONG',
  GUEST_MEMORY: 'MATCHLOCK_ERR_GUEST_MEMORY',
  BUS_OVERLAP: 'MATCHLOCK_ERR_BUS_OVERLAP',
  CPU_TEMPLATE: 'MATCHLOCK_ERR_CPU_TEMPLATE',
  VCPU: 'MATCHLOCK_ERR_VCPU',
  VIRTIO_DRIVER: 'MATCHLOCK_ERR_VIRTIO_DRIVER',
  DRIVE: 'MATCHLOCK_ERR_DRIVE',
  NET: 'MATCHLOCK_ERR_NET',
  VSOCK: 'MATCHLOCK_ERR_VSOCK',
  IMAGE: 'MATCHLOCK_ERR_IMAGE',
  API: 'MATCHLOCK_ERR_API',
  API_SOCKET: 'MATCHLOCK_ERR_API_SOCKET',
  CGROUP: 'MATCHLOCK_ERR_CGROUP',
  JAIL: 'MATCHLOCK_ERR_JAIL',
  GUEST: 'MATCHLOCK_ERR_GUEST',
  CACHE: 'MATCHLOCK_ERR_CACHE',
  GITHUB: 'MATCHLOCK_ERR_GITHUB',
  WEBHOOK: 'MATCHLOCK_ERR_WEBHOOK',
  STORE: 'MATCHLOCK_ERR_STORE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class MatchlockError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MatchlockError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

export function isMatchlockError(e: unknown, code?: ErrorCode): e is MatchlockError {
  return e instanceof MatchlockError && (code === undefined || e.code === code);
}

/** A readable message from anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
