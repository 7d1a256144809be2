/*
 * ml.vnet.*: a ring-3 virtio-net driver for the first modern virtio-mmio
 * network device announced on the command line. VERSION_1 and MAC only (no
 * offloads, no merged buffers): queue 0 receives into 2 KiB buffers, queue 1
 * transmits one descriptor per frame (12-byte header + frame). Polled.
 *
 * Test frames: destination ff:ff:ff:ff:ff:ff, source = our MAC, EtherType
 * 0x88b5, then u32 sequence and u32 seed (big-endian), then pattern bytes
 * (test/helpers/net-frames.ts). Frames of other EtherTypes are ignored.
 *
 *   ml.vnet.info            VNET INFO mac <xx:xx:xx:xx:xx:xx> mtu <n>
 *   ml.vnet.send=N:SIZE:SEED  sends N frames of SIZE bytes (with the 14-byte
 *                           Ethernet header), sequence 0..N-1; VNET SENT N
 *   ml.vnet.recv=N:SEED     receives N test frames of that seed and checks
 *                           that they come in order, whole and unduplicated;
 *                           VNET RECV N ok | VNET RECV N bad <why> <seq>
 *   ml.vnet.echo=N:SEED     as recv, and sends each frame back with
 *                           EtherType 0x88b6; VNET ECHO N ok | bad ...
 */
#include "guest.h"

#define RXBUF 2048
#define HDR 12
#define ETH_TEST 0x88b5
#define ETH_ECHO 0x88b6

static struct vq rxq, txq;
static u8 rxbuf[VQ_SIZE][RXBUF] __attribute__((aligned(4096)));
static u8 txbuf[VQ_SIZE][RXBUF] __attribute__((aligned(4096)));
static u64 base;
static int ready;
static u8 mac[6];
static u32 mtu;

static void error(const char *why)
{
	put_line_start();
	put_str("VNET ERROR ");
	put_str(why);
	put_nl();
}

static void rx_post(u16 id) { vq_post(base, &rxq, id, 0); }

static int vnet_init(void)
{
	if (ready)
		return ready;
	ready = -1;
	base = vmmio_find(1, 0);
	if (!base) {
		error("no modern virtio-net device announced on the command line");
		return ready;
	}
	long features = vmmio_begin(base);
	if (features < 0) {
		error("device does not offer VERSION_1");
		return ready;
	}
	u32 f0 = (u32)features;
	if (!vmmio_accept(base, f0 & ((1u << 5) | (1u << 3)))) { /* MAC, MTU when offered */
		error("FEATURES_OK refused");
		return ready;
	}
	for (int i = 0; i < 6; i++)
		mac[i] = *(volatile u8 *)(base + 0x100 + i);
	mtu = (f0 & (1u << 3)) ? *(volatile u16 *)(base + 0x100 + 10) : 1500;
	for (u16 i = 0; i < VQ_SIZE; i++) {
		rxq.desc[i] = (struct vdesc){ (u64)rxbuf[i], RXBUF, 2, 0 };
		txq.desc[i] = (struct vdesc){ (u64)txbuf[i], 0, 0, 0 };
	}
	vq_setup(base, 0, &rxq);
	vq_setup(base, 1, &txq);
	vm_wr(base, 0x070, 1 | 2 | 8 | 4);
	for (u16 i = 0; i < VQ_SIZE; i++)
		rx_post(i);
	ready = 1;
	return ready;
}

static u32 tx_reap(void) { return vq_reap(&txq); }

static void tx_frame(const u8 *frame, u32 len)
{
	u64 spins = 0;
	while (tx_reap() >= VQ_SIZE) {
		cpu_relax();
		if (++spins > (1ULL << 32)) {
			error("timeout waiting for TX buffers");
			return;
		}
	}
	u16 id = txq.avail.idx % VQ_SIZE;
	memset(txbuf[id], 0, HDR);
	memcpy(txbuf[id] + HDR, frame, len);
	txq.desc[id].len = HDR + len;
	txq.in_flight++;
	vq_post(base, &txq, id, 1);
}

/* Waits for the next received frame; returns a pointer to it (after the header) and its length, and the
 * descriptor to give back with rx_done. */
static const u8 *rx_next(u32 *len, u16 *id)
{
	u64 spins = 0;
	while (*(volatile u16 *)&rxq.used.idx == rxq.last_used) {
		cpu_relax();
		if (++spins > (1ULL << 31)) {
			error("timeout waiting for a frame");
			return 0;
		}
	}
	vm_mb();
	u16 slot = rxq.last_used++ % VQ_SIZE;
	*id = (u16)rxq.used.ring[slot].id;
	u32 l = rxq.used.ring[slot].len;
	*len = l > HDR ? l - HDR : 0;
	return rxbuf[*id % VQ_SIZE] + HDR;
}

