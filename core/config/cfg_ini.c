/*
 * cfg_ini: reading INI files of any line length, and the [imgfs] section
 * of the config file into the file layer.
 */
#include "config/cfg_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base/buf.h"
#include "base/log.h"

/* ---- INI files of any line length -------------------------------------- */

/*
 * inih reads a file in lines of at most INI_MAX_LINE bytes (200 in
 * Debian's build), which a session token easily exceeds. The reader below
 * hands inih a long line in pieces: the first as it starts, the rest as
 * indented continuation lines, which inih gives back under the same key;
 * the pieces are joined again before the caller's handler sees the value.
 * Pieces are cut where neither side is blank and the next byte cannot
 * start a comment or section, so the joins lose nothing.
 */
struct ini_reader {
	struct buf file;         /* the whole file; lines are cut in place */
	size_t next;             /* offset of the next physical line */
	char *line;              /* the physical line being handed out */
	size_t len, pos;         /* its length, and what inih has had */
	int lineno;              /* its number, from 1 */
	int piece;               /* index of the piece inih has now */
	int last;                /* that piece ends the physical line */
	int chunks;              /* lines given to inih so far */
	int *extra;              /* inih line numbers of continuation pieces */
	size_t nextra, extra_cap;
	struct buf value;        /* the value being joined */
	int joining;             /* value holds this line's first piece */
	int refused;             /* first line the handler refused, or 0 */
	int nomem;
	cfg_ini_handler handler;
	void *user;
};

static int piece_cut_ok(const char *s, size_t k)
{
	return !strchr(" \t", s[k - 1]) && !strchr(" \t;#[", s[k]);
}

/* How many bytes of s (n left) fit in room, cut where piece_cut_ok. */
static size_t piece_len(const char *s, size_t n, size_t room)
{
	if (n <= room)
		return n;
	for (size_t k = room; k > room / 2; k--)
		if (piece_cut_ok(s, k))
			return k;
	return room;
}

static int note_extra(struct ini_reader *r)
{
	if (r->nextra == r->extra_cap) {
		size_t cap = r->extra_cap ? 2 * r->extra_cap : 16;
		int *grown = realloc(r->extra, cap * sizeof(*grown));

		if (!grown)
			return ENOMEM;
		r->extra = grown;
		r->extra_cap = cap;
	}
	r->extra[r->nextra++] = r->chunks;
	return 0;
}

static int next_physical_line(struct ini_reader *r)
{
	char *start = r->file.data + r->next, *nl;

	if (r->next >= r->file.len)
		return EOF;
	nl = memchr(start, '\n', r->file.len - r->next);
	if (nl)
		*nl = '\0';
	r->next = nl ? (size_t)(nl - r->file.data) + 1 : r->file.len;
	r->line = start;
	r->len = strlen(start);
	while (r->len && r->line[r->len - 1] == '\r')
		r->line[--r->len] = '\0';
	r->pos = 0;
	r->lineno++;
	r->piece = 0;
	r->joining = 0;
	return 0;
}

/* Read the whole file, at most CFG_MAX_FILE bytes (files in /proc claim a
 * size of 0, so count what is really read). */
static int slurp(FILE *f, struct buf *b)
{
	char chunk[8192];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > CFG_MAX_FILE)
			return EFBIG;
		if (buf_add(b, chunk, n))
			return ENOMEM;
	}
	return ferror(f) ? EIO : 0;
}

static char *ini_read_piece(char *str, int num, void *stream)
{
	struct ini_reader *r = stream;
	size_t room, n, lead;
	char first;

	if (num < 8 || r->nomem)
		return NULL;
	if (r->piece < 0 || r->pos >= r->len) {
		if (next_physical_line(r))
			return NULL;
		/* a comment needs no continuation: drop what does not fit */
		first = r->line[strspn(r->line, " \t")];
		if ((first == ';' || first == '#') && r->len > (size_t)num - 2)
			r->len = (size_t)num - 2;
	} else {
		r->piece++;
	}
	r->chunks++;
	lead = r->piece > 0;
	if (lead && note_extra(r)) {
		r->nomem = 1;
		return NULL;
	}
	room = (size_t)num - 2 - lead;
	n = piece_len(r->line + r->pos, r->len - r->pos, room);
	snprintf(str, (size_t)num, "%s%.*s\n", lead ? " " : "", (int)n,
		 r->line + r->pos);
	r->pos += n;
	r->last = r->pos >= r->len;
	return str;
}

