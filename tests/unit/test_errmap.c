/* Unit tests: the errno values a mount returns (core/ns/errmap.h). */
#include <errno.h>

#include "check.h"
#include "ns/errmap.h"

static void test_public_pass_through(void)
{
	static const int same[] = {0, ENOENT, EIO, EEXIST, EISDIR, ENOTDIR,
				   ENOTEMPTY, EROFS, EACCES, ENOSPC, EFBIG,
				   ENAMETOOLONG, EILSEQ, EINVAL, EBADF};

	for (unsigned i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		CHECK_INT(errmap_public(same[i]), same[i]);
}

static void test_internal_values_are_mapped(void)
{
	static const int internal[] = {ECANCELED, EAGAIN, ERANGE, EREMOTEIO,
				       EBADMSG, EOVERFLOW, ETIMEDOUT,
				       ECONNREFUSED, EPROTO, 12345};

	for (unsigned i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
		CHECK_INT(errmap_public(internal[i]), EIO);
	CHECK_INT(errmap_public(EKEYEXPIRED), EACCES);
	CHECK_INT(errmap_public(ENOKEY), EACCES);
}

int main(void)
{
	test_public_pass_through();
	test_internal_values_are_mapped();
	return check_done("test_errmap");
}
