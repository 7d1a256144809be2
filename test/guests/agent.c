/*
 * ml.vsock.agent=PORT: the guest side of the guest agent's protocol (docs/guest-protocol.md, version 1), so
 * that the host side can be tested end to end in real microVMs: accepts one host connection on PORT, greets it
 * with HELLO, takes one ASSIGN (a second one is REFUSED busy), "runs" it by answering STARTED, one STDOUT line
 * naming the assignment's size and FNV-1a 64 (so the host can check every byte arrived), and EXITED code 0,
 * then waits for the ACK. Frames of over 64 KiB (this guest's buffer), of length 0 or of an unknown type get
 * an ERROR and end the connection. Serial lines:
 *   AGENT LISTEN <port> | AGENT ASSIGN <bytes> <fnv hex> | AGENT ACK | AGENT MALFORMED | AGENT HOST GONE
 */
#include "guest.h"

enum { F_HELLO = 1, F_ASSIGN, F_REFUSED, F_STARTED, F_STDOUT, F_STDERR, F_EXITED, F_ACK, F_CANCEL, F_ERROR };

#define FRAME_MAX 65000

static struct conn *c;
static u32 port;
static u8 frame[FRAME_MAX];
static char text[512];
static usize tlen;

static void t_str(const char *s)
{
	while (*s && tlen < sizeof text)
		text[tlen++] = *s++;
}

static void t_num(u64 v, int base16)
{
	char d[20];
	int n = 0;
	do {
		d[n++] = "0123456789abcdef"[base16 ? v % 16 : v % 10];
		v = base16 ? v / 16 : v / 10;
	} while (v);
	while (n && tlen < sizeof text)
		text[tlen++] = d[--n];
}

static void line(const char *what, u64 a, u64 b, int nums)
{
	put_line_start();
	put_str("AGENT ");
	put_str(what);
	if (nums > 0) {
		put_str(" ");
		put_dec(a);
	}
	if (nums > 1) {
		put_str(" ");
		put_hex(b);
	}
	put_nl();
}

static int send_frame(u8 type, const char *payload, u32 len)
{
	u32 n = len + 1;
	u8 h[5] = { (u8)(n >> 24), (u8)(n >> 16), (u8)(n >> 8), (u8)n, type };
	return vsock_write(c, h, 5) && vsock_write(c, (const u8 *)payload, len);
}

static int send_text(u8 type) { return send_frame(type, text, (u32)tlen); }

/* The next whole frame into frame[] (type first): its length, 0 when the host went, -1 when malformed. */
static long read_frame(void)
{
	for (;;) {
		u32 have = vsock_available(c);
		if (have >= 4) {
			u32 n = (u32)vsock_byte(c, 0) << 24 | (u32)vsock_byte(c, 1) << 16 | (u32)vsock_byte(c, 2) << 8 | vsock_byte(c, 3);
			if (n == 0 || n > FRAME_MAX)
				return -1;
			if (have >= 4 + n) {
				for (u32 i = 0; i < n; i++)
					frame[i] = vsock_byte(c, 4 + i);
				vsock_consume(c, 4 + n);
				return n;
			}
		}
		if (!vsock_serve(port, c))
			return 0;
	}
}

static int contains(const u8 *p, u32 n, const char *lit)
{
	usize k = strlen(lit);
	for (u32 i = 0; i + k <= n; i++) {
		usize j = 0;
		while (j < k && p[i + j] == (u8)lit[j])
			j++;
		if (j == k)
			return 1;
	}
	return 0;
}

static void malformed(const char *why)
{
	tlen = 0;
	t_str("{\"code\":\"malformed\",\"message\":\"");
	t_str(why);
	t_str("\"}");
	send_text(F_ERROR);
	vsock_close(c);
	line("MALFORMED", 0, 0, 0);
}

void agent_run(u32 p)
{
	port = p;
	line("LISTEN", p, 0, 1);
	c = vsock_serve(port, 0);
	if (!c) {
		line("HOST GONE", 0, 0, 0);
		return;
	}
	tlen = 0;
	t_str("{\"protocol\":1,\"agent\":\"matchlock-testguest/1\",\"state\":\"idle\"}");
	send_text(F_HELLO);
	int assigned = 0;
	for (;;) {
		long n = read_frame();
		if (n == 0) {
			line("HOST GONE", 0, 0, 0);
			return;
		}
		if (n < 0)
		{
			malformed("frame length outside 1 to 65000");
			return;
		}
		u8 type = frame[0];
		const u8 *body = frame + 1;
		u32 blen = (u32)n - 1;
		if (type == F_ASSIGN && assigned) {
			tlen = 0;
			t_str("{\"code\":\"busy\",\"message\":\"this VM has taken a job already\"}");
			send_text(F_REFUSED);
		} else if (type == F_ASSIGN) {
			if (!contains(body, blen, "\"protocol\":1")) {
				tlen = 0;
				t_str("{\"code\":\"protocol\",\"message\":\"this agent speaks 1\"}");
				send_text(F_REFUSED);
				continue;
			}
			assigned = 1;
			u64 h = 0xcbf29ce484222325ULL;
			for (u32 i = 0; i < blen; i++)
				h = (h ^ body[i]) * 0x100000001b3ULL;
			line("ASSIGN", blen, h, 2);
			tlen = 0;
			t_str("{\"pid\":1,\"at\":\"1970-01-01T00:00:00.000Z\"}");
			send_text(F_STARTED);
			tlen = 0;
			t_str("testguest ran the job: ");
			t_num(blen, 0);
			t_str(" bytes fnv ");
			t_num(h, 1);
			t_str("\n");
			send_text(F_STDOUT);
			tlen = 0;
			t_str("{\"code\":0,\"timedOut\":false,\"cancelled\":false,\"durationMs\":0,\"droppedBytes\":0}");
			send_text(F_EXITED);
		} else if (type == F_ACK && assigned) {
			line("ACK", 0, 0, 0);
			vsock_close(c);
			return;
		} else if (type != F_CANCEL) {
			malformed("a frame the host may not send now");
			return;
		}
	}
}
