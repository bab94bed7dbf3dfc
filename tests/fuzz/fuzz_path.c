/*
 * libFuzzer target: mount path classification and the checks on names
 * that come from the bucket.
 * fuzz-sources: core/ns/path.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ns/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char *parent = malloc(size + 1);
	struct path_info pi;

	if (!s || !parent)
		goto out;
	memcpy(s, data, size);
	s[size] = '\0';
	if (path_parse(s, 8, &pi) == 0) {
		const char *leaf = path_split(pi.rel, parent);

		if (strlen(parent) + strlen(leaf) > strlen(pi.rel))
			abort();
	}
	path_name_ok(s, strlen(s));
	path_utf8_ok(s);
out:
	free(s);
	free(parent);
	return 0;
}
