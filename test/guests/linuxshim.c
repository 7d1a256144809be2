/*
 * TEST-ONLY (build/testguest-linuxshim.elf): lets QEMU exercise the Linux
 * 64-bit boot protocol entry. QEMU enters through PVH; this converts
 * hvm_start_info into a Linux boot_params "zero page" and jumps to the ELF
 * e_entry (_start) the way a VMM would: long mode, low 1 GiB identity
 * mapped, CS=0x08, rsi = zero page, rsp = 0x8ff0.
 */
#include "guest.h"

extern char _start[];

static u8 zero_page[4096] __attribute__((aligned(4096)));
static char shim_cmdline[CMDLINE_MAX];

static void wr32(u8 *p, u32 v) { *(u32_un *)p = v; }
static void wr64(u8 *p, u64 v) { *(u64_un *)p = v; }

__attribute__((noreturn)) void linuxshim(u64 info)
{
	u64 cmd = 0, map = 0, n = 0, i;

	if (rd32(info) == 0x336ec578) {
		cmd = rd64(info + 24);
		if (rd32(info + 4) >= 1) {
			map = rd64(info + 40);
			n = rd32(info + 48);
		}
	}
	for (i = 0; cmd && i < CMDLINE_MAX - 1 && rd8(cmd + i); i++)
		shim_cmdline[i] = (char)rd8(cmd + i);
	shim_cmdline[i] = 0;

	if (n > 128)
		n = 128;
	for (i = 0; i < n; i++) { /* 24-byte PVH entries -> 20-byte e820 entries */
		u8 *e = zero_page + 0x2d0 + i * 20;
		wr64(e, rd64(map + i * 24));
		wr64(e + 8, rd64(map + i * 24 + 8));
		wr32(e + 16, rd32(map + i * 24 + 16));
	}
	zero_page[0x1e8] = (u8)n;                                /* e820_entries */
	zero_page[0x1fe] = 0x55;                                 /* boot_flag */
	zero_page[0x1ff] = 0xaa;
	wr32(zero_page + 0x202, 0x53726448);                     /* "HdrS" */
	wr32(zero_page + 0x228, (u32)(u64)shim_cmdline);         /* cmd_line_ptr */
	wr32(zero_page + 0x0c8, (u32)((u64)shim_cmdline >> 32)); /* ext_cmd_line_ptr */
	wr32(zero_page + 0x238, CMDLINE_MAX - 1);                /* cmdline_size */

	__asm__ volatile("movq $0x8ff0, %%rsp\n\t"
			 "jmp *%1"
			 :
			 : "S"(zero_page), "r"(_start)
			 : "memory");
	__builtin_unreachable();
}
