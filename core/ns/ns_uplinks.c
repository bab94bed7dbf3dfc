/*
 * ns_uplinks: the .links/upload/ area of the namespace (see uplinks.h for
 * what its files hold).
 *
 * .links/upload/ mirrors the folders of uploads/: each folder, the area's
 * root standing for uploads/ itself, lists its subfolders and two files,
 * post.json and index.html, made by the uplinks service for that folder's
 * key prefix. A folder of uploads/ named post.json or index.html is not
 * shown here (the file of that name is). The content is signed afresh at
 * every open; stat makes it too, to report its exact size.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "ns/ns_int.h"

#define UPLINK_POST "post.json"
#define UPLINK_PAGE "index.html"

enum uplink_kind { UK_DIR, UK_POST, UK_PAGE };

int ns_uplink_reserved(const char *name)
{
	return !strcmp(name, UPLINK_POST) || !strcmp(name, UPLINK_PAGE);
}

/* What rel names, and the uploads/ folder it belongs to ("" for the top). */
static int classify(const char *rel, struct buf *folder,
		    enum uplink_kind *kind)
{
	const char *slash = strrchr(rel, '/');
	const char *last = slash ? slash + 1 : rel;
	size_t dir_len = slash ? (size_t)(slash - rel) : 0;

	*kind = UK_DIR;
	if (!strcmp(last, UPLINK_POST))
		*kind = UK_POST;
	else if (!strcmp(last, UPLINK_PAGE))
		*kind = UK_PAGE;
	if (*kind == UK_DIR)
		return buf_adds(folder, rel);
	return buf_add(folder, rel, dir_len);
}

/* Is folder a folder of uploads/? 0 or ENOENT (or an errno of the lookup). */
static int folder_exists(struct ns *ns, const char *folder)
{
	struct meta_attr m;
	int rc;

	if (!*folder)
		return 0;
	rc = ns_upload_attr(ns, folder, &m);
	if (!rc && !m.is_dir)
		rc = ENOENT;
	return rc;
}

/* The file of kind for the uploads/ folder folder. */
static int make(struct ns *ns, enum uplink_kind kind, const char *folder,
		struct buf *out)
{
	struct buf prefix = BUF_INIT;
	int rc = ns_dir_prefix(ns, folder, &prefix);

	if (!rc && kind == UK_POST)
		rc = uplinks_post_json(ns->uplinks, prefix.data, time(NULL), out);
	else if (!rc)
		rc = uplinks_page(ns->uplinks, prefix.data, time(NULL), out);
	buf_release(&prefix);
	return rc;
}

/* The size of the file of kind, as an open would make it. */
static int made_size(struct ns *ns, enum uplink_kind kind, const char *folder,
		     uint64_t *size)
{
	struct buf content = BUF_INIT;
	int rc = make(ns, kind, folder, &content);

	*size = content.len;
	buf_release(&content);
	return rc;
}

int ns_uplink_attr(struct ns *ns, const char *rel, struct ns_attr *out)
{
	struct buf folder = BUF_INIT;
	enum uplink_kind kind;
	int rc = classify(rel, &folder, &kind);

	if (!rc)
		rc = folder_exists(ns, folder.data ? folder.data : "");
	memset(out, 0, sizeof(*out));
	if (!rc && kind == UK_DIR) {
		out->is_dir = 1;
		out->mtime = ns->started;
	} else if (!rc) {
		out->mtime = time(NULL);
		rc = made_size(ns, kind, folder.data ? folder.data : "",
			       &out->size);
	}
	buf_release(&folder);
	return rc;
}

int ns_uplink_make(struct ns *ns, const char *rel, struct buf *out)
{
	struct buf folder = BUF_INIT;
	enum uplink_kind kind;
	int rc = classify(rel, &folder, &kind);

	if (!rc && kind == UK_DIR)
		rc = EISDIR;
	if (!rc)
		rc = folder_exists(ns, folder.data ? folder.data : "");
	if (!rc)
		rc = make(ns, kind, folder.data ? folder.data : "", out);
	buf_release(&folder);
	return rc;
}

int ns_uplink_files(struct ns *ns, const char *folder, ns_fill_fn fn,
		    void *arg)
{
	static const struct {
		const char *name;
		enum uplink_kind kind;
	} files[] = {{UPLINK_POST, UK_POST}, {UPLINK_PAGE, UK_PAGE}};
	struct ns_attr a;
	int rc = 0;

	for (size_t i = 0; i < sizeof(files) / sizeof(*files) && !rc; i++) {
		memset(&a, 0, sizeof(a));
		a.mtime = time(NULL);
		rc = made_size(ns, files[i].kind, folder, &a.size);
		if (!rc && fn(arg, files[i].name, &a))
			break;
	}
	return rc;
}
