/*
 * cfg_int: the configuration parser's private parts, shared by
 * cfg_table.c (the option table and --help), cfg_value.c (converting
 * values), cfg_ini.c (INI files) and cfg.c (layers, derived values, entry
 * points). Not for use outside them.
 *
 * The parser (see cfg.h):
 *
 * Every option is one row of key_table: its name, the field it sets, the
 * environment variables that may supply it, its default and its bounds.
 * Parsing collects raw strings in three layers (-o, environment, file),
 * then resolves each key once, highest layer first, and converts it into
 * struct cfg. Values that depend on others (endpoint, addressing, cache
 * directory, shared-file paths) are derived afterwards.
 */
#ifndef IMGFS_CFG_INT_H
#define IMGFS_CFG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/cfg.h"

#define KIB 1024ull
/* A config file is small; refuse devices and anything huge. */
#define CFG_MAX_FILE (1024 * 1024)
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

enum key_kind {
	KIND_STR,   /* char *, optionally one of choices */
	KIND_UINT,  /* unsigned within min..max */
	KIND_SIZE,  /* uint64_t with a binary unit, within min..max */
	KIND_U64,   /* uint64_t, plain number within min..max */
	KIND_SECS,  /* double seconds within min..max */
	KIND_BOOL,  /* int 0/1; "-o name" alone means true */
	KIND_ENUM,  /* int: the index of the value in choices */
};

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off;                 /* field in struct cfg */
	const char *env[2];         /* environment variables, first wins */
	const char *def;            /* default text; NULL: none or derived */
	uint64_t min, max;          /* bounds of numeric kinds */
	const char *const *choices; /* NULL-terminated accepted values */
	const char *help;           /* one line for --help */
	const char *def_text;       /* --help's words for a derived default */
};
/* Room for every row of the option table (checked in cfg_table.c). */
#define CFG_KEY_MAX 96

/* The option table, in --help order, and its length. */
extern const struct key_def cfg_keys[];
extern const size_t cfg_nkeys;

enum layer { LAYER_OPT, LAYER_ENV, LAYER_FILE, LAYER_COUNT };

/* One raw value and where it came from. */
struct raw {
	char *value;     /* owned */
	const char *env; /* LAYER_ENV: the variable's name */
	int line;        /* LAYER_FILE: its line */
};
/* Option lists for FUSE and mount(8) (cfg_table.c). */
extern const char *const cfg_fuse_flags[];
extern const char *const cfg_fuse_prefixes[];
extern const char *const cfg_ignored_flags[];
extern const char *const cfg_ignored_prefixes[];

struct parse_ctx {
	struct cfg *c;
	char **envp;
	char *err;
	size_t errlen;
	int failed;                         /* err holds a message */
	struct raw raw[LAYER_COUNT][CFG_KEY_MAX];
	const char *pos[2];                 /* BUCKET, MOUNTPOINT */
	int npos;
	char *config_path;                  /* owned */
	char **fuse;                        /* owned, NULL-terminated */
	size_t nfuse;
	int help, version;
	/* while reading the INI file */
	const char *ini_path;
	int ini_line;                       /* line of the key at hand */
	int ini_err_line;                   /* first handler error, or 0 */
	char ini_msg[256];                  /* and its message */
	int in_imgfs;                       /* current section is [imgfs] */
};

int cfg_raw_set(struct parse_ctx *p, enum layer l, size_t i, const char *v);

int cfg_read_config(struct parse_ctx *p);

char *cfg_help_text(void);

__attribute__((format(printf, 2, 3)))
int cfg_fail(struct parse_ctx *p, const char *fmt, ...);

int cfg_in_list(const char *s, const char *const *list);

int cfg_has_prefix_in(const char *s, const char *const *list);

const struct key_def *cfg_key_find(const char *name, size_t *idx);

/* Describe the accepted values of k into buf, for an error message. */
void cfg_key_expect(const struct key_def *k, char *buf, size_t len);

/* Resolve key i through the layers and convert it. */
int cfg_resolve_key(struct parse_ctx *p, size_t i);

int cfg_key_is_set(const struct parse_ctx *p, const char *name);

/* PROTOTYPES */

#endif
