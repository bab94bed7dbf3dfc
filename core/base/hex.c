/* hex: hexadecimal digits (see hex.h). */
#include "base/hex.h"

#include <errno.h>

int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void hex_encode(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int hex_decode(const char *in, size_t len, void *out, size_t n)
{
	unsigned char *p = out;

	if (len != 2 * n)
		return EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit((unsigned char)in[2 * i]);
		int lo = hex_digit((unsigned char)in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return EINVAL;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