static void rx_done(u16 id) { rx_post(id); }

static u8 pattern_byte(u32 seed, u32 seq, u32 i)
{
	u32 x = seed * 2654435761u ^ seq * 40503u ^ i * 2246822519u;
	x ^= x >> 15;
	x *= 2246822507u;
	x ^= x >> 13;
	return (u8)x;
}

static u32 be32(const u8 *p) { return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | p[3]; }
static void put_be32(u8 *p, u32 v)
{
	p[0] = (u8)(v >> 24);
	p[1] = (u8)(v >> 16);
	p[2] = (u8)(v >> 8);
	p[3] = (u8)v;
}

static void report(const char *what, u64 n, const char *tail, u64 seq, int with_seq)
{
	put_line_start();
	put_str("VNET ");
	put_str(what);
	put_str(" ");
	put_dec(n);
	if (tail) {
		put_str(" ");
		put_str(tail);
	}
	if (with_seq) {
		put_str(" ");
		put_dec(seq);
	}
	put_nl();
}

static void cmd_send(const char *t, usize n)
{
	static u8 frame[RXBUF];
	u64 v[3];
	if (!parse_u64_list(t, n, v, 3) || v[1] < 22 || v[1] > 1514) {
		error("bad N:SIZE:SEED (SIZE 22 to 1514)");
		return;
	}
	memset(frame, 0xff, 6);
	memcpy(frame + 6, mac, 6);
	frame[12] = ETH_TEST >> 8;
	frame[13] = ETH_TEST & 0xff;
	for (u32 seq = 0; seq < v[0]; seq++) {
		put_be32(frame + 14, seq);
		put_be32(frame + 18, (u32)v[2]);
		for (u32 i = 22; i < v[1]; i++)
			frame[i] = pattern_byte((u32)v[2], seq, i);
		tx_frame(frame, (u32)v[1]);
	}
	while (tx_reap())
		cpu_relax();
	report("SENT", v[0], 0, 0, 0);
}

/* Why frame f (len bytes) is not test frame `want` of `seed`, or 0 when it is. */
static const char *check(const u8 *f, u32 len, u32 want, u32 seed)
{
	u32 seq = be32(f + 14);
	if (seq < want)
		return "duplicate";
	if (seq > want)
		return "lost-before";
	for (u32 i = 22; i < len; i++)
		if (f[i] != pattern_byte(seed, seq, i))
			return "corrupt";
	return 0;
}

/* Receives N test frames of SEED and checks them; with echo, sends each back with EtherType 0x88b6. */
static void cmd_recv(const char *t, usize n, int echo)
{
	static u8 frame[RXBUF];
	u64 v[2];
	const char *what = echo ? "ECHO" : "RECV";
	if (!parse_u64_list(t, n, v, 2)) {
		error("bad N:SEED");
		return;
	}
	for (u32 want = 0; want < v[0];) {
		u32 len;
		u16 id;
		const u8 *f = rx_next(&len, &id);
		if (!f)
			return;
		if (len < 22 || len > RXBUF - HDR || f[12] != (ETH_TEST >> 8) || f[13] != (ETH_TEST & 0xff) || be32(f + 18) != (u32)v[1]) {
			rx_done(id);
			continue;
		}
		const char *bad = check(f, len, want, (u32)v[1]);
		if (echo && !bad)
			memcpy(frame, f, len);
		rx_done(id);
		if (bad) {
			report(what, v[0], bad, want, 1);
			return;
		}
		if (echo) {
			memcpy(frame, frame + 6, 6);
			memcpy(frame + 6, mac, 6);
			frame[13] = ETH_ECHO & 0xff;
			tx_frame(frame, len);
		}
		want++;
	}
	while (tx_reap())
		cpu_relax();
	report(what, v[0], "ok", 0, 0);
}

void vnet_command(const char *t, usize n)
{
	if (vnet_init() != 1)
		return;
	if (str_eq(t, n, "info")) {
		put_line_start();
		put_str("VNET INFO mac ");
		for (int i = 0; i < 6; i++) {
			const char *hex = "0123456789abcdef";
			char b[3] = { hex[mac[i] >> 4], hex[mac[i] & 15], 0 };
			if (i)
				put_str(":");
			put_str(b);
		}
		put_str(" mtu ");
		put_dec(mtu);
		put_nl();
	} else if (starts_with(t, n, "send=")) {
		cmd_send(t + 5, n - 5);
	} else if (starts_with(t, n, "recv=")) {
		cmd_recv(t + 5, n - 5, 0);
	} else if (starts_with(t, n, "echo=")) {
		cmd_recv(t + 5, n - 5, 1);
	} else {
		error("unknown command");
	}
}
