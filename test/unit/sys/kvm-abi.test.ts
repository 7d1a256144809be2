import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sys from '../../../src/vmm/sys/index.ts';

/** The ABI as linux/kvm.h sees it, from a C program compiled by the machine's gcc. */
function headerAbi(): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-abi-'));
  try {
    const exe = join(dir, 'kvm-layout');
    execFileSync('gcc', ['-O0', '-o', exe, new URL('./kvm-layout.c', import.meta.url).pathname]);
    return JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Record<string, number>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const abi = headerAbi();
const get = (k: string): number => {
  const v = abi[k];
  if (v === undefined) throw new Error(`layout program did not print ${k}`);
  return v;
};

test('ioctl request numbers match linux/kvm.h', (t) => {
  const names = [
    'KVM_GET_API_VERSION', 'KVM_CREATE_VM', 'KVM_GET_MSR_INDEX_LIST', 'KVM_CHECK_EXTENSION', 'KVM_GET_VCPU_MMAP_SIZE',
    'KVM_GET_SUPPORTED_CPUID', 'KVM_CREATE_VCPU', 'KVM_SET_USER_MEMORY_REGION', 'KVM_SET_TSS_ADDR', 'KVM_CREATE_IRQCHIP',
    'KVM_IRQ_LINE', 'KVM_IRQFD', 'KVM_CREATE_PIT2', 'KVM_IOEVENTFD', 'KVM_RUN', 'KVM_GET_REGS', 'KVM_SET_REGS',
    'KVM_GET_SREGS', 'KVM_SET_SREGS', 'KVM_GET_MSRS', 'KVM_SET_MSRS', 'KVM_GET_FPU', 'KVM_SET_FPU', 'KVM_GET_LAPIC',
    'KVM_SET_LAPIC', 'KVM_SET_CPUID2', 'KVM_GET_MP_STATE', 'KVM_SET_TSC_KHZ', 'KVM_GET_TSC_KHZ',
  ] as const;
  for (const n of names) t.is((sys as unknown as Record<string, number>)[n], get(n), n);
});

test('struct sizes match', (t) => {
  for (const [k, v] of Object.entries(sys.SIZEOF)) t.is<number, number>(v, get(`sizeof ${k}`), k);
  t.is(sys.SEGMENT_SIZE, get('sizeof kvm_segment'));
  t.is(sys.DTABLE_SIZE, get('sizeof kvm_dtable'));
  t.is(sys.CPUID_ENTRY_SIZE, get('sizeof kvm_cpuid_entry2'));
  t.is(sys.MSR_ENTRY_SIZE, get('sizeof kvm_msr_entry'));
});

test('field offsets match', (t) => {
  t.is(sys.KVM_REGS_FIELDS.indexOf('rip') * 8, get('offsetof kvm_regs.rip'));
  t.is(sys.KVM_REGS_FIELDS.indexOf('rflags') * 8, get('offsetof kvm_regs.rflags'));
  t.is(sys.KVM_REGS_FIELDS.indexOf('r15') * 8, get('offsetof kvm_regs.r15'));
  t.is(12, get('offsetof kvm_segment.selector'));
  t.is(14, get('offsetof kvm_segment.type'));
  t.is(22, get('offsetof kvm_segment.unusable'));
  t.is(sys.SREGS_DTABLES_OFFSET, get('offsetof kvm_sregs.gdt'));
  t.is(sys.SREGS_DTABLES_OFFSET + sys.DTABLE_SIZE, get('offsetof kvm_sregs.idt'));
  t.is(sys.SREGS_CONTROL_OFFSET, get('offsetof kvm_sregs.cr0'));
  t.is(sys.SREGS_CONTROL_OFFSET + 5 * 8, get('offsetof kvm_sregs.efer'));
  t.is(sys.SREGS_CONTROL_OFFSET + 6 * 8, get('offsetof kvm_sregs.apic_base'));
  t.is(sys.SREGS_BITMAP_OFFSET, get('offsetof kvm_sregs.interrupt_bitmap'));
  for (const [f, off] of Object.entries(sys.FPU_OFFSETS)) t.is<number, number>(off, get(`offsetof kvm_fpu.${f}`), f);
  t.is(12, get('offsetof kvm_cpuid_entry2.eax'));
  t.is(24, get('offsetof kvm_cpuid_entry2.edx'));
  t.is<number, number>(sys.SIZEOF.kvm_cpuid2, get('offsetof kvm_cpuid2.entries'));
  t.is(8, get('offsetof kvm_msr_entry.data'));
  t.is<number, number>(sys.SIZEOF.kvm_msrs, get('offsetof kvm_msrs.entries'));
  t.is(24, get('offsetof kvm_userspace_memory_region.userspace_addr'));
});

test('kvm_run offsets match', (t) => {
  const o = sys.KVM_RUN_OFFSETS;
  const pairs: [number, string][] = [
    [o.immediate_exit, 'immediate_exit'], [o.exit_reason, 'exit_reason'], [o.if_flag, 'if_flag'], [o.cr8, 'cr8'],
    [o.apic_base, 'apic_base'], [o.io_direction, 'io.direction'], [o.io_size, 'io.size'], [o.io_port, 'io.port'],
    [o.io_count, 'io.count'], [o.io_data_offset, 'io.data_offset'], [o.mmio_phys_addr, 'mmio.phys_addr'],
    [o.mmio_data, 'mmio.data'], [o.mmio_len, 'mmio.len'], [o.mmio_is_write, 'mmio.is_write'],
    [o.fail_entry_reason, 'fail_entry.hardware_entry_failure_reason'], [o.fail_entry_cpu, 'fail_entry.cpu'],
    [o.internal_suberror, 'internal.suberror'], [o.internal_ndata, 'internal.ndata'], [o.internal_data, 'internal.data'],
    [o.system_event_type, 'system_event.type'], [o.system_event_ndata, 'system_event.ndata'],
    [o.system_event_data, 'system_event.data'], [o.hw_exit_reason, 'hw.hardware_exit_reason'],
  ];
  for (const [ours, field] of pairs) t.is(ours, get(`offsetof kvm_run.${field}`), field);
});

test('encoders round-trip through the decoders', (t) => {
  const regs = sys.zeroRegs();
  regs.rip = 0x1000000n;
  regs.rsi = 0x7000n;
  regs.rax = 0xffff_ffff_ffff_ffffn;
  t.deepEqual(sys.decodeRegs(sys.encodeRegs(regs)), regs);
  const cpuid = [{ function: 1, index: 0, flags: 0, eax: 1, ebx: 0x80000000, ecx: 3, edx: 4 }];
  t.deepEqual(sys.decodeCpuid(sys.encodeCpuid(cpuid)), cpuid);
  t.is(sys.decodeCpuid(sys.encodeCpuid([], 80)).length, 80);
  const msrs = [{ index: 0x174, data: 0n }, { index: 0x1a0, data: 1n }];
  t.deepEqual(sys.decodeMsrs(sys.encodeMsrs(msrs)), msrs);
  const fpu = { fcw: 0x37f, fsw: 0, ftwx: 0, last_opcode: 0, last_ip: 0n, last_dp: 0n, mxcsr: 0x1f80 };
  t.deepEqual(sys.decodeFpu(sys.encodeFpu(fpu)), fpu);
});

test('irqfd, ioeventfd, epoll and eventfd layouts and flags match the C headers', (t) => {
  const irqfd = new DataView(sys.encodeIrqfd(7, 9, sys.KVM_IRQFD_FLAG_DEASSIGN).buffer);
  t.is(irqfd.getUint32(get('offsetof kvm_irqfd.fd'), true), 7);
  t.is(irqfd.getUint32(get('offsetof kvm_irqfd.gsi'), true), 9);
  t.is(irqfd.getUint32(get('offsetof kvm_irqfd.flags'), true), get('KVM_IRQFD_FLAG_DEASSIGN'));
  const io = new DataView(sys.encodeIoeventfd({ addr: 0xc000_1050, len: 4, fd: 11, datamatch: 2, deassign: true }).buffer);
  t.is(io.getBigUint64(get('offsetof kvm_ioeventfd.datamatch'), true), 2n);
  t.is(io.getBigUint64(get('offsetof kvm_ioeventfd.addr'), true), 0xc000_1050n);
  t.is(io.getUint32(get('offsetof kvm_ioeventfd.len'), true), 4);
  t.is(io.getInt32(get('offsetof kvm_ioeventfd.fd'), true), 11);
  t.is(io.getUint32(get('offsetof kvm_ioeventfd.flags'), true), get('KVM_IOEVENTFD_FLAG_DATAMATCH') | get('KVM_IOEVENTFD_FLAG_DEASSIGN'));
  t.is(sys.EPOLL_EVENT_SIZE, get('sizeof epoll_event'));
  t.is(4, get('offsetof epoll_event.data'));
  for (const k of ['EPOLLIN', 'EPOLLOUT', 'EPOLLERR', 'EPOLLHUP', 'EPOLL_CTL_ADD', 'EPOLL_CTL_DEL', 'EPOLL_CTL_MOD', 'EPOLL_CLOEXEC', 'EFD_NONBLOCK', 'EFD_CLOEXEC'] as const) {
    t.is(sys[k], get(k), k);
  }
});

test('an eventfd signalled twice wakes epoll once with its token and reads back 2', (t) => {
  const e = sys.eventFd();
  const ep = sys.epollCreate();
  try {
    sys.epollAdd(ep, e, sys.EPOLLIN, 42);
    const buf = new Uint8Array(sys.EPOLL_EVENT_SIZE * 4);
    t.deepEqual(sys.epollWait(ep, buf, 0), []);
    sys.signalEventFd(e);
    sys.signalEventFd(e);
    t.deepEqual(sys.epollWait(ep, buf, 1000), [{ token: 42, events: sys.EPOLLIN }]);
    t.is(sys.drainEventFd(e), 2);
    t.is(sys.drainEventFd(e), 0);
  } finally {
    sys.closeFd(e);
    sys.closeFd(ep);
  }
});

test('TAP ioctls, flags and struct ifreq match the C headers', (t) => {
  for (const k of ['TUNSETIFF', 'TUNSETVNETHDRSZ', 'TUNSETOFFLOAD', 'SIOCGIFFLAGS', 'SIOCSIFFLAGS', 'IFF_TAP', 'IFF_NO_PI', 'IFF_VNET_HDR', 'IFF_UP',
    'TUN_F_CSUM', 'TUN_F_TSO4', 'TUN_F_TSO6', 'IFREQ_SIZE', 'IFREQ_FLAGS_OFFSET', 'VNET_HDR_SIZE', 'O_NONBLOCK', 'AF_INET', 'SOCK_DGRAM', 'SOCK_CLOEXEC'] as const) {
    t.is(sys[k], get(k), k);
  }
});
