/*
 * errmap: the public errno values (see errmap.h).
 */
#include "ns/errmap.h"

#include <errno.h>

int errmap_public(int rc)
{
	switch (rc) {
	case 0:
	case ENOENT: case EIO: case EEXIST: case EISDIR: case ENOTDIR:
	case ENOTEMPTY: case EROFS: case EACCES: case EPERM: case ENOMEM:
	case ENOSPC: case EFBIG: case ENAMETOOLONG: case EILSEQ: case EINVAL:
	case EBADF: case EBUSY: case ENOTCONN: case EXDEV: case EOPNOTSUPP:
	case ENOSYS: case ESTALE: case EINTR:
		return rc;
	case EKEYEXPIRED:
	case ENOKEY:
		return EACCES; /* the credentials no longer work */
	default:
		return EIO;
	}
}
