/*
 * ml.vsock.*: a ring-3 virtio-vsock driver for the first modern virtio-mmio
 * vsock device announced on the command line: stream connections with credit
 * flow control, polled. The guest offers 64 KiB of credit per connection and
 * never sends beyond the host's.
 *
 *   ml.vsock.echo=PORT:N    accepts N host connections on PORT (up to 128 at
 *                           once) and echoes every byte until the host shuts
 *                           its side; VSOCK LISTEN PORT first, then
 *                           VSOCK ECHO N <total bytes>
 *   ml.vsock.send=PORT:BYTES:SEED  connects to the host's PORT, sends BYTES of
 *                           SEED's pattern (vblk.c's, test/helpers/vblk-pattern.ts),
 *                           shuts down; VSOCK SENT BYTES | VSOCK REFUSED PORT
 *   ml.vsock.agent=PORT     the guest agent's protocol (docs/guest-protocol.md), in
 *                           agent.c, over one host connection on PORT
 */
#include "guest.h"

#define RXB 4096
#define HDR 44
#define MAXC 128
#define CBUF 65536
#define HOST_CID 2

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };

struct conn {
	int open; /* 0 free, 1 requested or accepted, 2 connected by us */
	u32 local, peer;
	u32 peer_alloc, peer_fwd, tx_cnt, fwd_cnt;
	u32 head, len;
	int peer_done; /* the host will send no more */
	u64 bytes;
	u8 buf[CBUF]; /* last: conn_reset leaves it alone */
};

static void conn_reset(struct conn *c) { memset(c, 0, __builtin_offsetof(struct conn, buf)); }

static struct vq rxq, txq, evq;
static u8 rxbuf[VQ_SIZE][RXB] __attribute__((aligned(4096)));
static u8 txbuf[VQ_SIZE][RXB] __attribute__((aligned(4096)));
static u8 evbuf[VQ_SIZE][8];
static struct conn conns[MAXC];
static u64 base, cid;
static int ready;

static void wr16(u8 *p, u16 v) { p[0] = (u8)v; p[1] = (u8)(v >> 8); }
static void wr32(u8 *p, u32 v) { wr16(p, (u16)v); wr16(p + 2, (u16)(v >> 16)); }
static void wr64(u8 *p, u64 v) { wr32(p, (u32)v); wr32(p + 4, (u32)(v >> 32)); }

static void error(const char *why)
{
	put_line_start();
	put_str("VSOCK ERROR ");
	put_str(why);
	put_nl();
}

static int vsock_init(void)
{
	if (ready)
		return ready;
	ready = -1;
	base = vmmio_find(19, 0);
	if (!base) {
		error("no modern virtio-vsock device announced on the command line");
		return ready;
	}
	if (vmmio_begin(base) < 0) {
		error("device does not offer VERSION_1");
		return ready;
	}
	if (!vmmio_accept(base, 0)) {
		error("FEATURES_OK refused");
		return ready;
	}
	cid = rd64(base + 0x100);
	for (u16 i = 0; i < VQ_SIZE; i++) {
		rxq.desc[i] = (struct vdesc){ (u64)rxbuf[i], RXB, 2, 0 };
		txq.desc[i] = (struct vdesc){ (u64)txbuf[i], 0, 0, 0 };
		evq.desc[i] = (struct vdesc){ (u64)evbuf[i], 8, 2, 0 };
	}
	vq_setup(base, 0, &rxq);
	vq_setup(base, 1, &txq);
	vq_setup(base, 2, &evq);
	vm_wr(base, 0x070, 1 | 2 | 8 | 4);
	for (u16 i = 0; i < VQ_SIZE; i++)
		vq_post(base, &rxq, i, 0);
	ready = 1;
	return ready;
}

static u32 tx_reap(void) { return vq_reap(&txq); }

/* Sends one packet; waits for a free transmit buffer. */
static void send_packet(struct conn *c, u32 local, u32 peer, u16 op, u32 flags, const u8 *data, u32 len)
{
	while (tx_reap() >= VQ_SIZE)
		cpu_relax();
	u16 id = txq.avail.idx % VQ_SIZE;
	u8 *h = txbuf[id];
	memset(h, 0, HDR);
	wr64(h, cid);
	wr64(h + 8, HOST_CID);
	wr32(h + 16, local);
	wr32(h + 20, peer);
	wr32(h + 24, len);
	wr16(h + 28, 1);
	wr16(h + 30, op);
	wr32(h + 32, flags);
	wr32(h + 36, CBUF);
	wr32(h + 40, c ? c->fwd_cnt : 0);
	if (len)
		memcpy(h + HDR, data, len);
	txq.desc[id].len = HDR + len;
	txq.in_flight++;
	vq_post(base, &txq, id, 1);
}

