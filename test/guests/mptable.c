/* ml.mptable: find and walk the Intel MultiProcessor Specification tables. */
#include "guest.h"

#define MPF_SIG 0x5f504d5f  /* "_MP_" */
#define PCMP_SIG 0x504d4350 /* "PCMP" */
#define MAX_CPUS 256

static u8 sum(u64 a, u64 n)
{
	u8 s = 0;
	while (n--)
		s = (u8)(s + rd8(a++));
	return s;
}

/* 16-byte aligned "_MP_" in [a, a+len) whose own checksum is good; 0 if none. */
static u64 scan(u64 a, u64 len, u64 *bad_sum)
{
	for (u64 p = a; p + 16 <= a + len; p += 16) {
		if (rd32(p) != MPF_SIG)
			continue;
		u64 n = (u64)rd8(p + 8) * 16;
		if (n >= 16 && sum(p, n) == 0)
			return p;
		*bad_sum = p;
	}
	return 0;
}

static void bad(const char *why)
{
	put_line_start();
	put_str("MPTABLE BAD ");
	put_str(why);
	put_nl();
}

void mptable_run(void)
{
	u64 ebda = (u64)rd16(0x40e) << 4, mpf = 0, bad_sum = 0;
	u64 cfg, end, e;
	u32 cpus = 0, nio = 0, io_id = 0;
	u64 io_addr = 0;
	u8 ids[MAX_CPUS];

	if (ebda >= 0x80000 && ebda < 0xa0000)
		mpf = scan(ebda, 1024, &bad_sum);
	if (!mpf)
		mpf = scan(0x9fc00, 1024, &bad_sum);
	if (!mpf)
		mpf = scan(0xf0000, 0x10000, &bad_sum);
	if (!mpf) {
		if (bad_sum)
			bad("mpf-checksum");
		else
			say("MPTABLE none");
		return;
	}
	if (rd8(mpf + 11) != 0) { /* feature byte 1: a default configuration, no table */
		bad("default-config");
		return;
	}
	cfg = rd32(mpf + 4);
	if (!cfg || cfg >= mapped_top) {
		bad("no-config-table");
		return;
	}
	if (rd32(cfg) != PCMP_SIG) {
		bad("pcmp-signature");
		return;
	}
	if (sum(cfg, rd16(cfg + 4)) != 0) {
		bad("pcmp-checksum");
		return;
	}
	/*
	 * Walk by the base table length, not the entry count at +34: QEMU's
	 * microvm firmware (qboot) leaves the count 0. Linux walks by length too.
	 */
	end = cfg + rd16(cfg + 4);
	for (e = cfg + 44; e < end;) {
		u8 type = rd8(e);
		if (type == 0) { /* processor: id @1, flags @3 (bit 0 = enabled) */
			if ((rd8(e + 3) & 1) && cpus < MAX_CPUS)
				ids[cpus++] = rd8(e + 1);
			e += 20;
		} else if (type <= 4) {
			if (type == 2 && (rd8(e + 3) & 1) && nio++ == 0) { /* I/O APIC */
				io_id = rd8(e + 1);
				io_addr = rd32(e + 4);
			}
			e += 8;
		} else {
			bad("entry-type");
			return;
		}
	}

	put_line_start();
	put_str("MPTABLE cpus=");
	put_dec(cpus);
	put_str(" apic_ids=");
	for (u32 i = 0; i < cpus; i++) {
		if (i)
			put_str(",");
		put_dec(ids[i]);
	}
	put_str(" ioapic=");
	if (nio) {
		put_dec(io_id);
		put_str("@");
		put_hex(io_addr);
	} else {
		put_str("none");
	}
	put_nl();
}
