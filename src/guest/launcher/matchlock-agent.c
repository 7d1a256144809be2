/*
 * matchlock-agent: the guest agent's launcher, injected into golden images at /opt/matchlock/bin/. Static, so it
 * runs on any userland; it starts the injected Node.js through the injected dynamic loader with the injected
 * libraries, so the agent needs nothing from the image (not even its libc). As the kernel's init= it is PID 1,
 * and exec keeps it so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOT "/opt/matchlock"

int main(int argc, char **argv)
{
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
