/*
 * ml.vblk.*: a ring-3 virtio-blk driver for the first virtio-mmio block
 * device announced on the command line (virtio_mmio.device=SIZE@BASE:IRQ,
 * as matchlock and QEMU microvm both write it), modern (version 2)
 * transport, one split queue of 16, polled (no interrupts). Commands, each
 * printing one "VBLK ..." line:
 *
 *   ml.vblk.info             VBLK INFO sectors <n> ro <0|1>
 *   ml.vblk.id               VBLK ID <serial>
 *   ml.vblk.write=S:N:SEED   writes N sectors from S with SEED's pattern;
 *                            VBLK WRITE S N status <s>
 *   ml.vblk.verify=S:N:SEED  reads them back; VBLK VERIFY S N ok | bad <sector>
 *   ml.vblk.sum=S:N          VBLK SUM S N <FNV-1a 64 of the bytes, hex>
 *   ml.vblk.flush            VBLK FLUSH status <s>
 *   ml.vblk.rd=S:N / wr=S:N  reads / writes N sectors from S in 1 MiB
 *                            requests, without touching the data (benchmarks);
 *                            VBLK RD|WR S N status <s>
 *   ml.vblk.randrd=N:SEED    N reads of 4 KiB at random 4 KiB-aligned places;
 *                            VBLK RANDRD N status <s>
 *   ml.vblk.dev=N            use the N-th announced block device (from 0)
 *   ml.vblk.hostile=KIND     breaks a rule (loop, outside, overflow, availjump,
 *                            usedmmio, notify, rowrite) and reports
 *                            VBLK HOSTILE KIND <what> <value hex>
 *
 * Failures print "VBLK ERROR <why>". Status 0 is OK, 1 IOERR, 2 UNSUPP.
 */
#include "guest.h"

#define QSZ 16
#define CHUNK (1024 * 1024)
#define SECTOR 512

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8

static struct vdesc descs[QSZ] __attribute__((aligned(16)));
static struct {
	u16 flags, idx, ring[QSZ], used_event;
} avail __attribute__((aligned(4)));
static struct {
	u16 flags, idx;
	struct {
		u32 id, len;
	} ring[QSZ];
	u16 avail_event;
} used __attribute__((aligned(4)));
static u8 header[16] __attribute__((aligned(16)));
static volatile u8 status;
static u8 buf[CHUNK] __attribute__((aligned(4096)));
static int ready; /* 0 untried, 1 ready, -1 failed */
static u64 capacity;
static int read_only;
static u16 last_used;
static u64 vbase;
static u64 dev_index; /* which announced block device: ml.vblk.dev=N */

static inline u32 mr(u32 off) { return *(volatile u32 *)(vbase + off); }
static inline void mw(u32 off, u32 v) { *(volatile u32 *)(vbase + off) = v; }
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static void error(const char *why)
{
	put_line_start();
	put_str("VBLK ERROR ");
	put_str(why);
	put_nl();
}

static void set_addr(u32 lo, u64 a)
{
	mw(lo, (u32)a);
	mw(lo + 4, (u32)(a >> 32));
}

/* Resets the device and sets it up with queue 0's used ring at used_addr. */
static int vblk_setup(u64 used_addr)
{
	memset(descs, 0, sizeof(descs));
	memset(&avail, 0, sizeof(avail));
	memset(&used, 0, sizeof(used));
	last_used = 0;
	ready = -1;
	vbase = vmmio_find(2, dev_index);
	if (!vbase) {
		error("no modern virtio-blk device announced on the command line");
		return ready;
	}
	long features = vmmio_begin(vbase);
	if (features < 0) {
		error("device does not offer VERSION_1");
		return ready;
	}
	read_only = (int)((features >> 5) & 1);
	if (!vmmio_accept(vbase, (u32)read_only << 5)) {
		error("FEATURES_OK refused");
		return ready;
	}
	mw(0x030, 0);
	if (mr(0x034) < QSZ || mr(0x044) != 0) {
		error("queue 0 unusable");
		return ready;
	}
	mw(0x038, QSZ);
	set_addr(0x080, (u64)descs);
	set_addr(0x090, (u64)&avail);
	set_addr(0x0a0, used_addr);
	mw(0x044, 1);
	mw(0x070, 1 | 2 | 8 | 4);
	capacity = rd64(vbase + 0x100);
	ready = 1;
	return ready;
}

