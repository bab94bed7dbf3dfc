/*
 * Fuzz target: every S3 response parser of core/xml over the same bytes.
 * A parser must return 0 or an errno and leave nothing allocated on error.
 *
 * fuzz-sources: core/store/xml.c core/base/buf.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	struct store_list_page page;
	struct xml_uploads_page up;
	struct xml_error xe;
	char etag[STORE_ETAG_MAX];
	char *id = NULL;
	int truncated;

	if (xml_parse_list(d, size, &page, &truncated) == 0) {
		for (size_t i = 0; i < page.nentries; i++)
			if (!page.entries[i].key || !page.entries[i].key[0])
				abort();
		if (truncated && !page.next_token)
			abort();
		store_list_page_release(&page);
	}
	if (xml_parse_uploads(d, size, size & 1, &up) == 0)
		xml_uploads_page_release(&up);
	if (xml_parse_initiate(d, size, &id) == 0) {
		if (!id || !id[0])
			abort();
		free(id);
	}
	if (xml_parse_complete(d, size, etag, &xe) == 0 && strlen(etag) == 0)
		abort();
	(void)xml_parse_copy(d, size, etag, &xe);
	(void)xml_parse_error(d, size, &xe);
	return 0;
}
