/*
 * ns_rig: a namespace over the in-memory store for unit tests (test_ns.c,
 * test_model.c). Links are signed by a real S3 client whose endpoint
 * nothing listens on: signing makes no request. Header-only, static.
 */
#ifndef IMGFS_TEST_NS_RIG_H
#define IMGFS_TEST_NS_RIG_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/creds.h"
#include "base/metrics.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "store/mem.h"
#include "store/s3.h"

#define MIB (1u << 20)

struct rig {
	struct cfg cfg;
	struct creds *creds;
	struct metrics *sign_metrics;
	struct s3_client *signer;
	struct mem_store *m;
	struct ns *ns;
	char dir[40];
};

static void rig_cfg(struct rig *r)
{
	r->cfg.s3 = (struct s3_conf){.bucket = (char *)"imgfs-test",
		.endpoint = (char *)"http://127.0.0.1:9", .region = (char *)"us-east-1",
		.addressing = S3_ADDR_PATH, .max_connections = 2,
		.connect_timeout = 1, .request_timeout = 1};
	r->cfg.creds = (struct creds_conf){.profile = (char *)"default",
		.credentials_file = (char *)"/nonexistent/credentials",
		.config_file = (char *)"/nonexistent/config"};
	r->cfg.cache = (struct cache_conf){.dir = r->dir, .max_bytes = 8 * MIB};
	r->cfg.thumb = (struct thumb_conf){.size = 32, .max_pixels = 1 << 24,
					   .concurrency = 1};
	r->cfg.link = (struct link_conf){.expiry = 3600, .bucket = "imgfs-test",
					 .upload_max = MIB};
	r->cfg.fs = (struct fs_conf){.uploads_prefix = (char *)"uploads/",
		.thumbs_prefix = (char *)"thumbnails/", .part_size = 5 * MIB,
		.parts_in_flight = 2, .metadata_ttl = 60};
}

/* sized: thumb_sizes=32,64 and eager thumbnails. */
static int rig_up(struct rig *r, int sized)
{
	char ak[] = "AWS_ACCESS_KEY_ID=AKIDEXAMPLE";
	char sk[] = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	char *envp[] = {ak, sk, NULL};
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/imgfs-test-ns-XXXXXX");
	if (!mkdtemp(r->dir))
		return errno;
	rig_cfg(r);
	if (sized) {
		r->cfg.thumb.sizes[0] = 32;
		r->cfg.thumb.sizes[1] = 64;
		r->cfg.thumb.nsizes = 2;
		r->cfg.thumb.eager = 1;
	}
	r->creds = creds_create(&r->cfg.creds, envp, err, sizeof(err));
	r->sign_metrics = metrics_create();
	r->signer = r->creds ? s3_create(&r->cfg.s3, r->creds, r->sign_metrics)
			     : NULL;
	r->m = mem_create();
	r->ns = ns_new(&r->cfg, r->creds);
	if (!r->signer || !r->m || !r->ns) {
		fprintf(stderr, "rig: %s\n", err);
		return EIO;
	}
	return ns_start_store(r->ns, mem_store(r->m), r->signer);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	return remove(path);
}

static void rig_down(struct rig *r)
{
	ns_free(r->ns);
	mem_destroy(r->m);
	s3_destroy(r->signer);
	metrics_destroy(r->sign_metrics);
	creds_destroy(r->creds);
	nftw(r->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
