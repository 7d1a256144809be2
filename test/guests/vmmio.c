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

long vmmio_begin(u64 base)
{
	vm_wr(base, 0x070, 0);
	vm_wr(base, 0x070, 1);
	vm_wr(base, 0x070, 1 | 2);
	vm_wr(base, 0x014, 0);
	u32 low = vm_rd(base, 0x010);
	vm_wr(base, 0x014, 1);
	return (vm_rd(base, 0x010) & 1) ? (long)low : -1;
}

int vmmio_accept(u64 base, u32 low)
{
	vm_wr(base, 0x024, 0);
	vm_wr(base, 0x020, low);
	vm_wr(base, 0x024, 1);
	vm_wr(base, 0x020, 1); /* VERSION_1 */
	vm_wr(base, 0x070, 1 | 2 | 8);
	return (vm_rd(base, 0x070) & 8) != 0;
}

void vq_setup(u64 base, u32 index, struct vq *q)
{
	vm_wr(base, 0x030, index);
	vm_wr(base, 0x038, VQ_SIZE);
	vm_wr(base, 0x080, (u32)(u64)q->desc);
	vm_wr(base, 0x084, (u32)((u64)q->desc >> 32));
	vm_wr(base, 0x090, (u32)(u64)&q->avail);
	vm_wr(base, 0x094, (u32)((u64)&q->avail >> 32));
	vm_wr(base, 0x0a0, (u32)(u64)&q->used);
	vm_wr(base, 0x0a4, (u32)((u64)&q->used >> 32));
	vm_wr(base, 0x044, 1);
}

void vq_post(u64 base, struct vq *q, u16 id, u32 notify)
{
	q->avail.ring[q->avail.idx % VQ_SIZE] = id;
	vm_mb();
	q->avail.idx++;
	vm_mb();
	vm_wr(base, 0x050, notify);
}

u32 vq_reap(struct vq *q)
{
	while (*(volatile u16 *)&q->used.idx != q->last_used) {
		vm_mb();
		q->last_used++;
		q->in_flight--;
	}
	return q->in_flight;
}