static int vblk_init(void)
{
	return ready ? ready : vblk_setup((u64)&used);
}

/* One request: header, optional data (device-writable for IN and GET_ID), status. */
static int request(u32 type, u64 sector, void *data, u32 len, int device_writes)
{
	u32 n = 0;
	u64 spins = 0;

	*(u32 *)header = type;
	*(u32 *)(header + 4) = 0;
	*(u64 *)(header + 8) = sector;
	descs[n] = (struct vdesc){ (u64)header, 16, 1, (u16)(n + 1) };
	n++;
	if (len) {
		descs[n] = (struct vdesc){ (u64)data, len, (u16)(1 | (device_writes ? 2 : 0)), (u16)(n + 1) };
		n++;
	}
	descs[n] = (struct vdesc){ (u64)&status, 1, 2, 0 };
	status = 0xff;
	avail.ring[avail.idx % QSZ] = 0;
	mb();
	avail.idx++;
	mb();
	mw(0x050, 0);
	while (*(volatile u16 *)&used.idx == last_used) {
		cpu_relax();
		if (++spins > (1ULL << 34)) {
			error("timeout waiting for the used ring");
			return -1;
		}
	}
	mb();
	last_used++;
	return status;
}

/* Publishes the chain at descriptor 0 and waits (bounded) for it to be used; returns the used length or -1. */
static long publish_and_wait(void)
{
	avail.ring[avail.idx % QSZ] = 0;
	mb();
	avail.idx++;
	mb();
	mw(0x050, 0);
	for (u64 spins = 0; *(volatile u16 *)&used.idx == last_used; spins++) {
		cpu_relax();
		if (spins > (1ULL << 26))
			return -1;
	}
	mb();
	return (long)used.ring[last_used++ % QSZ].len;
}

/* Waits (bounded) for the device to report NEEDS_RESET; returns the status register. */
static u32 wait_needs_reset(void)
{
	for (u64 spins = 0; !(mr(0x070) & 0x40) && spins < (1ULL << 26); spins++)
		cpu_relax();
	return mr(0x070);
}

static void hostile_result(const char *kind, const char *what, u64 v)
{
	put_line_start();
	put_str("VBLK HOSTILE ");
	put_str(kind);
	put_str(" ");
	put_str(what);
	put_str(" ");
	put_hex(v);
	put_nl();
}

/* ml.vblk.hostile=KIND: breaks one rule of the virtio spec, reports what the device did, then forgets the device
 * so that the next command resets and sets it up again. */
