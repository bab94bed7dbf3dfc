/*
 * worker: the thumbnail worker, `imgfs --thumb-worker`, a helper mode of
 * the daemon's own binary that the pool (pool.h) starts with an empty
 * environment and no descriptors but /dev/null on 0 and 1, the daemon's
 * stderr on 2 and its end of a Unix socket on WORKER_FD.
 *
 * It initialises libvips, then confines itself for good: resource limits
 * (RLIMIT_AS, except in sanitizer builds whose shadow memory needs more
 * address space than any limit allows; RLIMIT_CPU; RLIMIT_NOFILE; no core
 * files), not dumpable, no new privileges, and a seccomp allow-list of
 * the system calls decoding needs: reading and writing descriptors it
 * has, memory, threads, time. Opening a file or a socket fails with
 * EACCES; any other call outside the list kills it. Then it serves the
 * requests of wire.h one at a time until the socket closes: every
 * untrusted byte (format sniffing, headers, decoding, encoding) is parsed
 * here and never in the daemon.
 *
 * A first reply with status 0 and no thumbnails says it is ready.
 */
#ifndef IMGFS_WORKER_H
#define IMGFS_WORKER_H

#define WORKER_FD 3
#define WORKER_ARG "--thumb-worker"
#define WORKER_CPU_LIMIT_S 600u         /* RLIMIT_CPU of a worker */
#define WORKER_AS_LIMIT (1536ull << 20) /* RLIMIT_AS of a worker */

/* When argv asks for the worker mode, serve as a worker and return its
 * exit status (never returns to the caller's logic); else -1. Every
 * binary that makes thumbnails (the daemon, tests) calls it first in
 * main(). */
int worker_dispatch(int argc, char **argv);

#endif
