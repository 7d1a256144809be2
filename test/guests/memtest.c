/*
 * ml.memtest: for every type-1 region write an address-derived 64-bit
 * pattern over its first free 4 KiB page (>= 1 MiB, outside this image)
 * and over its last page; all writes happen before any read-back, so
 * aliasing between regions is caught as well.
 */
#include "guest.h"

static u64 pages[MAX_REGIONS][2]; /* 0 = none */

static u64 pattern(u64 addr) { return (addr * 0x9e3779b97f4a7c15ULL) ^ 0x6d6c746573742121ULL; }

static int overlaps_image(u64 p)
{
	u64 s = (u64)_image_start & ~(PAGE - 1);
	u64 e = ((u64)_image_end + PAGE - 1) & ~(PAGE - 1);
	return p < e && p + PAGE > s;
}

static void fill(u64 p)
{
	volatile u64 *w = (volatile u64 *)p;
	for (u64 i = 0; i < PAGE / 8; i++)
		w[i] = pattern(p + i * 8);
}

/* Returns the first bad address, or 0 if the page reads back intact. */
static u64 check(u64 p)
{
	volatile u64 *w = (volatile u64 *)p;
	for (u64 i = 0; i < PAGE / 8; i++)
		if (w[i] != pattern(p + i * 8))
			return p + i * 8;
	return 0;
}

static void region_line(const char *what, u64 a, u64 b)
{
	put_line_start();
	put_str(what);
	put_hex(a);
	put_str(" ");
	put_hex(b);
	put_nl();
}

void memtest_run(void)
{
	u32 ok = 0, fail = 0;

	for (u32 i = 0; i < nr_regions; i++) {
		struct mem_region *r = &regions[i];
		u64 start = r->addr, end = r->addr + r->size, lo, hi;

		pages[i][0] = pages[i][1] = 0;
		if (r->type != 1 || end > mapped_top || end < start)
			continue;
		lo = start < MIB ? MIB : (start + PAGE - 1) & ~(PAGE - 1);
		if (overlaps_image(lo))
			lo = ((u64)_image_end + PAGE - 1) & ~(PAGE - 1);
		hi = (end & ~(PAGE - 1)) - PAGE;
		if (lo + PAGE > end)
			continue;
		if (hi <= lo || overlaps_image(hi))
			hi = lo;
		pages[i][0] = lo;
		pages[i][1] = hi;
		fill(lo);
		if (hi != lo)
			fill(hi);
	}

	for (u32 i = 0; i < nr_regions; i++) {
		struct mem_region *r = &regions[i];
		u64 bad;

		if (r->type != 1)
			continue;
		if (!pages[i][0]) {
			region_line("MEM SKIP ", r->addr, r->addr + r->size);
			continue;
		}
		bad = check(pages[i][0]);
		if (!bad && pages[i][1] != pages[i][0])
			bad = check(pages[i][1]);
		if (bad) {
			put_line_start();
			put_str("MEM FAIL ");
			put_hex(bad);
			put_nl();
			fail++;
		} else {
			region_line("MEM OK ", r->addr, r->addr + r->size);
			ok++;
		}
	}

	put_line_start();
	if (fail || !ok) {
		put_str("MEMTEST FAIL");
	} else {
		put_str("MEMTEST OK ");
		put_dec(ok);
	}
	put_nl();
}

/* ml.touch: writes one byte in every 4 KiB page of every type-1 region (>= 1 MiB, outside this image), so the
 * host must back all of the guest's RAM; then "mltest: TOUCH <pages>". */
void touch_run(void)
{
	u64 pages_touched = 0;
	u64 image_end = ((u64)_image_end + PAGE - 1) & ~(PAGE - 1);

	for (u32 i = 0; i < nr_regions; i++) {
		struct mem_region *r = &regions[i];
		u64 p, end = r->addr + r->size;

		if (r->type != 1 || end > mapped_top || end < r->addr)
			continue;
		p = r->addr < MIB ? MIB : (r->addr + PAGE - 1) & ~(PAGE - 1);
		for (; p + PAGE <= end; p += PAGE) {
			if (overlaps_image(p)) {
				p = image_end - PAGE;
				continue;
			}
			*(volatile u8 *)p = 1;
			pages_touched++;
		}
	}
	put_line_start();
	put_str("TOUCH ");
	put_dec(pages_touched);
	put_nl();
}
