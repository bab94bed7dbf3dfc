/*
 * store: what every implementation of the store interface shares (see
 * store.h).
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

static int buf_sink(void *arg, const void *data, size_t len)
{
	return buf_add(arg, data, len);
}

int store_get_buf(struct store *st, const char *key, struct buf *out,
		  struct store_object *info)
{
	return store_get(st, key, 0, 0, NULL, buf_sink, out, info);
}

void store_list_page_release(struct store_list_page *p)
{
	for (size_t i = 0; i < p->nentries; i++)
		free(p->entries[i].key);
	for (size_t i = 0; i < p->nprefixes; i++)
		free(p->prefixes[i]);
	free(p->entries);
	free(p->prefixes);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}
