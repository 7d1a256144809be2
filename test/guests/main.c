/* Ring-3 payload: run the ml.* instructions found on the kernel command line. */
#include "guest.h"

enum exit_how { EXIT_RESET, EXIT_TRIPLE, EXIT_HANG, EXIT_DEBUG };

static void unknown(const char *t, usize n)
{
	put_line_start();
	put_str("UNKNOWN ");
	put_mem(t, n);
	put_nl();
}

__attribute__((noreturn)) void user_main(u32 kind, u64 info)
{
	enum exit_how how = EXIT_RESET;
	u32 debug_code = 0;
	const char *t;
	usize n, pos = 0;
	u64 v;

	serial_init();
	cmdline_load(kind, info);
	e820_load(kind, info);

	say(kind == BOOT_PVH ? "BOOT pvh" : "BOOT linux");
	put_line_start();
	put_str("CMDLINE ");
	put_mem(cmdline, cmdline_len);
	put_nl();

	while (cmdline_next(&pos, &t, &n)) {
		if (!starts_with(t, n, "ml."))
			continue;
		if (starts_with(t, n, "ml.say=")) {
			put_line_start();
			put_str("SAY ");
			put_mem(t + 7, n - 7);
			put_nl();
		} else if (str_eq(t, n, "ml.e820")) {
			e820_print();
		} else if (str_eq(t, n, "ml.memtest")) {
			memtest_run();
		} else if (str_eq(t, n, "ml.touch")) {
			touch_run();
		} else if (str_eq(t, n, "ml.mptable")) {
			mptable_run();
		} else if (starts_with(t, n, "ml.pio=") && parse_u64(t + 7, n - 7, &v)) {
			pio_run(v);
			put_line_start();
			put_str("PIO ");
			put_dec(v);
			put_str(" done");
			put_nl();
		} else if (starts_with(t, n, "ml.kbd=") && parse_u64(t + 7, n - 7, &v)) {
			kbd_run(v);
		} else if (starts_with(t, n, "ml.ticks=") && parse_u64(t + 9, n - 9, &v)) {
			ticks_run(v);
		} else if (starts_with(t, n, "ml.vblk.")) {
			vblk_command(t + 8, n - 8);
		} else if (starts_with(t, n, "ml.vnet.")) {
			vnet_command(t + 8, n - 8);
		} else if (starts_with(t, n, "ml.vsock.")) {
			vsock_command(t + 9, n - 9);
		} else if (str_eq(t, n, "ml.exit=reset")) {
			how = EXIT_RESET;
		} else if (str_eq(t, n, "ml.exit=triple")) {
			how = EXIT_TRIPLE;
		} else if (str_eq(t, n, "ml.exit=hang")) {
			how = EXIT_HANG;
		} else if (starts_with(t, n, "ml.exit=debugexit=") &&
			   parse_u64(t + 18, n - 18, &v) && v <= 0xffffffffULL) {
			how = EXIT_DEBUG;
			debug_code = (u32)v;
		} else {
			unknown(t, n);
		}
	}

	switch (how) {
	case EXIT_TRIPLE:
		say("DONE");
		say("EXIT triple");
		exit_triple();
	case EXIT_HANG:
		say("DONE");
		say("EXIT hang");
		exit_hang();
	case EXIT_DEBUG:
		say("DONE");
		put_line_start();
		put_str("EXIT debugexit=");
		put_dec(debug_code);
		put_nl();
		exit_debug(debug_code);
	default:
		say("DONE");
		say("EXIT reset");
		exit_reset();
	}
}
