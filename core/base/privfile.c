/* privfile: private database files (see privfile.h). */
#include "base/privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* chmod 0600 the file at path if it exists; a symlink is refused. */
static int make_private(const char *path, int create)
{
	int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0);
	int fd = open(path, flags, 0600);
	int rc = 0;

	if (fd < 0)
		return errno == ENOENT && !create ? 0 : errno;
	if (fchmod(fd, 0600))
		rc = errno;
	close(fd);
	return rc;
}

int privfile_db(const char *path)
{
	static const char *const side[] = {"-wal", "-shm"};
	char p[4096];
	int rc = make_private(path, 1);

	for (size_t i = 0; !rc && i < sizeof(side) / sizeof(*side); i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", path, side[i]) >=
		    sizeof(p))
			return ENAMETOOLONG;
		rc = make_private(p, 0);
	}
	return rc;
}
