/*
 * PVH entry (Xen/QEMU "PHYS32_ENTRY"): 32-bit protected mode, paging off,
 * flat segments, ebx = guest-physical address of struct hvm_start_info.
 * Switch to long mode with a static identity map of the low 1 GiB
 * (2 MiB pages, no loop), then join the common 64-bit path.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign 4
	.long 2f - 1f			/* namesz */
	.long 4f - 3f			/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.quad pvh_start			/* 8 bytes; low 32 bits = entry */
4:	.balign 4

	.text
	.code32
	.globl pvh_start
pvh_start:
	cli
	movl %ebx, %esi
	lgdt gdt_desc			/* 32-bit base form of the same descriptor */
	movl %cr4, %eax
	orl $0x20, %eax			/* CR4.PAE */
	movl %eax, %cr4
	movl $pvh_pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER */
	rdmsr
	orl $0x100, %eax		/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax		/* PG | PE */
	movl %eax, %cr0
	ljmp $0x08, $pvh64

	.code64
pvh64:
	movl %esi, %esi			/* zero-extend hvm_start_info pointer */
#ifdef LINUX_SHIM
	/* test-only image: re-enter through the Linux 64-bit boot protocol */
	movq $linuxshim_stack_top, %rsp
	movq %rsi, %rdi
	call linuxshim			/* never returns */
#endif
	movl $1, %edi			/* kind = BOOT_PVH */
	jmp common64

	.section .data.pvh, "aw"
	.balign 4096
pvh_pml4:
	.quad pvh_pdpt + 0x3
	.fill 511, 8, 0
pvh_pdpt:
	.quad pvh_pd + 0x3
	.fill 511, 8, 0
pvh_pd:
	.set pvh_addr, 0
	.rept 512
	.quad pvh_addr + 0x83		/* P | RW | PS (2 MiB) */
	.set pvh_addr, pvh_addr + 0x200000
	.endr

#ifdef LINUX_SHIM
	.section .bss.shimstack, "aw", @nobits
	.balign 16
	.skip 4096
linuxshim_stack_top:
#endif
