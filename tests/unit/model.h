/*
 * model: the reference model of docs/SEMANTICS.md for uploads/ and the
 * seeded generator of op sequences it can predict, for test_model.c (see
 * there). Header-only, static.
 */
#ifndef IMGFS_TEST_MODEL_H
#define IMGFS_TEST_MODEL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4
#define NNAMES 3
#define MAX_OPS 256
#define MAX_INO (MAX_OPS + 1)

static const char *const NAMES[NNAMES] = {"a", "b", "d/c"};

enum kind { K_OPEN_W, K_OPEN_R, K_WRITE, K_READ, K_TRUNCATE, K_FTRUNCATE,
	    K_RENAME, K_UNLINK, K_MKDIR, K_RMDIR, K_FSYNC, K_CLOSE };

static const char *const KIND_NAMES[] = {"open_w", "open_r", "write", "read",
	"truncate", "ftruncate", "rename", "unlink", "mkdir", "rmdir", "fsync",
	"close"};

struct op {
	enum kind k;
	int slot;      /* descriptor ops */
	int name, to;  /* indexes into NAMES */
	int trunc;     /* open_w: O_TRUNC */
	unsigned off, len;
};

/* ---- the model ----------------------------------------------------------- */

struct bytes {
	unsigned char *d;
	size_t len;
};

struct mfd {
	int used, ino, w, stale, writer; /* writer: the slot read from, or -1 */
	struct bytes snap;               /* what a plain reader reads */
};

struct model {
	struct bytes ino[MAX_INO];
	int nino;
	int names[NNAMES]; /* inode or -1 */
	int dir_made;
	struct mfd fds[SLOTS];
};

/* The expected outcome of one op. */
struct want {
	int err;          /* 0 or errno */
	int may_eio;      /* EIO is allowed too */
	size_t n;         /* write: bytes */
	struct bytes got; /* read: bytes (owned by the model) */
};

static void bytes_set_len(struct bytes *b, size_t len)
{
	if (len > b->len) {
		unsigned char *d = realloc(b->d, len);

		if (!d)
			abort();
		memset(d + b->len, 0, len - b->len);
		b->d = d;
	}
	b->len = len;
}

static void bytes_copy(struct bytes *dst, const struct bytes *src)
{
	free(dst->d);
	dst->d = malloc(src->len + 1);
	if (!dst->d)
		abort();
	memcpy(dst->d, src->d ? src->d : (unsigned char *)"", src->len);
	dst->len = src->len;
}

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < NNAMES; i++)
		m->names[i] = -1;
}

static void model_free(struct model *m)
{
	for (int i = 0; i < m->nino; i++)
		free(m->ino[i].d);
	for (int s = 0; s < SLOTS; s++)
		free(m->fds[s].snap.d);
}

static int dir_exists(const struct model *m)
{
	return m->dir_made || m->names[2] >= 0;
}

static int parent_ok(const struct model *m, int name)
{
	return name != 2 || dir_exists(m);
}

static int writer_of(const struct model *m, int ino)
{
	for (int s = 0; s < SLOTS; s++)
		if (m->fds[s].used && m->fds[s].ino == ino && m->fds[s].w)
			return s;
	return -1;
}

static int named(const struct model *m, int ino)
{
	for (int i = 0; i < NNAMES; i++)
		if (m->names[i] == ino)
			return 1;
	return 0;
}

/* The object of ino changed or moved: plain readers may now see EIO. */
static void committed(struct model *m, int ino)
{
	for (int s = 0; s < SLOTS; s++)
		if (m->fds[s].used && m->fds[s].ino == ino && !m->fds[s].w &&
		    m->fds[s].writer < 0)
			m->fds[s].stale = 1;
}

static unsigned char data_byte(unsigned op_index, unsigned i)
{
	uint32_t x = op_index * 2654435761u + i * 40503u + 17u;

	x ^= x >> 13;
	x *= 0x5bd1e995u;
	return (unsigned char)(x >> 24);
}

static void data_for(unsigned op_index, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = data_byte(op_index, (unsigned)i);
}