static struct conn *find(u32 local, u32 peer)
{
	for (int i = 0; i < MAXC; i++)
		if (conns[i].open && conns[i].local == local && conns[i].peer == peer)
			return &conns[i];
	return 0;
}

static u32 credit(struct conn *c) { return c->peer_alloc - (c->tx_cnt - c->peer_fwd); }

/* Echo: sends back what is buffered, as far as the host's credit goes. */
static void flush(struct conn *c)
{
	while (c->len && credit(c)) {
		u32 n = c->len;
		if (n > credit(c))
			n = credit(c);
		if (n > RXB - HDR)
			n = RXB - HDR;
		if (n > CBUF - c->head)
			n = CBUF - c->head;
		c->fwd_cnt += n;
		send_packet(c, c->local, c->peer, OP_RW, 0, c->buf + c->head, n);
		c->tx_cnt += n;
		c->head = (c->head + n) % CBUF;
		c->len -= n;
	}
}

/* Handles one received packet; echo listens on `port` (0: not listening). Returns the connection it closed. */
static struct conn *handle(const u8 *p, u32 n, u32 port, int echo)
{
	u32 src = rd32((u64)p + 16), dst = rd32((u64)p + 20), len = rd32((u64)p + 24);
	u16 op = rd16((u64)p + 30);
	struct conn *c = find(dst, src);
	if (n < HDR || len > n - HDR)
		return 0;
	if (c) {
		c->peer_alloc = rd32((u64)p + 36);
		c->peer_fwd = rd32((u64)p + 40);
	}
	if (op == OP_REQUEST && !c && port && dst == port) {
		for (int i = 0; i < MAXC; i++) {
			if (!conns[i].open) {
				c = &conns[i];
				conn_reset(c);
				c->open = 1;
				c->local = dst;
				c->peer = src;
				c->peer_alloc = rd32((u64)p + 36);
				c->peer_fwd = rd32((u64)p + 40);
				send_packet(c, dst, src, OP_RESPONSE, 0, 0, 0);
				return 0;
			}
		}
		send_packet(0, dst, src, OP_RST, 0, 0, 0);
		return 0;
	}
	if (!c) {
		if (op != OP_RST)
			send_packet(0, dst, src, OP_RST, 0, 0, 0);
		return 0;
	}
	if (op == OP_RST) {
		c->open = 0;
		return c;
	}
	if (op == OP_RESPONSE)
		c->open = 2; /* connected (guest-initiated) */
	if (op == OP_RW && echo) {
		for (u32 i = 0; i < len && c->len < CBUF; i++) {
			c->buf[(c->head + c->len) % CBUF] = p[HDR + i];
			c->len++;
		}
		c->bytes += len;
	}
	if (op == OP_RW && !echo)
		c->fwd_cnt += len;
	if (op == OP_CREDIT_REQUEST)
		send_packet(c, c->local, c->peer, OP_CREDIT_UPDATE, 0, 0, 0);
	if (op == OP_SHUTDOWN)
		c->peer_done = 1;
	if (echo == 1)
		flush(c);
	if (echo == 1 && c->peer_done && !c->len) {
		send_packet(c, c->local, c->peer, OP_SHUTDOWN, 3, 0, 0);
		c->open = 0;
		return c;
	}
	return 0;
}

/* One received packet, or 0 after a bounded wait. */
static u8 *rx_next(u32 *n, u16 *id)
{
	for (u64 spins = 0; *(volatile u16 *)&rxq.used.idx == rxq.last_used; spins++) {
		cpu_relax();
		if (spins > (1ULL << 31)) {
			error("timeout");
			return 0;
		}
	}
	vm_mb();
	u16 slot = rxq.last_used++ % VQ_SIZE;
	*id = (u16)rxq.used.ring[slot].id;
	*n = rxq.used.ring[slot].len;
	return rxbuf[*id % VQ_SIZE];
}

static void report(const char *what, u64 a, u64 b, int two)
{
	put_line_start();
	put_str("VSOCK ");
	put_str(what);
	put_str(" ");
	put_dec(a);
	if (two) {
		put_str(" ");
		put_dec(b);
	}
	put_nl();
}

static void cmd_echo(const char *t, usize n)
{
	u64 v[2], done = 0, total = 0;
	if (!parse_u64_list(t, n, v, 2)) {
		error("bad PORT:N");
		return;
	}
	report("LISTEN", v[0], 0, 0);
	while (done < v[1]) {
		u32 len;
		u16 id;
		u8 *p = rx_next(&len, &id);
		if (!p)
			return;
		struct conn *closed = handle(p, len, (u32)v[0], 1);
		vq_post(base, &rxq, id, 0);
		if (closed) {
			done++;
			total += closed->bytes;
		}
	}
	report("ECHO", v[1], total, 1);
}

