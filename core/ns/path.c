/* path: classification of mount paths (see path.h). */
#include "ns/path.h"

#include <errno.h>
#include <string.h>

struct area_name {
	const char *name;
	enum path_area area;
};

/* Top-level names, then the names inside .links/. */
static const struct area_name top_names[] = {
	{"uploads", PA_UPLOADS},
	{"thumbnails", PA_THUMBS},
	{".links", PA_LINKS},
	{".metrics", PA_METRICS},
};
static const struct area_name link_names[] = {
	{"uploads", PA_LINKS_UPLOADS},
	{"thumbnails", PA_LINKS_THUMBS},
	{"index.html", PA_LINKS_INDEX},
	{"upload", PA_LINKS_UPLOAD},
	{"gallery", PA_LINKS_GALLERY},
};

#define THUMBS_NAME "thumbnails"
#define THUMBS_NAME_LEN (sizeof(THUMBS_NAME) - 1)

/* Is the component of len bytes at p "thumbnails-N"? Then N, else 0. */
static unsigned sized_thumbs(const char *p, size_t len)
{
	unsigned n = 0;
	size_t digits = len - THUMBS_NAME_LEN - 1;

	if (len < THUMBS_NAME_LEN + 2 || digits > 5 ||
	    memcmp(p, THUMBS_NAME "-", THUMBS_NAME_LEN + 1) != 0 ||
	    p[THUMBS_NAME_LEN + 1] == '0')
		return 0;
	for (size_t i = THUMBS_NAME_LEN + 1; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		n = n * 10 + (unsigned)(p[i] - '0');
	}
	return n;
}

/* Match the first component of p against names; *rest is what follows it
 * ("" or the remainder after the slash). "thumbnails-N" matches
 * "thumbnails" with *size set to N (else 0). */
static int match(const char *p, const struct area_name *names, size_t n,
		 enum path_area *area, const char **rest, unsigned *size)
{
	size_t len = strcspn(p, "/");
	const char *name = p;
	size_t name_len = len;

	*size = sized_thumbs(p, len);
	if (*size) {
		name = THUMBS_NAME;
		name_len = THUMBS_NAME_LEN;
	}
	for (size_t i = 0; i < n; i++) {
		if (strlen(names[i].name) == name_len &&
		    memcmp(name, names[i].name, name_len) == 0) {
			*area = names[i].area;
			*rest = p[len] ? p + len + 1 : p + len;
			return 0;
		}
	}
	return ENOENT;
}

static int leaf_area(enum path_area a)
{
	return a == PA_METRICS || a == PA_LINKS_INDEX;
}

/* Is every name in rel within the kernel's NAME_MAX? (FUSE passes longer
 * ones on; a file made with one could never be listed.) */
static int names_fit(const char *rel)
{
	while (*rel) {
		size_t len = strcspn(rel, "/");

		if (len > PATH_NAME_MAX)
			return 0;
		rel += len;
		while (*rel == '/')
			rel++;
	}
	return 1;
}

int path_parse(const char *path, size_t prefix_len, struct path_info *out)
{
	const char *p = path, *rest;
	enum path_area area;
	unsigned size;

	while (*p == '/')
		p++;
	out->area = PA_ROOT;
	out->rel = p;
	out->thumb_size = 0;
	if (!*p)
		return 0;
	if (match(p, top_names, sizeof(top_names) / sizeof(*top_names), &area,
		  &rest, &size))
		return ENOENT;
	if (area == PA_LINKS && *rest) {
		if (match(rest, link_names,
			  sizeof(link_names) / sizeof(*link_names), &area,
			  &rest, &size))
			return ENOENT;
	}
	if (size && area != PA_THUMBS && area != PA_LINKS_THUMBS)
		return ENOENT;
	if ((leaf_area(area) || area == PA_LINKS) && *rest)
		return ENOENT;
	if (strlen(rest) + prefix_len > PATH_KEY_MAX || !names_fit(rest))
		return ENAMETOOLONG;
	out->area = area;
	out->rel = rest;
	out->thumb_size = size;
	return 0;
}

const char *path_split(const char *rel, char *parent)
{
	const char *slash = strrchr(rel, '/');

	if (!slash) {
		parent[0] = '\0';
		return rel;
	}
	memcpy(parent, rel, (size_t)(slash - rel));
	parent[slash - rel] = '\0';
	return slash + 1;
}

int path_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > PATH_NAME_MAX)
		return 0;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

/* Length of the UTF-8 sequence that starts with byte c, 0 if invalid. */
static int utf8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	return 0;
}

int path_utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = utf8_len(*p);

		if (!n)
			return 0;
		for (int i = 1; i < n; i++)
			if ((p[i] & 0xC0) != 0x80)
				return 0;
		if ((n == 3 && p[0] == 0xE0 && p[1] < 0xA0) ||
		    (n == 3 && p[0] == 0xED && p[1] > 0x9F) ||
		    (n == 4 && p[0] == 0xF0 && p[1] < 0x90) ||
		    (n == 4 && p[0] == 0xF4 && p[1] > 0x8F))
			return 0;
		p += n;
	}
	return 1;
}
