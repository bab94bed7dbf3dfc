/* num: decimal numbers (see num.h). */
#include "base/num.h"

#include <errno.h>
#include <stdlib.h>

int num_parse_u64(const char *s, const char **end, uint64_t *out)
{
	unsigned long long v;
	char *e;

	if (!s || *s < '0' || *s > '9')
		return EINVAL;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno)
		return ERANGE;
	if (end)
		*end = e;
	else if (*e)
		return EINVAL;
	*out = v;
	return 0;
}
