/*
 * Commands that watch what the host does to the VM from outside:
 *   ml.kbd=<N>    reads N bytes from the i8042 keyboard (SendCtrlAltDel), polling its status port
 *   ml.ticks=<N>  prints N numbered lines (0: for ever), a little apart, so a pause shows as a gap
 */
#include "guest.h"

#define I8042_DATA 0x60
#define I8042_STATUS 0x64
#define I8042_OUT_FULL 0x01
#define KBD_MAX 32
#define TICK_SPIN 200000

void kbd_run(u64 n)
{
	u8 got[KBD_MAX];
	u64 i;

	if (n > KBD_MAX)
		n = KBD_MAX;
	put_line_start();
	put_str("KBD WAIT ");
	put_dec(n);
	put_nl();
	for (i = 0; i < n; i++) {
		while (!(inb(I8042_STATUS) & I8042_OUT_FULL))
			cpu_relax();
		got[i] = inb(I8042_DATA);
	}
	put_line_start();
	put_str("KBD");
	for (i = 0; i < n; i++) {
		put_str(" ");
		put_mem(&"0123456789abcdef"[got[i] >> 4], 1);
		put_mem(&"0123456789abcdef"[got[i] & 15], 1);
	}
	put_nl();
}

void ticks_run(u64 n)
{
	u64 i, spin;

	for (i = 0; n == 0 || i < n; i++) {
		put_line_start();
		put_str("TICK ");
		put_dec(i);
		put_nl();
		for (spin = 0; spin < TICK_SPIN; spin++)
			cpu_relax();
	}
}