static u8 pattern(u64 seed, u64 i)
{
	u64 z = seed * 0x9e3779b97f4a7c15ULL + (i & ~7ULL); /* the word at byte i & ~7, as vblk.c's */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (u8)(z >> (8 * (i & 7)));
}

static void cmd_send(const char *t, usize n)
{
	static u8 chunk[RXB];
	u64 v[3];
	if (!parse_u64_list(t, n, v, 3)) {
		error("bad PORT:BYTES:SEED");
		return;
	}
	struct conn *c = &conns[MAXC - 1];
	conn_reset(c);
	c->open = 1;
	c->local = 50000;
	c->peer = (u32)v[0];
	send_packet(c, c->local, c->peer, OP_REQUEST, 0, 0, 0);
	u64 sent = 0;
	while (c->open) {
		if (c->open == 2 && sent < v[1] && credit(c)) {
			u32 k = RXB - HDR;
			if (k > credit(c))
				k = credit(c);
			if (k > v[1] - sent)
				k = (u32)(v[1] - sent);
			for (u32 i = 0; i < k; i++)
				chunk[i] = pattern(v[2], sent + i);
			send_packet(c, c->local, c->peer, OP_RW, 0, chunk, k);
			c->tx_cnt += k;
			sent += k;
			if (sent == v[1])
				send_packet(c, c->local, c->peer, OP_SHUTDOWN, 3, 0, 0);
			continue;
		}
		u32 len;
		u16 id;
		u8 *p = rx_next(&len, &id);
		if (!p)
			return;
		int was = c->open;
		handle(p, len, 0, 0);
		vq_post(base, &rxq, id, 0);
		if (!c->open && was == 1) {
			report("REFUSED", v[0], 0, 0);
			return;
		}
	}
	report("SENT", sent, 0, 0);
}

/* For agent.c: one host connection on `port`, its received bytes in c->buf (consume with vsock_consume). */
struct conn *vsock_serve(u32 port, struct conn *c)
{
	for (;;) {
		u32 len;
		u16 id;
		u8 *p = rx_next(&len, &id);
		if (!p)
			return 0;
		struct conn *closed = handle(p, len, c ? 0 : port, 2);
		vq_post(base, &rxq, id, 0);
		if (closed)
			return 0;
		if (!c) {
			for (int i = 0; i < MAXC; i++)
				if (conns[i].open && conns[i].local == port)
					return &conns[i];
			continue;
		}
		if (c->len || c->peer_done || !c->open)
			return c;
	}
}

u32 vsock_available(struct conn *c) { return c->len; }
u8 vsock_byte(struct conn *c, u32 i) { return c->buf[(c->head + i) % CBUF]; }

void vsock_consume(struct conn *c, u32 n)
{
	c->head = (c->head + n) % CBUF;
	c->len -= n;
	c->fwd_cnt += n;
	send_packet(c, c->local, c->peer, OP_CREDIT_UPDATE, 0, 0, 0);
}

/* Sends len bytes, waiting for the host's credit; 0 when the connection went. */
int vsock_write(struct conn *c, const u8 *data, u32 len)
{
	while (len) {
		while (c->open && !credit(c)) {
			u32 n;
			u16 id;
			u8 *p = rx_next(&n, &id);
			if (!p)
				return 0;
			handle(p, n, 0, 2);
			vq_post(base, &rxq, id, 0);
		}
		if (!c->open)
			return 0;
		u32 k = len < credit(c) ? len : credit(c);
		if (k > RXB - HDR)
			k = RXB - HDR;
		send_packet(c, c->local, c->peer, OP_RW, 0, data, k);
		c->tx_cnt += k;
		data += k;
		len -= k;
	}
	return 1;
}

void vsock_close(struct conn *c)
{
	send_packet(c, c->local, c->peer, OP_SHUTDOWN, 3, 0, 0);
	c->open = 0;
}

void vsock_command(const char *t, usize n)
{
	if (vsock_init() != 1)
		return;
	if (starts_with(t, n, "echo=")) {
		cmd_echo(t + 5, n - 5);
	} else if (starts_with(t, n, "send=")) {
		cmd_send(t + 5, n - 5);
	} else if (starts_with(t, n, "agent=")) {
		u64 port;
		if (parse_u64(t + 6, n - 6, &port))
			agent_run((u32)port);
		else
			error("bad PORT");
	} else {
		error("unknown command");
	}
}