static void m_open(struct model *m, const struct op *op, struct want *w)
{
	struct mfd *f = &m->fds[op->slot];
	int ino = m->names[op->name];

	if (op->k == K_OPEN_W && !parent_ok(m, op->name)) {
		w->err = ENOENT;
		return;
	}
	if (op->k == K_OPEN_R && ino < 0) {
		w->err = ENOENT;
		return;
	}
	if (ino < 0) {
		ino = m->names[op->name] = m->nino++;
		memset(&m->ino[ino], 0, sizeof(m->ino[ino]));
	} else if (op->k == K_OPEN_W && op->trunc) {
		m->ino[ino].len = 0;
	}
	free(f->snap.d);
	memset(f, 0, sizeof(*f));
	f->used = 1;
	f->ino = ino;
	f->w = op->k == K_OPEN_W;
	f->writer = f->w ? -1 : writer_of(m, ino);
	if (!f->w && f->writer < 0)
		bytes_copy(&f->snap, &m->ino[ino]);
}

static void m_read(struct model *m, const struct op *op, struct want *w)
{
	const struct mfd *f = &m->fds[op->slot];
	const struct bytes *src = f->w || f->writer >= 0 ? &m->ino[f->ino]
							   : &f->snap;
	size_t off = op->off < src->len ? op->off : src->len;
	size_t n = src->len - off < op->len ? src->len - off : op->len;

	w->got.d = src->d ? src->d + off : NULL;
	w->got.len = n;
	w->may_eio = !f->w && f->writer < 0 && f->stale;
}

static void m_rename(struct model *m, const struct op *op, struct want *w)
{
	int ino = m->names[op->name], old;

	if (ino < 0 || !parent_ok(m, op->to)) {
		w->err = ENOENT;
		return;
	}
	old = m->names[op->to];
	if (old >= 0)
		committed(m, old);
	m->names[op->to] = ino;
	m->names[op->name] = -1;
	committed(m, ino);
}

static void m_close(struct model *m, const struct op *op)
{
	struct mfd *f = &m->fds[op->slot];

	if (f->w && named(m, f->ino))
		committed(m, f->ino);
	if (op->k == K_CLOSE) {
		free(f->snap.d);
		memset(f, 0, sizeof(*f));
	}
}

/* Apply op (number i) to the model; *w gets what the namespace must do. */
static void model_step(struct model *m, const struct op *op, unsigned i,
		       struct want *w)
{
	struct bytes *d;
	int ino;

	memset(w, 0, sizeof(*w));
	switch (op->k) {
	case K_OPEN_W:
	case K_OPEN_R:
		m_open(m, op, w);
		return;
	case K_WRITE:
		d = &m->ino[m->fds[op->slot].ino];
		if (op->off + op->len > d->len)
			bytes_set_len(d, op->off + op->len);
		data_for(i, d->d + op->off, op->len);
		w->n = op->len;
		return;
	case K_READ:
		m_read(m, op, w);
		return;
	case K_FTRUNCATE:
		bytes_set_len(&m->ino[m->fds[op->slot].ino], op->len);
		return;
	case K_TRUNCATE:
		ino = m->names[op->name];
		if (ino < 0) {
			w->err = ENOENT;
			return;
		}
		bytes_set_len(&m->ino[ino], op->len);
		if (writer_of(m, ino) < 0)
			committed(m, ino);
		return;
	case K_FSYNC:
	case K_CLOSE:
		m_close(m, op);
		return;
	case K_UNLINK:
		ino = m->names[op->name];
		if (ino < 0) {
			w->err = ENOENT;
			return;
		}
		m->names[op->name] = -1;
		committed(m, ino);
		return;
	case K_RENAME:
		m_rename(m, op, w);
		return;
	case K_MKDIR:
		if (dir_exists(m))
			w->err = EEXIST;
		else
			m->dir_made = 1;
		return;
	case K_RMDIR:
		if (!dir_exists(m))
			w->err = ENOENT;
		else if (m->names[2] >= 0)
			w->err = ENOTEMPTY;
		else
			m->dir_made = 0;
		return;
	}
}

/* ---- the generator ------------------------------------------------------- */

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd_next(s) % n);
}

static int pick_slot(uint64_t *s, const struct model *m, int writers_only)
{
	int c[SLOTS], n = 0;

	for (int i = 0; i < SLOTS; i++)
		if (m->fds[i].used && (!writers_only || m->fds[i].w))
			c[n++] = i;
	return n ? c[rnd_below(s, (unsigned)n)] : -1;
}

static int has_readers_of(const struct model *m, int slot)
{
	for (int i = 0; i < SLOTS; i++)
		if (m->fds[i].used && m->fds[i].writer == slot)
			return 1;
	return 0;
}

