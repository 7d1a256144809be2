/* Finding virtio-mmio devices from the command line (virtio_mmio.device=SIZE@BASE:IRQ). */
#include "guest.h"

u64 vmmio_find(u32 device_id, u64 index)
{
	const char *t;
	usize n, pos = 0;
	u64 seen = 0;

	while (cmdline_next(&pos, &t, &n)) {
		if (!starts_with(t, n, "virtio_mmio.device="))
			continue;
		usize at = 0, colon = n;
		for (usize i = 0; i < n; i++) {
			if (t[i] == '@')
				at = i;
			if (t[i] == ':' && at)
				colon = i;
		}
		u64 base;
		if (!at || !parse_u64(t + at + 1, colon - at - 1, &base))
			continue;
		if (vm_rd(base, 0x000) == 0x74726976 && vm_rd(base, 0x004) == 2 && vm_rd(base, 0x008) == device_id &&
		    seen++ == index)
			return base;
	}
	return 0;
}
