/* Tiny freestanding helpers (the compiler may also emit calls to mem*). */
#include "guest.h"

void *memset(void *d, int c, usize n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, usize n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

usize strlen(const char *s)
{
	usize n = 0;
	while (s[n])
		n++;
	return n;
}

int starts_with(const char *s, usize len, const char *prefix)
{
	usize i;
	for (i = 0; prefix[i]; i++)
		if (i >= len || s[i] != prefix[i])
			return 0;
	return 1;
}

int str_eq(const char *s, usize len, const char *lit)
{
	return strlen(lit) == len && starts_with(s, len, lit);
}

/* Decimal, or hex with a 0x prefix. Returns 0 on empty/invalid/overflow. */
int parse_u64(const char *s, usize len, u64 *out)
{
	u64 v = 0, base = 10;
	usize i = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i >= len)
		return 0;
	for (; i < len; i++) {
		char c = s[i];
		u64 d;
		if (c >= '0' && c <= '9')
			d = (u64)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (u64)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (u64)(c - 'A' + 10);
		else
			return 0;
		if (v > (~0ULL - d) / base)
			return 0;
		v = v * base + d;
	}
	*out = v;
	return 1;
}

/* Parses exactly `count` numbers separated by ':' ("A:B:C"); 0 if the text is anything else. */
int parse_u64_list(const char *t, usize n, u64 *v, int count)
{
	int k = 0;
	usize start = 0;
	for (usize i = 0; i <= n && k < count; i++) {
		if (i == n || t[i] == ':') {
			if (!parse_u64(t + start, i - start, &v[k]))
				return 0;
			k++;
			start = i + 1;
		}
	}
	return k == count && start >= n + 1;
}
