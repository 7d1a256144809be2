/*
 * 64-bit entry (Linux x86_64 boot protocol, ELF e_entry) and the common
 * ring-0 path: own GDT, own page tables (built in setup.c), empty IDT,
 * then iretq to ring 3 with IOPL=3 and IF=0.
 *
 * In:  long mode, paging on with the low 1 GiB identity mapped,
 *      rsi = guest-physical address of struct boot_params.
 */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS   (0x18 | 3)
#define USER_CS   (0x20 | 3)
#define USER_RFLAGS 0x3002 /* IOPL=3, IF=0, reserved bit 1 */

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	xorl %edi, %edi			/* kind = BOOT_LINUX, rsi = boot_params */
	/* fall through */

	.globl common64
common64:				/* edi = kind, rsi = boot info pointer */
	cld
	movq $ring0_stack_top, %rsp
	pushq %rdi
	pushq %rsi
	call ring0_setup		/* builds page tables, returns CR3 */
	popq %rsi
	popq %rdi

	lgdt gdt_desc
	lidt idt_desc			/* limit 0: any exception triple-faults */
	movl $KERNEL_DS, %ecx
	movl %ecx, %ds
	movl %ecx, %es
	movl %ecx, %ss
	xorl %ecx, %ecx
	movl %ecx, %fs
	movl %ecx, %gs
	pushq $KERNEL_CS
	pushq $1f
	lretq
1:	movq %rax, %cr3

	pushq $USER_DS			/* SS */
	pushq $user_stack_top		/* RSP */
	pushq $USER_RFLAGS		/* RFLAGS */
	pushq $USER_CS			/* CS */
	pushq $user_start		/* RIP */
	iretq

/* Ring 3 from here on. */
user_start:
	movl $USER_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	call user_main			/* (kind, info); never returns */
2:	pause
	jmp 2b

	.section .rodata
	.balign 16
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00af9a000000ffff	/* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff	/* 0x10 kernel data */
	.quad 0x00cff2000000ffff	/* 0x18 user data (DPL 3) */
	.quad 0x00affa000000ffff	/* 0x20 user code, 64-bit (DPL 3) */
gdt_end:
	.balign 8
	.globl gdt_desc
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 8
idt_desc:
	.word 0
	.quad 0

	.section .bss.stack, "aw", @nobits
	.balign 16
ring0_stack:
	.skip 4096
ring0_stack_top:
	.balign 16
user_stack:
	.skip 32768
user_stack_top:
