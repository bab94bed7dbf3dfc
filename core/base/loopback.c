/*
 * loopback: is a URL's host this machine? See loopback.h.
 */
#include "base/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 1 if the first len bytes of s name a loopback host. */
static int hostn_is_loopback(const char *s, size_t len)
{
	struct in6_addr a6;
	struct in_addr a4;
	char h[64];

	if (len == 0 || len >= sizeof(h))
		return 0;
	memcpy(h, s, len);
	h[len] = '\0';
	if (strcasecmp(h, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len < 3 || h[0] != '[' || h[len - 1] != ']')
		return 0;
	h[len - 1] = '\0';
	return inet_pton(AF_INET6, h + 1, &a6) == 1 &&
	       IN6_IS_ADDR_LOOPBACK(&a6);
}

int host_is_loopback(const char *host)
{
	return hostn_is_loopback(host, strlen(host));
}

int hostport_is_loopback(const char *hp)
{
	const char *end = hp[0] == '[' ? strchr(hp, ']') : strchr(hp, ':');

	if (hp[0] == '[' && end)
		end++;
	return hostn_is_loopback(hp, end ? (size_t)(end - hp) : strlen(hp));
}
