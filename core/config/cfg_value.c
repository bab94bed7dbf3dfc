/*
 * cfg_value: one-line errors, and converting an option's text into its
 * field (numbers with units, seconds, choices, booleans).
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
#include "base/num.h"

__attribute__((format(printf, 2, 3)))
int cfg_fail(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return EINVAL;
	p->failed = 1;
	n = snprintf(p->err, p->errlen, "imgfs: ");
	if (n < 0 || (size_t)n >= p->errlen)
		return EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	/* one line, whatever bytes the user's input held */
	for (char *s = p->err; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			*s = '?';
	return EINVAL;
}

int cfg_in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

int cfg_has_prefix_in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strncmp(s, *list, strlen(*list)) == 0)
			return 1;
	return 0;
}

const struct key_def *cfg_key_find(const char *name, size_t *idx)
{
	for (size_t i = 0; i < cfg_nkeys; i++) {
		if (strcmp(cfg_keys[i].name, name) == 0) {
			*idx = i;
			return &cfg_keys[i];
		}
	}
	return NULL;
}

const char *cfg_getenv(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++) {
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return (*envp)[n + 1] ? *envp + n + 1 : NULL;
	}
	return NULL;
}

/* ---- numbers ---------------------------------------------------------- */

static int unit_shift(const char *u, unsigned *shift)
{
	static const char units[] = "KMGTPE";
	const char *at;

	if (*u == '\0') {
		*shift = 0;
		return 0;
	}
	at = strchr(units, *u >= 'a' && *u <= 'z' ? *u - 'a' + 'A' : *u);
	if (!at || *at == '\0')
		return EINVAL;
	u++;
	if (*u == 'i')
		u++;
	if (*u == 'B' || *u == 'b')
		u++;
	if (*u)
		return EINVAL;
	*shift = 10u * (unsigned)(at - units + 1);
	return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	unsigned shift;
	int rc = num_parse_u64(s, &end, &v);

	if (rc)
		return rc;
	if (unit_shift(end, &shift))
		return EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return ERANGE;
	*out = v << shift;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	if ((*s < '0' || *s > '9') && *s != '.')
		return EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return EINVAL;
	*out = v;
	return 0;
}

static int parse_choice(const char *s, const char *const *choices, int *out)
{
	for (int i = 0; choices[i]; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return EINVAL;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on", NULL};
	static const char *const no[] = {"0", "false", "no", "off", NULL};

	if (cfg_in_list(s, yes))
		*out = 1;
	else if (cfg_in_list(s, no))
		*out = 0;
	else
		return EINVAL;
	return 0;
}

/* ---- converting one value --------------------------------------------- */

/* Append n bytes in the largest binary unit that divides it. */
static void add_size(struct buf *b, uint64_t n)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (n && n % 1024 == 0 && u < 5) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		buf_addf(b, "%llu", (unsigned long long)n);
	else
		buf_addf(b, "%llu%c", (unsigned long long)n, units[u]);
}

/* Describe the accepted values of k into buf, for an error message. */
void cfg_key_expect(const struct key_def *k, char *buf, size_t len)
{
	struct buf b = BUF_INIT;

	if (k->choices && k->kind != KIND_BOOL) {
		for (int i = 0; k->choices[i]; i++)
			buf_addf(&b, "%s%s", i ? "|" : "", k->choices[i]);
	} else if (k->kind == KIND_BOOL) {
		buf_adds(&b, "true|false");
	} else if (k->kind == KIND_SIZE) {
		buf_adds(&b, "a size from ");
		add_size(&b, k->min);
		buf_adds(&b, " to ");
		add_size(&b, k->max);
	} else if (k->kind != KIND_STR) {
		buf_addf(&b, "%s %llu..%llu",
			 k->kind == KIND_SECS ? "seconds" : "a number",
			 (unsigned long long)k->min, (unsigned long long)k->max);
	} else {
		buf_adds(&b, "a non-empty value");
	}
	snprintf(buf, len, "%s", b.data ? b.data : "");
	buf_release(&b);
}

static int convert_number(const struct key_def *k, const char *v, void *field)
{
	uint64_t n = 0;
	double d = 0;
	int rc;

	if (k->kind == KIND_SECS) {
		rc = parse_secs(v, &d);
		if (rc || d < (double)k->min || d > (double)k->max)
			return EINVAL;
		*(double *)field = d;
		return 0;
	}
	rc = k->kind == KIND_SIZE ? cfg_parse_size(v, &n)
				     : num_parse_u64(v, NULL, &n);
	if (rc || n < k->min || n > k->max)
		return EINVAL;
	if (k->kind == KIND_UINT)
		*(unsigned *)field = (unsigned)n;
	else
		*(uint64_t *)field = n;
	return 0;
}

/* Store v into the field of k. 0, EINVAL or ENOMEM. */
static int convert(struct cfg *c, const struct key_def *k, const char *v)
{
	void *field = (char *)c + k->off;
	char **sp = field;
	int i;

	switch (k->kind) {
	case KIND_STR:
		if (*v == '\0' || (k->choices && parse_choice(v, k->choices, &i)))
			return EINVAL;
		free(*sp);
		*sp = strdup(v);
		return *sp ? 0 : ENOMEM;
	case KIND_BOOL:
		return parse_bool(v, field);
	case KIND_ENUM:
		return parse_choice(v, k->choices, field);
	default:
		return convert_number(k, v, field);
	}
}

/* Say where a value came from, for error messages. */
static void origin(const struct parse_ctx *p, enum layer l, size_t i,
		   char *buf, size_t len)
{
	const struct raw *r = &p->raw[l][i];

	if (l == LAYER_ENV)
		snprintf(buf, len, " (from %s)", r->env);
	else if (l == LAYER_FILE)
		snprintf(buf, len, " (%s:%d)", p->ini_path ? p->ini_path : "",
			 r->line);
	else
		buf[0] = '\0';
}

/* Resolve key i through the layers and convert it. */
int cfg_resolve_key(struct parse_ctx *p, size_t i)
{
	const struct key_def *k = &cfg_keys[i];
	char where[PATH_MAX + 32], expect[96];
	const char *v = k->def;
	enum layer l;
	int rc;

	for (l = LAYER_OPT; l < LAYER_COUNT; l++) {
		if (p->raw[l][i].value) {
			v = p->raw[l][i].value;
			break;
		}
	}
	if (!v)
		return 0;
	rc = convert(p->c, k, v);
	if (rc == ENOMEM)
		return cfg_fail(p, "out of memory");
	if (rc == 0)
		return 0;
	if (l == LAYER_COUNT)
		return cfg_fail(p, "bad default for option '%s'", k->name);
	origin(p, l, i, where, sizeof(where));
	cfg_key_expect(k, expect, sizeof(expect));
	return cfg_fail(p, "bad value '%s' for option '%s'%s: expected %s", v,
		    k->name, where, expect);
}

int cfg_key_is_set(const struct parse_ctx *p, const char *name)
{
	size_t i;

	if (!cfg_key_find(name, &i))
		return 0;
	for (int l = 0; l < LAYER_COUNT; l++)
		if (p->raw[l][i].value)
			return 1;
	return 0;
}
