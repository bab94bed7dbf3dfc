/*
 * store: what every implementation of the store interface shares (see
 * store.h).
 */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "base/hex.h"

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

int store_md5_etag(const void *data, size_t len, char out[STORE_ETAG_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
		return EIO;
	out[0] = '"';
	hex_encode(md, 16, out + 1);
	out[33] = '"';
	out[34] = '\0';
	return 0;
}

int store_etag_md5(const char *etag, unsigned char md5[16])
{
	size_t len = strlen(etag);

	if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') {
		etag++;
		len -= 2;
	}
	return hex_decode(etag, len, md5, 16);
}

int store_mpu_etag(const struct store_part *parts, size_t nparts,
		   char out[STORE_ETAG_MAX])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE], bin[16];
	unsigned int mdlen = 0;
	char hex[2 * 16 + 1];
	int err = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) ? 0 : EIO;

	if (!err && nparts == 0)
		err = EINVAL;
	for (size_t i = 0; !err && i < nparts; i++) {
		err = store_etag_md5(parts[i].etag, bin);
		if (!err && !EVP_DigestUpdate(ctx, bin, sizeof(bin)))
			err = EIO;
	}
	if (!err && (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 16))
		err = EIO;
	EVP_MD_CTX_free(ctx);
	if (err)
		return err;
	hex_encode(md, 16, hex);
	snprintf(out, STORE_ETAG_MAX, "\"%s-%zu\"", hex, nparts);
	return 0;
}

int store_mpu_landed(struct store *st, const char *key,
		     const struct store_part *parts, size_t nparts,
		     char etag[STORE_ETAG_MAX])
{
	char want[STORE_ETAG_MAX];
	struct store_object obj;

	if (store_mpu_etag(parts, nparts, want) != 0 ||
	    store_head(st, key, &obj) != 0 || strcasecmp(obj.etag, want) != 0)
		return 0;
	memcpy(etag, obj.etag, STORE_ETAG_MAX);
	return 1;
}