static int free_slot(const struct model *m)
{
	for (int i = 0; i < SLOTS; i++)
		if (!m->fds[i].used)
			return i;
	return -1;
}

/* A random op the model can predict in its state. */
static struct op gen_op(uint64_t *s, const struct model *m)
{
	static const enum kind kinds[] = {K_OPEN_W, K_OPEN_R, K_WRITE, K_WRITE,
		K_READ, K_READ, K_TRUNCATE, K_FTRUNCATE, K_RENAME, K_UNLINK,
		K_MKDIR, K_RMDIR, K_FSYNC, K_CLOSE, K_CLOSE};
	struct op op;

	for (;;) {
		memset(&op, 0, sizeof(op));
		op.k = kinds[rnd_below(s, sizeof(kinds) / sizeof(kinds[0]))];
		op.name = (int)rnd_below(s, NNAMES);
		op.slot = op.k == K_OPEN_W || op.k == K_OPEN_R
				  ? free_slot(m)
				  : pick_slot(s, m, op.k == K_WRITE ||
							 op.k == K_FTRUNCATE ||
							 op.k == K_FSYNC);
		switch (op.k) {
		case K_OPEN_W:
			if (op.slot < 0 || (m->names[op.name] >= 0 &&
					    writer_of(m, m->names[op.name]) >= 0))
				continue;
			op.trunc = (int)rnd_below(s, 2);
			return op;
		case K_OPEN_R:
		case K_FSYNC:
			if (op.slot < 0)
				continue;
			return op;
		case K_WRITE:
			if (op.slot < 0)
				continue;
			op.off = rnd_below(s, (unsigned)m->ino[m->fds[op.slot].ino].len + 50);
			op.len = 1 + rnd_below(s, 299);
			return op;
		case K_READ:
			if (op.slot < 0)
				continue;
			op.off = rnd_below(s, 400);
			op.len = 1 + rnd_below(s, 399);
			return op;
		case K_FTRUNCATE:
		case K_TRUNCATE:
			if (op.k == K_FTRUNCATE && op.slot < 0)
				continue;
			op.len = rnd_below(s, 500);
			return op;
		case K_CLOSE:
			if (op.slot < 0 || (m->fds[op.slot].w &&
					    has_readers_of(m, op.slot)))
				continue;
			return op;
		case K_RENAME:
			op.to = (op.name + 1 + (int)rnd_below(s, NNAMES - 1)) % NNAMES;
			return op;
		default:
			return op;
		}
	}
}

static void after_step(struct model *m, const struct op *op,
		       const struct want *w)
{
	if (w->err && (op->k == K_OPEN_W || op->k == K_OPEN_R))
		m->fds[op->slot].used = 0;
}

static size_t generate(uint64_t seed, unsigned nops, struct op *ops)
{
	struct model m;
	struct want w;
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

	model_init(&m);
	for (unsigned i = 0; i < nops; i++) {
		ops[i] = gen_op(&s, &m);
		model_step(&m, &ops[i], i, &w);
		after_step(&m, &ops[i], &w);
	}
	model_free(&m);
	return nops;
}

/* Does ops keep to the generator's rules (so the model can predict it)? */
static int valid(const struct op *ops, size_t n)
{
	struct model m;
	struct want w;
	int ok = 1;

	model_init(&m);
	for (size_t i = 0; ok && i < n; i++) {
		const struct op *op = &ops[i];
		int opening = op->k == K_OPEN_W || op->k == K_OPEN_R;
		int on_fd = !opening && (op->k == K_WRITE || op->k == K_READ ||
					 op->k == K_FTRUNCATE ||
					 op->k == K_FSYNC || op->k == K_CLOSE);

		if (on_fd && !m.fds[op->slot].used)
			ok = 0;
		else if ((op->k == K_WRITE || op->k == K_FTRUNCATE ||
			  op->k == K_FSYNC) && !m.fds[op->slot].w)
			ok = 0;
		else if (opening && m.fds[op->slot].used)
			ok = 0;
		else if (op->k == K_OPEN_W && m.names[op->name] >= 0 &&
			 writer_of(&m, m.names[op->name]) >= 0)
			ok = 0;
		else if (op->k == K_CLOSE && has_readers_of(&m, op->slot))
			ok = 0;
		if (ok) {
			model_step(&m, op, (unsigned)i, &w);
			after_step(&m, op, &w);
		}
	}
	model_free(&m);
	return ok;
}

#endif