static void cmd_hostile(const char *t, usize n)
{
	static char kind[16];
	usize k = n < sizeof(kind) - 1 ? n : sizeof(kind) - 1;
	memcpy(kind, t, k);
	kind[k] = 0;
	*(u32 *)header = T_IN;
	*(u64 *)(header + 8) = 0;
	status = 0xee;
	if (str_eq(t, n, "loop")) {
		descs[0] = (struct vdesc){ (u64)header, 16, 1, 1 };
		descs[1] = (struct vdesc){ (u64)buf, 512, 1 | 2, 0 };
		hostile_result(kind, "used-len", (u64)publish_and_wait());
	} else if (str_eq(t, n, "outside") || str_eq(t, n, "overflow")) {
		u64 addr = str_eq(t, n, "outside") ? 0xc0000000ULL : 0xfffffffffffff000ULL;
		descs[0] = (struct vdesc){ (u64)header, 16, 1, 1 };
		descs[1] = (struct vdesc){ addr, 0x2000, 1 | 2, 2 };
		descs[2] = (struct vdesc){ (u64)&status, 1, 2, 0 };
		long len = publish_and_wait();
		hostile_result(kind, "used-len", (u64)len);
		hostile_result(kind, "status-byte", status);
	} else if (str_eq(t, n, "availjump")) {
		avail.idx += 40;
		mb();
		mw(0x050, 0);
		hostile_result(kind, "device-status", wait_needs_reset());
	} else if (str_eq(t, n, "usedmmio")) {
		vblk_setup(0xc0000000ULL);
		hostile_result(kind, "device-status", wait_needs_reset());
	} else if (str_eq(t, n, "notify")) {
		mw(0x050, 7);
		mw(0x050, 0xffffffff);
		hostile_result(kind, "device-status", mr(0x070));
	} else if (str_eq(t, n, "rowrite")) {
		mw(0x000, 0);
		mw(0x008, 0);
		mw(0x034, 0);
		hostile_result(kind, "magic-id-nummax", ((u64)mr(0x000) << 32) | (mr(0x008) << 16) | mr(0x034));
	} else {
		error("unknown hostile kind");
	}
	ready = 0;
}

