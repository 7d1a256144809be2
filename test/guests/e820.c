/* Memory map: fetch from either boot protocol into one table, print it. */
#include "guest.h"

struct mem_region regions[MAX_REGIONS];
u32 nr_regions;

void e820_load(u32 kind, u64 info)
{
	u64 base, stride, n;

	nr_regions = 0;
	if (kind == BOOT_LINUX) {
		n = rd8(info + 0x1e8);   /* e820_entries */
		base = info + 0x2d0;     /* e820_table: {u64 addr, u64 size, u32 type} */
		stride = 20;
	} else {
		if (rd32(info) != 0x336ec578 || rd32(info + 4) < 1)
			return;
		n = rd32(info + 48);     /* memmap_entries */
		base = rd64(info + 40);  /* memmap_paddr: {u64 addr, u64 size, u32 type, u32 rsvd} */
		stride = 24;
	}
	if (n > MAX_REGIONS)
		n = MAX_REGIONS;
	for (u32 i = 0; i < n; i++) {
		u64 e = base + i * stride;
		regions[i].addr = rd64(e);
		regions[i].size = rd64(e + 8);
		regions[i].type = rd32(e + 16);
	}
	nr_regions = (u32)n;
}

void e820_print(void)
{
	u64 ram = 0;

	for (u32 i = 0; i < nr_regions; i++) {
		put_line_start();
		put_str("E820 ");
		put_hex(regions[i].addr);
		put_str(" ");
		put_hex(regions[i].size);
		put_str(" ");
		put_dec(regions[i].type);
		put_nl();
		if (regions[i].type == 1)
			ram += regions[i].size;
	}
	put_line_start();
	put_str("RAM ");
	put_dec(ram);
	put_nl();
}
