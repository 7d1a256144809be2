/* Polled 16550 UART on COM1 (0x3f8), 8N1, no interrupts. Ring 3 (IOPL=3). */
#include "guest.h"

#define COM1 0x3f8
#define THR 0 /* transmit holding register */
#define IER 1
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define LSR_THRE 0x20
#define LSR_TEMT 0x40 /* transmitter empty: the last byte has left the UART */
#define SPIN_MAX 1000000 /* don't hang forever on a UART that never says ready */

void serial_init(void)
{
	outb(COM1 + IER, 0x00);  /* no interrupts */
	outb(COM1 + LCR, 0x80);  /* DLAB on */
	outb(COM1 + THR, 0x01);  /* divisor 1 = 115200 baud */
	outb(COM1 + IER, 0x00);
	outb(COM1 + LCR, 0x03);  /* 8N1, DLAB off */
	outb(COM1 + FCR, 0x07);  /* FIFO on, cleared */
	outb(COM1 + MCR, 0x03);  /* DTR | RTS, OUT2 off (no IRQ) */
}

static void put_char(char c)
{
	for (u32 i = 0; i < SPIN_MAX && !(inb(COM1 + LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1 + THR, (u8)c);
}

void put_mem(const char *s, usize n)
{
	while (n--)
		put_char(*s++);
}

void put_str(const char *s)
{
	while (*s)
		put_char(*s++);
}

void put_hex(u64 v)
{
	char buf[18];
	int i = 18;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	put_mem(buf + i, (usize)(18 - i));
}

void put_dec(u64 v)
{
	char buf[20];
	int i = 20;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_mem(buf + i, (usize)(20 - i));
}

/*
 * Wait until every byte written has left the UART. QEMU keeps a byte the host side could not take yet
 * (stdout a full pipe) and retries later; a debug-exit or reset before that would lose the end of the output.
 */
void serial_flush(void)
{
	for (u32 i = 0; i < SPIN_MAX && !(inb(COM1 + LSR) & LSR_TEMT); i++)
		cpu_relax();
}

void put_line_start(void) { put_str("mltest: "); }
void put_nl(void) { put_char('\n'); }

void say(const char *s)
{
	put_line_start();
	put_str(s);
	put_nl();
}