static int ini_join(void *user, const char *section, const char *name,
		    const char *value)
{
	struct ini_reader *r = user;

	if (r->piece == 0) {
		buf_reset(&r->value);
		r->joining = 1;
	} else if (!r->joining) {
		return 1; /* the rest of a long line that held no key */
	}
	if (buf_adds(&r->value, value)) {
		r->nomem = 1;
		return 1;
	}
	if (!r->last)
		return 1;
	r->joining = 0;
	if (!r->handler(r->user, section, name, r->value.data ? r->value.data
							       : "",
			r->lineno) &&
	    !r->refused)
		r->refused = r->lineno;
	return 1;
}

/* The physical line of inih's line number c. */
static int physical_line(const struct ini_reader *r, int c)
{
	int before = 0;

	for (size_t i = 0; i < r->nextra && r->extra[i] <= c; i++)
		before++;
	return c - before;
}

static int ini_open(const char *path, struct buf *file)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	int rc;

	if (!f)
		return errno;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CFG_MAX_FILE)
		rc = EFBIG;
	else
		rc = slurp(f, file);
	fclose(f);
	return rc;
}

int cfg_ini_read(const char *path, cfg_ini_handler handler, void *user,
		 int *bad_line)
{
	struct ini_reader r = {.handler = handler, .user = user, .piece = -1};
	int rc, syntax = 0;

	*bad_line = 0;
	rc = ini_open(path, &r.file);
	if (!rc && r.file.len) {
		rc = ini_parse_stream(ini_read_piece, &r, ini_join, &r);
		syntax = rc > 0 ? physical_line(&r, rc) : 0;
		rc = r.nomem || rc < 0 ? ENOMEM : 0;
	}
	buf_release(&r.file);
	free(r.extra);
	buf_release(&r.value);
	if (rc)
		return rc;
	*bad_line = r.refused && (!syntax || r.refused <= syntax) ? r.refused
								 : syntax;
	return *bad_line ? EBADMSG : 0;
}

/* ---- the INI file ----------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int ini_error(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;

	if (p->ini_err_line)
		return 0;
	p->ini_err_line = p->ini_line;
	va_start(ap, fmt);
	vsnprintf(p->ini_msg, sizeof(p->ini_msg), fmt, ap);
	va_end(ap);
	return 0;
}

static int on_ini_key(void *user, const char *section, const char *name,
		      const char *value, int line)
{
	struct parse_ctx *p = user;
	const struct key_def *k;
	size_t i;

	p->ini_line = line;
	if (strcmp(section, "imgfs") != 0) {
		if (*section == '\0')
			return ini_error(p, "key '%s' outside the [imgfs] section",
					 name);
		return ini_error(p, "unknown section [%s] (expected [imgfs])",
				 section);
	}
	k = cfg_key_find(name, &i);
	if (!k)
		return ini_error(p, "unknown key '%s'", name);
	if (p->raw[LAYER_FILE][i].value)
		return ini_error(p, "key '%s' set again (first on line %d)",
				 name, p->raw[LAYER_FILE][i].line);
	if (cfg_raw_set(p, LAYER_FILE, i, value))
		return 0;
	p->raw[LAYER_FILE][i].line = p->ini_line;
	return 1;
}

int cfg_read_config(struct parse_ctx *p)
{
	int rc, line;

	p->ini_path = p->config_path;
	rc = cfg_ini_read(p->config_path, on_ini_key, p, &line);
	if (p->failed)
		return EINVAL;
	if (rc == EBADMSG && line == p->ini_err_line)
		return cfg_fail(p, "%s:%d: %s", p->config_path, line, p->ini_msg);
	if (rc == EBADMSG)
		return cfg_fail(p, "%s:%d: syntax error (expected [imgfs] or "
			    "key = value)", p->config_path, line);
	if (rc == EFBIG)
		return cfg_fail(p, "config file %s: not a regular file of at most "
			    "1 MiB", p->config_path);
	if (rc)
		return cfg_fail(p, "cannot read config file %s: %s", p->config_path,
			    strerror(rc));
	p->c->config_file = strdup(p->config_path);
	return p->c->config_file ? 0 : cfg_fail(p, "out of memory");
}
