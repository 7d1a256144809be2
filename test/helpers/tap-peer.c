/*
 * The host's end of a TAP for the virtio-net tests: raw Ethernet frames through an AF_PACKET socket bound to
 * the interface, in the test guest's frame format (test/guests/vnet.c): EtherType 0x88b5, u32 sequence, u32
 * seed, pattern bytes. Built by the tests with gcc; run inside the test's network namespace.
 *
 *   tap-peer recv IFNAME N SEED TIMEOUT_MS
 *       receives N test frames of SEED (from the guest), in order, whole, once each: "RECV N ok" or
 *       "RECV N bad <why> <seq>", exit 0 / 1
 *   tap-peer echo IFNAME N SIZE SEED WINDOW TIMEOUT_MS
 *       sends N frames of SIZE bytes to the guest, at most WINDOW unanswered, and checks the guest's echoes
 *       (EtherType 0x88b6): "ECHO N ok" or "ECHO N bad <why> <seq>"
 *
 * On success both print "TIME_US <microseconds>" on stderr, from the first frame received to the last (for the
 * benchmarks: the guest's boot is not in it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ETH_TEST 0x88b5
#define ETH_ECHO 0x88b6

static unsigned char pattern_byte(unsigned seed, unsigned seq, unsigned i)
{
	unsigned x = seed * 2654435761u ^ seq * 40503u ^ i * 2246822519u;
	x ^= x >> 15;
	x *= 2246822507u;
	x ^= x >> 13;
	return (unsigned char)x;
}

static unsigned be32(const unsigned char *p) { return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]; }

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int open_socket(const char *ifname, int *ifindex)
{
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (s < 0) {
		perror("socket(AF_PACKET)");
		exit(2);
	}
	int size = 16 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
	*ifindex = (int)if_nametoindex(ifname);
	if (!*ifindex) {
		perror(ifname);
		exit(2);
	}
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = *ifindex };
	if (bind(s, (struct sockaddr *)&sll, sizeof sll) < 0) {
		perror("bind");
		exit(2);
	}
	return s;
}

/* The next incoming (not our own outgoing) frame of `type`, or -1 on timeout. */
static ssize_t next_frame(int s, unsigned char *buf, size_t size, unsigned type, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		struct sockaddr_ll from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(s, buf, size, 0, (struct sockaddr *)&from, &fl);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("recvfrom");
			exit(2);
		}
		if (from.sll_pkttype == PACKET_OUTGOING || n < 22 || ((unsigned)buf[12] << 8 | buf[13]) != type)
			continue;
		return n;
	}
}

/* Checks one test frame: NULL when it is frame `want` of `seed`, else why not. */
static const char *check(const unsigned char *f, ssize_t n, unsigned want, unsigned seed, ssize_t size)
{
	unsigned seq = be32(f + 14);
	if (be32(f + 18) != seed)
		return "seed";
	if (seq < want)
		return "duplicate";
	if (seq > want)
		return "lost-before";
	if (size >= 0 && n != size)
		return "length";
	for (ssize_t i = 22; i < n; i++)
		if (f[i] != pattern_byte(seed, seq, (unsigned)i))
			return "corrupt";
	return NULL;
}

int main(int argc, char **argv)
{
	static unsigned char buf[65536];
	int ifindex;
	if (argc >= 6 && !strcmp(argv[1], "recv")) {
		unsigned n = (unsigned)atoi(argv[3]), seed = (unsigned)atoi(argv[4]);
		int s = open_socket(argv[2], &ifindex);
		long long deadline = now_ms() + atoll(argv[5]);
		long long first = 0;
		printf("READY\n");
		fflush(stdout);
		for (unsigned want = 0; want < n; want++) {
			ssize_t len = next_frame(s, buf, sizeof buf, ETH_TEST, deadline);
			const char *bad = len < 0 ? "timeout" : check(buf, len, want, seed, -1);
			if (bad) {
				printf("RECV %u bad %s %u\n", n, bad, want);
				return 1;
			}
			if (want == 0)
				first = now_us();
		}
		fprintf(stderr, "TIME_US %lld\n", now_us() - first);
		printf("RECV %u ok\n", n);
		return 0;
	}
	if (argc >= 8 && !strcmp(argv[1], "echo")) {
		unsigned n = (unsigned)atoi(argv[3]), size = (unsigned)atoi(argv[4]), seed = (unsigned)atoi(argv[5]);
		unsigned window = (unsigned)atoi(argv[6]);
		int s = open_socket(argv[2], &ifindex);
		long long deadline = now_ms() + atoll(argv[7]);
		static unsigned char frame[2048];
		printf("READY\n");
		fflush(stdout);
		if (size < 22 || size > 1514) {
			fprintf(stderr, "SIZE must be 22 to 1514\n");
			return 2;
		}
		memset(frame, 0xff, 6);
		memcpy(frame + 6, "\x02\x00\x00\x00\x00\x01", 6);
		frame[12] = ETH_TEST >> 8;
		frame[13] = ETH_TEST & 0xff;
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };
		memset(to.sll_addr, 0xff, 6);
		unsigned sent = 0, got = 0;
		long long first = 0;
		while (got < n) {
			while (sent < n && sent - got < window) {
				frame[14] = (unsigned char)(sent >> 24);
				frame[15] = (unsigned char)(sent >> 16);
				frame[16] = (unsigned char)(sent >> 8);
				frame[17] = (unsigned char)sent;
				frame[18] = (unsigned char)(seed >> 24);
				frame[19] = (unsigned char)(seed >> 16);
				frame[20] = (unsigned char)(seed >> 8);
				frame[21] = (unsigned char)seed;
				for (unsigned i = 22; i < size; i++)
					frame[i] = pattern_byte(seed, sent, i);
				if (sendto(s, frame, size, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)size) {
					if (errno == ENOBUFS || errno == EAGAIN)
						break; /* the TAP's queue is full: wait for echoes */
					perror("sendto");
					return 2;
				}
				sent++;
			}
			ssize_t len = next_frame(s, buf, sizeof buf, ETH_ECHO, deadline);
			const char *bad = len < 0 ? "timeout" : check(buf, len, got, seed, size);
			if (bad) {
				printf("ECHO %u bad %s %u\n", n, bad, got);
				return 1;
			}
			if (got == 0)
				first = now_us();
			got++;
		}
		fprintf(stderr, "TIME_US %lld\n", now_us() - first);
		printf("ECHO %u ok\n", n);
		return 0;
	}
	fprintf(stderr, "usage: tap-peer recv IFNAME N SEED TIMEOUT_MS | echo IFNAME N SIZE SEED WINDOW TIMEOUT_MS\n");
	return 2;
}
