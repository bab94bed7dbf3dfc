/*
 * errmap: the errno values a mount returns, and how the others map onto
 * them (docs/SEMANTICS.md, "Errors").
 *
 * Inside the daemon an errno can mean something only the daemon knows
 * (ECANCELED: a sink stopped a GET; EAGAIN: an If-Match failed; ERANGE,
 * EREMOTEIO, EBADMSG: a reply that made no sense; EKEYEXPIRED, ENOKEY:
 * credentials). A program seeing those from read(2) or stat(2) would be
 * misled, so the FUSE layer passes every result through errmap_public().
 * Thread-safe (pure).
 */
#ifndef IMGFS_ERRMAP_H
#define IMGFS_ERRMAP_H

/* rc (0 or a positive errno) as a program may see it: 0 and the errno
 * values of errmap's list unchanged, credential failures as EACCES,
 * anything else as EIO. */
int errmap_public(int rc);

#endif
