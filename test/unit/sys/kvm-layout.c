/* Prints the KVM ABI as the C headers see it, for kvm-abi.test.ts to compare with our TypeScript layouts. */
#include <stddef.h>
#include <stdio.h>
#include <linux/kvm.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <fcntl.h>

#define NUM(name, value) printf("%s\"%s\":%lu", first ? "" : ",", name, (unsigned long)(value)), first = 0
#define IOCTL(x) NUM(#x, x)
#define SIZE(t) NUM("sizeof " #t, sizeof(struct t))
#define OFF(t, f) NUM("offsetof " #t "." #f, offsetof(struct t, f))

int main(void) {
  int first = 1;
  printf("{");
  IOCTL(KVM_GET_API_VERSION); IOCTL(KVM_CREATE_VM); IOCTL(KVM_GET_MSR_INDEX_LIST); IOCTL(KVM_CHECK_EXTENSION);
  IOCTL(KVM_GET_VCPU_MMAP_SIZE); IOCTL(KVM_GET_SUPPORTED_CPUID); IOCTL(KVM_CREATE_VCPU);
  IOCTL(KVM_SET_USER_MEMORY_REGION); IOCTL(KVM_SET_TSS_ADDR); IOCTL(KVM_CREATE_IRQCHIP); IOCTL(KVM_IRQ_LINE);
  IOCTL(KVM_IRQFD); IOCTL(KVM_CREATE_PIT2); IOCTL(KVM_IOEVENTFD); IOCTL(KVM_RUN); IOCTL(KVM_GET_REGS);
  IOCTL(KVM_SET_REGS); IOCTL(KVM_GET_SREGS); IOCTL(KVM_SET_SREGS); IOCTL(KVM_GET_MSRS); IOCTL(KVM_SET_MSRS);
  IOCTL(KVM_GET_FPU); IOCTL(KVM_SET_FPU); IOCTL(KVM_GET_LAPIC); IOCTL(KVM_SET_LAPIC); IOCTL(KVM_SET_CPUID2);
  IOCTL(KVM_GET_MP_STATE); IOCTL(KVM_SET_TSC_KHZ); IOCTL(KVM_GET_TSC_KHZ);
  SIZE(kvm_regs); SIZE(kvm_sregs); SIZE(kvm_fpu); SIZE(kvm_segment); SIZE(kvm_dtable); SIZE(kvm_cpuid2);
  SIZE(kvm_cpuid_entry2); SIZE(kvm_msrs); SIZE(kvm_msr_entry); SIZE(kvm_userspace_memory_region);
  SIZE(kvm_pit_config); SIZE(kvm_irq_level); SIZE(kvm_lapic_state); SIZE(kvm_msr_list);
  SIZE(kvm_mp_state); SIZE(kvm_irqfd); SIZE(kvm_ioeventfd);
  OFF(kvm_regs, rip); OFF(kvm_regs, rflags); OFF(kvm_regs, r15);
  OFF(kvm_segment, selector); OFF(kvm_segment, type); OFF(kvm_segment, unusable);
  OFF(kvm_sregs, gdt); OFF(kvm_sregs, idt); OFF(kvm_sregs, cr0); OFF(kvm_sregs, efer); OFF(kvm_sregs, apic_base);
  OFF(kvm_sregs, interrupt_bitmap);
  OFF(kvm_fpu, fcw); OFF(kvm_fpu, fsw); OFF(kvm_fpu, ftwx); OFF(kvm_fpu, last_opcode); OFF(kvm_fpu, last_ip);
  OFF(kvm_fpu, last_dp); OFF(kvm_fpu, xmm); OFF(kvm_fpu, mxcsr);
  OFF(kvm_cpuid_entry2, eax); OFF(kvm_cpuid_entry2, edx); OFF(kvm_cpuid2, entries);
  OFF(kvm_msr_entry, data); OFF(kvm_msrs, entries);
  OFF(kvm_userspace_memory_region, userspace_addr);
  OFF(kvm_run, immediate_exit); OFF(kvm_run, exit_reason); OFF(kvm_run, if_flag); OFF(kvm_run, cr8);
  OFF(kvm_run, apic_base); OFF(kvm_run, io.direction); OFF(kvm_run, io.size); OFF(kvm_run, io.port);
  OFF(kvm_run, io.count); OFF(kvm_run, io.data_offset); OFF(kvm_run, mmio.phys_addr); OFF(kvm_run, mmio.data);
  OFF(kvm_run, mmio.len); OFF(kvm_run, mmio.is_write); OFF(kvm_run, fail_entry.hardware_entry_failure_reason);
  OFF(kvm_run, fail_entry.cpu); OFF(kvm_run, internal.suberror); OFF(kvm_run, internal.ndata);
  OFF(kvm_run, internal.data); OFF(kvm_run, system_event.type); OFF(kvm_run, system_event.ndata);
  OFF(kvm_run, system_event.data); OFF(kvm_run, hw.hardware_exit_reason);
  OFF(kvm_irqfd, fd); OFF(kvm_irqfd, gsi); OFF(kvm_irqfd, flags);
  OFF(kvm_ioeventfd, datamatch); OFF(kvm_ioeventfd, addr); OFF(kvm_ioeventfd, len); OFF(kvm_ioeventfd, fd);
  OFF(kvm_ioeventfd, flags);
  NUM("KVM_IOEVENTFD_FLAG_DATAMATCH", KVM_IOEVENTFD_FLAG_DATAMATCH); NUM("KVM_IOEVENTFD_FLAG_DEASSIGN", KVM_IOEVENTFD_FLAG_DEASSIGN);
  NUM("KVM_IRQFD_FLAG_DEASSIGN", KVM_IRQFD_FLAG_DEASSIGN);
  SIZE(epoll_event); OFF(epoll_event, data);
  NUM("EPOLLIN", EPOLLIN); NUM("EPOLLOUT", EPOLLOUT); NUM("EPOLLERR", EPOLLERR); NUM("EPOLLHUP", EPOLLHUP);
  NUM("EPOLL_CTL_ADD", EPOLL_CTL_ADD); NUM("EPOLL_CTL_DEL", EPOLL_CTL_DEL); NUM("EPOLL_CTL_MOD", EPOLL_CTL_MOD);
  NUM("EPOLL_CLOEXEC", EPOLL_CLOEXEC); NUM("EFD_NONBLOCK", EFD_NONBLOCK); NUM("EFD_CLOEXEC", EFD_CLOEXEC);
  IOCTL(TUNSETIFF); IOCTL(TUNSETVNETHDRSZ); IOCTL(TUNSETOFFLOAD); IOCTL(SIOCGIFFLAGS); IOCTL(SIOCSIFFLAGS);
  NUM("IFF_TAP", IFF_TAP); NUM("IFF_NO_PI", IFF_NO_PI); NUM("IFF_VNET_HDR", IFF_VNET_HDR); NUM("IFF_UP", IFF_UP);
  NUM("TUN_F_CSUM", TUN_F_CSUM); NUM("TUN_F_TSO4", TUN_F_TSO4); NUM("TUN_F_TSO6", TUN_F_TSO6);
  NUM("IFREQ_SIZE", sizeof(struct ifreq)); NUM("IFREQ_FLAGS_OFFSET", offsetof(struct ifreq, ifr_flags));
  NUM("VNET_HDR_SIZE", sizeof(struct virtio_net_hdr_v1)); NUM("O_NONBLOCK", O_NONBLOCK); NUM("AF_INET", AF_INET);
  NUM("SOCK_DGRAM", SOCK_DGRAM); NUM("SOCK_CLOEXEC", SOCK_CLOEXEC);
  printf("}\n");
  return 0;
}
