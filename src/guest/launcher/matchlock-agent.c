/*
 * matchlock-agent: the guest agent's launcher, injected into golden images at /opt/matchlock/bin/. Static, so it
 * runs on any userland; it starts the injected Node.js through the injected dynamic loader with the injected
 * libraries, so the agent needs nothing from the image (not even its libc). As the kernel's init= it is PID 1,
 * and exec keeps it so.
 *
 * With `--run-as UID GID GIDLIST -- PROGRAM [ARGS...]` it is instead how the agent (root) starts the runner as
 * its unprivileged user: exactly the supplementary groups GIDLIST (comma-separated decimal gids, "" for none;
 * the agent computes them from the image's /etc/group as initgroups(3) would), then the gid, then the uid, then
 * exec in place with the environment as it is (the runner's JIT config is there, never on a command line).
 * Node's own spawn with uid/gid would leave the runner no supplementary group at all (setgroups(0, NULL)).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ROOT "/opt/matchlock"
#define RUN_AS_USAGE "usage: matchlock-agent --run-as UID GID GIDLIST -- PROGRAM [ARGS...]"

/* A decimal id of `len` characters at `s`, below 2^32-1 (which the set*id calls take as "leave as it is"). */
static int parse_id(const char *s, size_t len, unsigned int *out)
{
	unsigned long long v = 0;
	if (len == 0 || len > 10)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (v >= 0xffffffffULL)
		return 0;
	*out = (unsigned int)v;
	return 1;
}

static int refuse(const char *what, const char *value)
{
	fprintf(stderr, "matchlock-agent --run-as: %s: \"%s\" (" RUN_AS_USAGE ")\n", what, value);
	return 127;
}

static int failed(const char *call)
{
	fprintf(stderr, "matchlock-agent --run-as: %s failed: %s\n", call, strerror(errno));
	return 127;
}

/* argv: matchlock-agent --run-as UID GID GIDLIST -- PROGRAM [ARGS...]. Returns only on failure. */
static int run_as(int argc, char **argv)
{
	unsigned int uid, gid;
	if (argc < 7 || strcmp(argv[5], "--") != 0) {
		fputs("matchlock-agent --run-as: " RUN_AS_USAGE "\n", stderr);
		return 127;
	}
	if (!parse_id(argv[2], strlen(argv[2]), &uid))
		return refuse("not a uid", argv[2]);
	if (!parse_id(argv[3], strlen(argv[3]), &gid))
		return refuse("not a gid", argv[3]);

	const char *list = argv[4];
	size_t n = list[0] == '\0' ? 0 : 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	gid_t *groups = calloc(n + 1, sizeof(gid_t));
	if (!groups) {
		fputs("matchlock-agent: out of memory\n", stderr);
		return 127;
	}
	const char *p = list;
	for (size_t i = 0; i < n; i++) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		unsigned int g;
		if (!parse_id(p, len, &g))
			return refuse("not a comma-separated list of gids", list);
		groups[i] = g;
		p += len + 1;
	}

	/* Groups and gid while still root; the uid last, as it takes the right to change the others. */
	if (setgroups(n, groups) != 0)
		return failed("setgroups");
	if (setgid(gid) != 0)
		return failed("setgid");
	if (setuid(uid) != 0)
		return failed("setuid");
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		fprintf(stderr, "matchlock-agent --run-as: the ids did not take (uid %u/%u, gid %u/%u): not starting %s\n",
			(unsigned int)getuid(), (unsigned int)geteuid(), (unsigned int)getgid(), (unsigned int)getegid(), argv[6]);
		return 127;
	}
	execv(argv[6], argv + 6);
	fprintf(stderr, "matchlock-agent --run-as: cannot start %s: %s\n", argv[6], strerror(errno));
	return 127;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--run-as") == 0)
		return run_as(argc, argv);
	char **args = calloc((size_t)argc + 6, sizeof(char *));
	if (!args) {
		fputs("matchlock-agent: out of memory\n", stderr);
		return 1;
	}
	int n = 0;
	args[n++] = "matchlock-agent";
	args[n++] = "--library-path";
	args[n++] = ROOT "/lib";
	args[n++] = ROOT "/bin/node";
	args[n++] = ROOT "/src/guest/main.ts";
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(ROOT "/lib/ld-linux-x86-64.so.2", args);
	fprintf(stderr, "matchlock-agent: cannot start " ROOT "/lib/ld-linux-x86-64.so.2: %s\n", strerror(errno));
	return 127;
}