static u64 pattern(u64 seed, u64 byte)
{
	u64 z = seed * 0x9e3779b97f4a7c15ULL + byte;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(u64 seed, u64 first_sector, u32 bytes)
{
	u64 *w = (u64 *)buf;
	u64 base = first_sector * SECTOR;
	for (u32 i = 0; i < bytes / 8; i++)
		w[i] = pattern(seed, base + 8ULL * i);
}

/* Parses "A:B" or "A:B:C" into v[0..count). */

static void line3(const char *what, u64 s, u64 n)
{
	put_line_start();
	put_str("VBLK ");
	put_str(what);
	put_str(" ");
	put_dec(s);
	put_str(" ");
	put_dec(n);
}

static void cmd_transfer(const char *t, usize n, int verify)
{
	u64 v[3];
	int st = 0;
	if (!parse_u64_list(t, n, v, 3)) {
		error("bad S:N:SEED");
		return;
	}
	for (u64 done = 0; done < v[1];) {
		u64 count = v[1] - done;
		if (count > CHUNK / SECTOR)
			count = CHUNK / SECTOR;
		if (verify) {
			st = request(T_IN, v[0] + done, buf, (u32)(count * SECTOR), 1);
			if (st != 0)
				break;
			u64 *w = (u64 *)buf;
			u64 base = (v[0] + done) * SECTOR;
			for (u32 i = 0; i < count * SECTOR / 8; i++) {
				if (w[i] != pattern(v[2], base + 8ULL * i)) {
					line3("VERIFY", v[0], v[1]);
					put_str(" bad ");
					put_dec(v[0] + done + i * 8 / SECTOR);
					put_nl();
					return;
				}
			}
		} else {
			fill(v[2], v[0] + done, (u32)(count * SECTOR));
			st = request(T_OUT, v[0] + done, buf, (u32)(count * SECTOR), 0);
			if (st != 0)
				break;
		}
		done += count;
	}
	line3(verify ? "VERIFY" : "WRITE", v[0], v[1]);
	if (verify && st == 0) {
		put_str(" ok");
	} else {
		put_str(" status ");
		put_dec((u64)(st & 0xff));
	}
	put_nl();
}

static void cmd_sum(const char *t, usize n)
{
	u64 v[2];
	u64 h = 0xcbf29ce484222325ULL;
	if (!parse_u64_list(t, n, v, 2)) {
		error("bad S:N");
		return;
	}
	for (u64 done = 0; done < v[1];) {
		u64 count = v[1] - done;
		if (count > CHUNK / SECTOR)
			count = CHUNK / SECTOR;
		int st = request(T_IN, v[0] + done, buf, (u32)(count * SECTOR), 1);
		if (st != 0) {
			line3("SUM", v[0], v[1]);
			put_str(" status ");
			put_dec((u64)(st & 0xff));
			put_nl();
			return;
		}
		for (u32 i = 0; i < count * SECTOR; i++)
			h = (h ^ buf[i]) * 0x100000001b3ULL;
		done += count;
	}
	line3("SUM", v[0], v[1]);
	put_str(" ");
	put_hex(h);
	put_nl();
}

/* Sequential transfer of N sectors from S in CHUNK requests, data untouched: the device's cost alone. */
static void cmd_raw(const char *t, usize n, int write)
{
	u64 v[2];
	int st = 0;
	if (!parse_u64_list(t, n, v, 2)) {
		error("bad S:N");
		return;
	}
	for (u64 done = 0; done < v[1] && st == 0;) {
		u64 count = v[1] - done;
		if (count > CHUNK / SECTOR)
			count = CHUNK / SECTOR;
		st = request(write ? T_OUT : T_IN, v[0] + done, buf, (u32)(count * SECTOR), !write);
		done += count;
	}
	line3(write ? "WR" : "RD", v[0], v[1]);
	put_str(" status ");
	put_dec((u64)(st & 0xff));
	put_nl();
}

static void cmd_randrd(const char *t, usize n)
{
	u64 v[2];
	int st = 0;
	if (!parse_u64_list(t, n, v, 2)) {
		error("bad N:SEED");
		return;
	}
	u64 blocks = capacity / 8, x = v[1] | 1;
	for (u64 i = 0; i < v[0] && st == 0 && blocks; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		st = request(T_IN, (x % blocks) * 8, buf, 4096, 1);
	}
	put_line_start();
	put_str("VBLK RANDRD ");
	put_dec(v[0]);
	put_str(" status ");
	put_dec((u64)(st & 0xff));
	put_nl();
}

void vblk_command(const char *t, usize n)
{
	if (starts_with(t, n, "dev=")) {
		if (!parse_u64(t + 4, n - 4, &dev_index))
			error("bad dev=N");
		ready = 0;
		return;
	}
	if (vblk_init() != 1)
		return;
	if (starts_with(t, n, "hostile=")) {
		cmd_hostile(t + 8, n - 8);
		return;
	}
	if (str_eq(t, n, "info")) {
		put_line_start();
		put_str("VBLK INFO sectors ");
		put_dec(capacity);
		put_str(" ro ");
		put_dec((u64)read_only);
		put_nl();
	} else if (str_eq(t, n, "id")) {
		memset(buf, 0, 21);
		int st = request(T_GET_ID, 0, buf, 20, 1);
		put_line_start();
		put_str("VBLK ID ");
		if (st == 0)
			put_mem((const char *)buf, strlen((const char *)buf));
		else
			put_str("<failed>");
		put_nl();
	} else if (starts_with(t, n, "write=")) {
		cmd_transfer(t + 6, n - 6, 0);
	} else if (starts_with(t, n, "verify=")) {
		cmd_transfer(t + 7, n - 7, 1);
	} else if (starts_with(t, n, "sum=")) {
		cmd_sum(t + 4, n - 4);
	} else if (starts_with(t, n, "rd=")) {
		cmd_raw(t + 3, n - 3, 0);
	} else if (starts_with(t, n, "wr=")) {
		cmd_raw(t + 3, n - 3, 1);
	} else if (starts_with(t, n, "randrd=")) {
		cmd_randrd(t + 7, n - 7);
	} else if (str_eq(t, n, "flush")) {
		int st = request(T_FLUSH, 0, 0, 0, 0);
		put_line_start();
		put_str("VBLK FLUSH status ");
		put_dec((u64)(st & 0xff));
		put_nl();
	} else {
		error("unknown command");
	}
}
