/* Ways out: i8042 reset, triple fault, hang, QEMU isa-debug-exit. */
#include "guest.h"

void exit_reset(void)
{
	serial_flush();
	for (u32 i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
		cpu_relax();
	outb(0x64, 0xfe); /* i8042: pulse the CPU reset line */
	for (;;)
		cpu_relax();
}

void exit_triple(void)
{
	serial_flush();
	/* #UD in ring 3 with an empty IDT -> #GP -> #DF -> triple fault */
	__asm__ volatile("ud2");
	for (;;)
		cpu_relax();
}

void exit_hang(void)
{
	for (;;)
		cpu_relax();
}

void exit_debug(u32 code)
{
	serial_flush();
	outl(0xf4, code); /* QEMU isa-debug-exit: process exits with (code << 1) | 1 */
	for (;;)
		cpu_relax();
}
