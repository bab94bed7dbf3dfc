/*
 * ns_life: the namespace's life cycle (see ns.h): made without threads,
 * the bucket and cache checked before daemonising, the services started
 * over a store, everything freed; and error counting by kind.
 */
#include "ns/ns_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/membudget.h"
#include "image/cache.h"

struct ns *ns_new(const struct cfg *cfg, struct creds *creds)
{
	struct ns *ns = calloc(1, sizeof(*ns));

	if (!ns)
		return NULL;
	ns->cfg = cfg;
	ns->creds = creds;
	ns->uid = getuid();
	ns->gid = getgid();
	ns->started = time(NULL);
	ns->upconf.part_size = cfg->fs.part_size;
	ns->upconf.parts_in_flight = cfg->fs.parts_in_flight;
	ns->upconf.spool_dir = cfg->cache.dir;
	ns->upconf.tee_spool = 1; /* seeking back into a streamed file works */
	ns->spool_budget = cfg->cache.spool_max
				   ? membudget_create(cfg->cache.spool_max, NULL)
				   : NULL;
	ns->upconf.spool_budget = ns->spool_budget;
	ns->mime = mime_create();
	ns->upconf.mime = ns->mime;
	ns->metrics = metrics_create();
	/* 0 (a cfg made in code, not parsed): unbounded */
	ns->budget = ns->metrics && cfg->fs.memory_max
			     ? membudget_create(cfg->fs.memory_max, ns->metrics)
			     : NULL;
	ns->upconf.budget = ns->budget;
	ns->meta = meta_create(cfg->fs.metadata_ttl);
	ns->writers = hmap_create();
	ns->local_dirs = hmap_create();
	ns->seen = hmap_create();
	ns->gallery_made = hmap_create();
	if (!ns->metrics || (cfg->fs.memory_max && !ns->budget) || !ns->meta ||
	    !ns->mime || !ns->writers || !ns->local_dirs || !ns->seen ||
	    !ns->gallery_made || (cfg->cache.spool_max && !ns->spool_budget) ||
	    pthread_mutex_init(&ns->lock, NULL)) {
		ns_free(ns);
		errno = ENOMEM;
		return NULL;
	}
	return ns;
}

/* Open and close the two databases of the cache directory, so that one
 * that cannot be used stops the mount while the terminal still sees why. */
static int check_cache_dir(struct ns *ns, char *err, size_t errlen)
{
	struct journal *j = journal_open(ns->cfg->cache.dir);
	struct cache *c;

	if (!j) {
		snprintf(err, errlen, "cannot open the upload journal %s/uploads.db "
			 "(move it away to start afresh): %s",
			 ns->cfg->cache.dir, strerror(errno));
		return errno ? errno : EIO;
	}
	journal_close(j);
	c = cache_open(&ns->cfg->cache, ns->metrics);
	if (!c) {
		snprintf(err, errlen, "cannot open the thumbnail cache in %s: %s",
			 ns->cfg->cache.dir, strerror(errno));
		return errno ? errno : EIO;
	}
	cache_close(c);
	return 0;
}

/* The check's client fails fast: a silent or unreachable endpoint must stop
 * the mount in seconds, not after every retry of a long timeout. */
#define NS_CHECK_TIMEOUT 5
#define NS_CHECK_RETRIES 1

static void check_describe(struct ns *ns, struct s3_client *s3, int rc,
			   char *err, size_t errlen)
{
	char cause[320];

	if (s3_last_transport_error(s3, cause, sizeof(cause)))
		snprintf(err, errlen, "cannot connect to %s: %s",
			 ns->cfg->s3.endpoint, cause);
	else
		snprintf(err, errlen, "cannot list bucket '%s' at %s: %s",
			 ns->cfg->s3.bucket, ns->cfg->s3.endpoint,
			 rc == EACCES ? "access denied"
			 : rc == ENOENT ? "no such bucket"
					: strerror(rc));
}

