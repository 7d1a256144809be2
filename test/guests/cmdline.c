/* Kernel command line: fetch from either boot protocol, split into tokens. */
#include "guest.h"

char cmdline[CMDLINE_MAX];
usize cmdline_len;

void cmdline_load(u32 kind, u64 info)
{
	u64 p = 0;

	if (kind == BOOT_LINUX) {
		/* hdr.cmd_line_ptr (0x228) | ext_cmd_line_ptr (0x0c8) << 32 */
		p = (u64)rd32(info + 0x228) | (u64)rd32(info + 0x0c8) << 32;
	} else if (rd32(info) == 0x336ec578) {
		p = rd64(info + 24); /* hvm_start_info.cmdline_paddr */
	}
	cmdline_len = 0;
	if (!p || p >= mapped_top)
		return;
	while (cmdline_len < CMDLINE_MAX - 1 && rd8(p + cmdline_len))
		cmdline_len++;
	memcpy(cmdline, (const void *)p, cmdline_len);
	cmdline[cmdline_len] = 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Next whitespace-separated token at or after *pos. Returns 0 at the end. */
int cmdline_next(usize *pos, const char **tok, usize *len)
{
	usize i = *pos, start;

	while (i < cmdline_len && is_space(cmdline[i]))
		i++;
	if (i >= cmdline_len)
		return 0;
	start = i;
	while (i < cmdline_len && !is_space(cmdline[i]))
		i++;
	*tok = cmdline + start;
	*len = i - start;
	*pos = i;
	return 1;
}
