/*
 * Ring-0 setup: the only C code that runs in ring 0. Keep it short: it is
 * emulated instruction by instruction on the PVM target.
 *
 * Finds the top of the memory map, then builds identity page tables with
 * U/S=1 at every level covering [0, max(4 GiB, top)): 1 GiB pages when
 * CPUID says they exist, else 2 MiB pages (only up to the top, rounded up
 * to 16 MiB, plus all of 0xC0000000-0xFFFFFFFF for the 32-bit MMIO gap).
 * The tables live in .bss (zero-filled by the loader / fresh guest RAM).
 */
#include "guest.h"

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_US 0x4ULL
#define PTE_PS 0x80ULL
#define TABLE (PTE_P | PTE_RW | PTE_US)
#define LEAF (PTE_P | PTE_RW | PTE_US | PTE_PS)

#define MAX_GIB_1G 512 /* one PDPT */
#define MAX_GIB_2M 64  /* 64 page directories in .bss */

static u64 pml4[512] __attribute__((aligned(4096), section(".bss.pt")));
static u64 pdpt[512] __attribute__((aligned(4096), section(".bss.pt")));
static u64 pd[MAX_GIB_2M][512] __attribute__((aligned(4096), section(".bss.pt")));

u64 mapped_top;

static int has_1g_pages(void)
{
	u32 a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
	if (a < 0x80000001u)
		return 0;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0));
	return (d >> 26) & 1;
}

/* Highest end address of any memory-map entry. */
static u64 memmap_top(u32 kind, u64 info)
{
	u64 top = 0, base, stride, n;

	if (kind == BOOT_LINUX) {
		n = rd8(info + 0x1e8);
		base = info + 0x2d0;
		stride = 20;
	} else {
		if (rd32(info) != 0x336ec578 || rd32(info + 4) < 1)
			return 0;
		n = rd32(info + 48);
		base = rd64(info + 40);
		stride = 24;
	}
	if (n > MAX_REGIONS)
		n = MAX_REGIONS;
	for (u64 e = base; n; n--, e += stride) {
		u64 end = rd64(e) + rd64(e + 8);
		if (end > top)
			top = end;
	}
	return top;
}

u64 ring0_setup(u32 kind, u64 info)
{
	u64 top = memmap_top(kind, info);
	u64 gib = (top + GIB - 1) >> 30, i;

	if (gib < 4)
		gib = 4;
	if (has_1g_pages()) {
		if (gib > MAX_GIB_1G)
			gib = MAX_GIB_1G;
		for (i = 0; i < gib; i++)
			pdpt[i] = (i << 30) | LEAF;
	} else {
		if (gib > MAX_GIB_2M)
			gib = MAX_GIB_2M;
		for (i = 0; i < gib; i++) {
			u64 *p = pd[i], *end = p + 512;
			u64 base = i << 30, v = base | LEAF;
			pdpt[i] = (u64)pd[i] | TABLE;
			/* RAM: only up to the top (8-entry steps); slot 3 (MMIO gap): all */
			if (i != 3 && top <= base)
				end = p;
			else if (i != 3 && top - base < GIB)
				end = p + (((top - base + 16 * MIB - 1) >> 24) << 3);
			for (; p < end; p += 8, v += 16 * MIB) {
				p[0] = v;
				p[1] = v + 2 * MIB;
				p[2] = v + 4 * MIB;
				p[3] = v + 6 * MIB;
				p[4] = v + 8 * MIB;
				p[5] = v + 10 * MIB;
				p[6] = v + 12 * MIB;
				p[7] = v + 14 * MIB;
			}
		}
	}
	pml4[0] = (u64)pdpt | TABLE;
	mapped_top = gib << 30;
	return (u64)pml4;
}