int ns_check(struct ns *ns, char *err, size_t errlen)
{
	struct s3_conf conf = ns->cfg->s3;
	struct store_list_page page = {0};
	struct s3_client *s3;
	int rc;

	if (conf.request_timeout > NS_CHECK_TIMEOUT)
		conf.request_timeout = NS_CHECK_TIMEOUT;
	if (conf.connect_timeout > NS_CHECK_TIMEOUT)
		conf.connect_timeout = NS_CHECK_TIMEOUT;
	if (conf.retries > NS_CHECK_RETRIES)
		conf.retries = NS_CHECK_RETRIES;
	if (conf.retry_window > NS_CHECK_TIMEOUT)
		conf.retry_window = NS_CHECK_TIMEOUT;
	s3 = s3_create(&conf, ns->creds, ns->metrics);
	if (!s3) {
		snprintf(err, errlen, "cannot create the S3 client: %s",
			 strerror(errno));
		return errno;
	}
	/* the outcome is err's one line; -d shows each attempt */
	log_quiet(!log_enabled(LOG_LVL_DEBUG));
	rc = store_list(s3_store(s3), ns->cfg->fs.uploads_prefix, "/", NULL, 1, &page);
	log_quiet(0);
	store_list_page_release(&page);
	if (rc)
		check_describe(ns, s3, rc, err, errlen);
	s3_destroy(s3);
	return rc ? rc : check_cache_dir(ns, err, errlen);
}

/* The data cache in cache_dir/data; without it reads still work. */
static void ns_open_data_cache(struct ns *ns)
{
	struct buf dir = BUF_INIT;

	if (!ns->cfg->cache.data_max_bytes)
		return;
	if (buf_addf(&dir, "%s/data", ns->cfg->cache.dir))
		return;
	ns->data = datacache_open(dir.data, ns->cfg->cache.data_max_bytes,
				  ns->metrics);
	if (!ns->data)
		log_warn("data cache %s: %s (reading without it)", dir.data,
			 strerror(errno));
	buf_release(&dir);
}

int ns_start(struct ns *ns)
{
	ns->own_s3 = s3_create(&ns->cfg->s3, ns->creds, ns->metrics);
	if (!ns->own_s3)
		return errno;
	return ns_start_store(ns, s3_store(ns->own_s3), ns->own_s3);
}

int ns_start_store(struct ns *ns, struct store *store,
		   struct s3_client *signer)
{
	ns->s3 = signer;
	ns_open_data_cache(ns);
	ns->cstore = ns->data ? cachestore_create(store, ns->data,
						  ns->cfg->fs.part_size)
			      : NULL;
	ns->store = ns->cstore ? ns->cstore : store;
	ns->journal = journal_open(ns->cfg->cache.dir);
	if (!ns->journal || journal_start(ns->journal, ns->store))
		return errno ? errno : EIO;
	ns->upconf.journal = ns->journal;
	ns->thumbs = thumbs_create(&ns->cfg->thumb, &ns->cfg->cache,
				   &ns->cfg->fs, ns->store, ns->metrics);
	if (!ns->thumbs)
		return errno ? errno : EIO;
	ns->links = links_create(&ns->cfg->link, &ns->cfg->fs, ns->s3, ns->store,
				 ns->creds, ns->thumbs, ns->metrics);
	if (!ns->links)
		return errno ? errno : EIO;
	ns->uplinks = uplinks_create(&ns->cfg->link, ns->s3, ns->creds);
	if (!ns->uplinks)
		return errno ? errno : EIO;
	return 0;
}

void ns_free(struct ns *ns)
{
	if (!ns)
		return;
	ns_release_all(ns);
	journal_close(ns->journal); /* before the client its janitor uses */
	uplinks_destroy(ns->uplinks);
	links_destroy(ns->links);
	thumbs_destroy(ns->thumbs);
	cachestore_destroy(ns->cstore);
	s3_destroy(ns->own_s3);
	datacache_close(ns->data);
	meta_destroy(ns->meta);
	mime_destroy(ns->mime);
	hmap_destroy(ns->writers, NULL);
	hmap_destroy(ns->local_dirs, NULL);
	hmap_destroy(ns->seen, free);
	ns_gallery_free_made(ns);
	membudget_destroy(ns->budget);
	metrics_destroy(ns->metrics);
	membudget_destroy(ns->spool_budget);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}

void ns_count_error(struct ns *ns, int is_change, int rc)
{
	if (!is_change && rc == EIO)
		metrics_error(ns->metrics, ME_READ_EIO);
	else if (is_change && (rc == EROFS || rc == EACCES || rc == EPERM))
		metrics_error(ns->metrics, ME_WRITE_REFUSED);
}
