/*
 * loopback: is a URL's host this machine?
 *
 * A host as a URL writes it: a name, a dotted IPv4 address or a bracketed
 * IPv6 one, without the port. "localhost", 127.0.0.0/8 and [::1] are
 * loopback; nothing is resolved. Pure; thread-safe.
 */
#ifndef IMGFS_LOOPBACK_H
#define IMGFS_LOOPBACK_H

/* 1 if host is loopback, else 0. */
int host_is_loopback(const char *host);

/* The same for the host of "host[:port]" (an endpoint's authority). */
int hostport_is_loopback(const char *hp);

#endif
