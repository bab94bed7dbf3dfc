/*
 * The model test over the namespace and the in-memory store (issue 10): a
 * reference model of docs/SEMANTICS.md for uploads/, seeded random op
 * sequences run against it and against ns_* calls, every result compared,
 * a failing sequence shrunk to a short reproduction, and the sequences
 * that found bugs kept as regression cases. tests/e2e/test_model.py runs
 * the same generator, shorter, through a real mount on RGW.
 *
 * The model is a small disk: names point at inodes, an inode lives while
 * a descriptor has it open, and what one descriptor writes another reads.
 * On top of it, what SEMANTICS.md says differs from a disk: a descriptor
 * opened for reading while nobody writes the file reads the object as it
 * was at open, and once that object is replaced or its name moves, such a
 * read may be EIO instead (promise 6). The generator keeps to what the
 * model can predict: one writer per file at a time (two writers upload
 * separately, promise 11), and a reader that reads a writer's bytes is
 * closed before that writer.
 *
 * The calls are made as the kernel makes them for a program: a lookup of
 * the path first (ENOENT, EEXIST come from it), open of an existing file
 * with O_TRUNC passed through (atomic_o_trunc), create for a new one,
 * close as flush then release, fsync as flush.
 *
 * IMGFS_MODEL_SEQS (default 1000) sequences of IMGFS_MODEL_OPS (default
 * 40) ops run in one thread, then as many others in two threads sharing
 * the namespace, each sequence in its own folder; IMGFS_MODEL_SEED moves
 * the seeds.
 */
#include "ns_rig.h"

#include <fcntl.h>
#include <pthread.h>

#include "check.h"
#include "image/worker.h"
#include "base/buf.h"
#include "base/log.h"

#include "model.h"

/* ---- running ops against the namespace ------------------------------------ */

struct runner {
	struct rig *r;
	char root[64]; /* "/uploads/FOLDER" */
	struct ns_file *f[SLOTS];
	unsigned char buf[1024];
};

struct got {
	int err;
	size_t n;
	const unsigned char *data;
};

static void path_of(const struct runner *x, const char *name, char *out)
{
	snprintf(out, 96, "%s/%s", x->root, name);
}

/* The kernel's lookup of name: its folder, then name itself. */
static int lookup(struct runner *x, int name, struct ns_attr *a)
{
	char p[96];
	int rc = 0;

	if (strchr(NAMES[name], '/')) {
		path_of(x, "d", p);
		rc = ns_getattr(x->r->ns, p, a);
		if (!rc && !a->is_dir)
			rc = ENOTDIR;
	}
	path_of(x, NAMES[name], p);
	return rc ? rc : ns_getattr(x->r->ns, p, a);
}

static int real_open(struct runner *x, const struct op *op)
{
	struct ns_attr a;
	char p[96];
	int rc = lookup(x, op->name, &a);
	int flags = op->k == K_OPEN_R ? O_RDONLY
				      : O_RDWR | (op->trunc ? O_TRUNC : 0);

	path_of(x, NAMES[op->name], p);
	if (rc == ENOENT && op->k == K_OPEN_W && !strchr(NAMES[op->name], '/'))
		return ns_create(x->r->ns, p, flags | O_CREAT, NULL,
				 &x->f[op->slot]);
	if (rc == ENOENT && op->k == K_OPEN_W) {
		char d[96];

		path_of(x, "d", d);
		if (ns_getattr(x->r->ns, d, &a) == 0)
			return ns_create(x->r->ns, p, flags | O_CREAT, NULL,
					 &x->f[op->slot]);
	}
	return rc ? rc : ns_open(x->r->ns, p, flags, &x->f[op->slot]);
}

static int real_read(struct runner *x, const struct op *op, struct got *g)
{
	size_t got = 0, n;
	int rc = 0;

	while (!rc && g->n < op->len) {
		n = op->len - g->n;
		rc = ns_read(x->f[op->slot], x->buf + g->n, n, op->off + g->n,
			     &got);
		if (!rc && !got)
			break;
		g->n += got;
	}
	g->data = x->buf;
	return rc;
}

static int real_close(struct runner *x, const struct op *op)
{
	int rc = ns_flush(x->f[op->slot]);

	if (op->k == K_CLOSE) {
		ns_release(x->f[op->slot]);
		x->f[op->slot] = NULL;
	}
	return rc;
}

static int real_dir(struct runner *x, const struct op *op)
{
	struct ns_attr a;
	char p[96];
	int rc;

	path_of(x, "d", p);
	rc = ns_getattr(x->r->ns, p, &a);
	if (op->k == K_MKDIR)
		return rc == 0 ? EEXIST : rc != ENOENT ? rc : ns_mkdir(x->r->ns, p);
	return rc ? rc : ns_rmdir(x->r->ns, p);
}

static int real_names(struct runner *x, const struct op *op)
{
	struct ns_attr a;
	char p[96], q[96];
	int rc = lookup(x, op->name, &a);

	path_of(x, NAMES[op->name], p);
	if (!rc && op->k == K_TRUNCATE)
		return ns_truncate(x->r->ns, p, NULL, op->len);
	if (!rc && op->k == K_UNLINK)
		return ns_unlink(x->r->ns, p);
	if (!rc && strchr(NAMES[op->to], '/')) {
		path_of(x, "d", q);
		rc = ns_getattr(x->r->ns, q, &a);
	}
	path_of(x, NAMES[op->to], q);
	return rc ? rc : ns_rename(x->r->ns, p, q, 0);
}

static void real_step(struct runner *x, const struct op *op, unsigned i,
		      struct got *g)
{
	memset(g, 0, sizeof(*g));
	switch (op->k) {
	case K_OPEN_W:
	case K_OPEN_R:
		g->err = real_open(x, op);
		break;
	case K_WRITE:
		data_for(i, x->buf, op->len);
		g->err = ns_write(x->f[op->slot], x->buf, op->len, op->off);
		g->n = g->err ? 0 : op->len;
		break;
	case K_READ:
		g->err = real_read(x, op, g);
		break;
	case K_FTRUNCATE:
		g->err = ns_truncate(x->r->ns, NULL, x->f[op->slot], op->len);
		break;
	case K_FSYNC:
	case K_CLOSE:
		g->err = real_close(x, op);
		break;
	case K_MKDIR:
	case K_RMDIR:
		g->err = real_dir(x, op);
		break;
	case K_TRUNCATE:
	case K_UNLINK:
	case K_RENAME:
		g->err = real_names(x, op);
		break;
	}
}

static int agrees(const struct op *op, const struct want *w,
		  const struct got *g)
{
	if (g->err)
		return g->err == w->err || (g->err == EIO && w->may_eio);
	if (w->err)
		return 0;
	if (op->k == K_WRITE)
		return g->n == w->n;
	if (op->k == K_READ)
		return g->n == w->got.len &&
		       (!g->n || !memcmp(g->data, w->got.d, g->n));
	return 1;
}

static void describe(const struct op *op, char *out, size_t n)
{
	snprintf(out, n, "{%s slot %d %s->%s trunc %d off %u len %u}",
		 KIND_NAMES[op->k], op->slot, NAMES[op->name], NAMES[op->to],
		 op->trunc, op->off, op->len);
}

/* The final state: every name reads as the model's inode, and the bucket
 * holds exactly the model's names. */
static int check_final(struct runner *x, const struct model *m, char *msg,
		       size_t msglen)
{
	struct store_list_page page = {0};
	char prefix[96];
	size_t want_keys = 0;

	for (int i = 0; i < NNAMES; i++) {
		struct op rd = {.k = K_READ, .slot = 0, .name = i,
				.len = sizeof(x->buf)};
		struct op op = {.k = K_OPEN_R, .slot = 0, .name = i};
		const struct bytes *d;
		struct got g;

		if (m->names[i] < 0)
			continue;
		want_keys++;
		d = &m->ino[m->names[i]];
		memset(&g, 0, sizeof(g));
		g.err = real_open(x, &op);
		if (!g.err) {
			g.err = real_read(x, &rd, &g);
			ns_release(x->f[0]);
			x->f[0] = NULL;
		}
		if (g.err || g.n != d->len || (g.n && memcmp(g.data, d->d, g.n))) {
			snprintf(msg, msglen, "final content of %s: %zu bytes "
				 "expected, %zu read (error %d)", NAMES[i],
				 d->len, g.n, g.err);
			return 1;
		}
	}
	snprintf(prefix, sizeof(prefix), "%s/", x->root + 1);
	if (store_list(mem_store(x->r->m), prefix, NULL, NULL, 100, &page) ||
	    page.nentries != want_keys) {
		snprintf(msg, msglen, "the bucket holds %zu keys under %s, the "
			 "model %zu", page.nentries, prefix, want_keys);
		store_list_page_release(&page);
		return 1;
	}
	store_list_page_release(&page);
	return 0;
}

/* Run ops in uploads/folder. 0 when the namespace agreed with the model
 * throughout, else 1 with msg saying where. */
static int run_sequence(struct rig *r, const char *folder,
			const struct op *ops, size_t n, char *msg,
			size_t msglen)
{
	struct runner *x = calloc(1, sizeof(*x));
	struct model m;
	struct want w;
	struct got g;
	char what[128];
	int bad = 0;

	if (!x)
		abort();
	x->r = r;
	snprintf(x->root, sizeof(x->root), "/uploads/%s", folder);
	model_init(&m);
	if (ns_mkdir(r->ns, x->root) != 0) {
		snprintf(msg, msglen, "cannot make %s", x->root);
		bad = 1;
	}
	for (size_t i = 0; !bad && i < n; i++) {
		model_step(&m, &ops[i], (unsigned)i, &w);
		real_step(x, &ops[i], (unsigned)i, &g);
		after_step(&m, &ops[i], &w);
		if (!agrees(&ops[i], &w, &g)) {
			describe(&ops[i], what, sizeof(what));
			snprintf(msg, msglen, "op %zu %s: expected error %d "
				 "(EIO allowed: %d) n %zu, got error %d n %zu",
				 i, what, w.err, w.may_eio,
				 ops[i].k == K_READ ? w.got.len : w.n, g.err, g.n);
			bad = 1;
		}
	}
	/* readers first: a reader of a writer's bytes closes before it */
	for (int pass = 0; pass < 2; pass++)
		for (int s = 0; !bad && s < SLOTS; s++) {
			struct op c = {.k = K_CLOSE, .slot = s};

			if (!m.fds[s].used || m.fds[s].w != pass)
				continue;
			model_step(&m, &c, (unsigned)n, &w);
			real_step(x, &c, (unsigned)n, &g);
			if (g.err) {
				snprintf(msg, msglen, "final close of slot %d: "
					 "error %d", s, g.err);
				bad = 1;
			}
		}
	if (!bad)
		bad = check_final(x, &m, msg, msglen);
	for (int s = 0; s < SLOTS; s++)
		if (x->f[s])
			ns_release(x->f[s]);
	model_free(&m);
	free(x);
	return bad;
}

/* Drop ops while the sequence still fails; each try in a new folder. */
static size_t shrink(struct rig *r, const char *tag, struct op *ops, size_t n)
{
	static _Thread_local struct op cand[MAX_OPS];
	char folder[160], msg[256];
	unsigned tries = 0;
	int changed = 1;

	while (changed) {
		changed = 0;
		for (size_t i = 0; i < n && !changed; i++) {
			memcpy(cand, ops, i * sizeof(*ops));
			memcpy(cand + i, ops + i + 1, (n - i - 1) * sizeof(*ops));
			if (!valid(cand, n - 1))
				continue;
			snprintf(folder, sizeof(folder), "%s-k%u", tag, ++tries);
			if (run_sequence(r, folder, cand, n - 1, msg, sizeof(msg))) {
				memcpy(ops, cand, (n - 1) * sizeof(*ops));
				n--;
				changed = 1;
			}
		}
	}
	return n;
}

static void report(struct rig *r, const char *tag, uint64_t seed,
		   struct op *ops, size_t n, const char *msg)
{
	char what[128], folder[160];

	n = shrink(r, tag, ops, n);
	fprintf(stderr, "model: seed %llu: %s\n  shrunk to %zu ops:\n",
		(unsigned long long)seed, msg, n);
	for (size_t i = 0; i < n; i++) {
		describe(&ops[i], what, sizeof(what));
		fprintf(stderr, "    %s\n", what);
	}
	snprintf(folder, sizeof(folder), "%s-final", tag);
	if (run_sequence(r, folder, ops, n, what, sizeof(what)))
		fprintf(stderr, "  -> %s\n", what);
}

/* ---- the cases --------------------------------------------------------- */

#define W(s, n, t) {.k = K_OPEN_W, .slot = s, .name = n, .trunc = t}
#define R(s, n) {.k = K_OPEN_R, .slot = s, .name = n}
#define WR(s, o, l) {.k = K_WRITE, .slot = s, .off = o, .len = l}
#define RD(s, o, l) {.k = K_READ, .slot = s, .off = o, .len = l}
#define CL(s) {.k = K_CLOSE, .slot = s}
#define MV(a, b) {.k = K_RENAME, .name = a, .to = b}
#define RM(a) {.k = K_UNLINK, .name = a}

/* Found and fixed (issue 10); each failed before its fix. */
static const struct op REG0[] = {W(0, 0, 0), WR(0, 0, 4), MV(0, 1),
				 WR(0, 4, 4), CL(0)};
static const struct op REG1[] = {W(0, 0, 0), WR(0, 0, 9), RM(0),
				 WR(0, 9, 3), RD(0, 0, 20), CL(0)};
static const struct op REG2[] = {W(0, 0, 1), WR(0, 0, 100), R(1, 0),
				 RD(1, 0, 200), WR(0, 100, 10), RD(1, 90, 40),
				 CL(1), CL(0)};
static const struct op REG3[] = {W(0, 0, 1), WR(0, 0, 10), CL(0),
				 W(1, 0, 0), WR(1, 10, 5), CL(1)};
static const struct op REG4[] = {W(0, 1, 1), WR(0, 0, 7), CL(0),
				 W(1, 0, 1), WR(1, 0, 3), MV(1, 0),
				 WR(1, 3, 3), CL(1)};
/* Found by this test (seed 1717): a file open for writing but not yet
 * written, replaced by a rename, read the new object's bytes. */
static const struct op REG5[] = {W(0, 0, 1), WR(0, 15, 155), CL(0),
				 W(1, 1, 0), {.k = K_FTRUNCATE, .slot = 1,
					      .len = 425},
				 W(2, 0, 0), CL(1), MV(1, 0), RD(2, 362, 142)};

static void test_regressions(struct rig *r)
{
	static const struct {
		const struct op *ops;
		size_t n;
	} regs[] = {
		{REG0, sizeof(REG0) / sizeof(REG0[0])},
		{REG1, sizeof(REG1) / sizeof(REG1[0])},
		{REG2, sizeof(REG2) / sizeof(REG2[0])},
		{REG3, sizeof(REG3) / sizeof(REG3[0])},
		{REG4, sizeof(REG4) / sizeof(REG4[0])},
		{REG5, sizeof(REG5) / sizeof(REG5[0])},
	};
	char folder[32], msg[256];

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		CHECK(valid(regs[i].ops, regs[i].n));
		snprintf(folder, sizeof(folder), "reg%zu", i);
		msg[0] = '\0';
		CHECK(!run_sequence(r, folder, regs[i].ops, regs[i].n, msg,
				    sizeof(msg)));
		if (msg[0])
			fprintf(stderr, "model: regression %zu: %s\n", i, msg);
	}
}

struct batch {
	struct rig *r;
	uint64_t base;
	unsigned seqs, ops, first, step;
	const char *tag;
	unsigned failed; /* protected by fail_lock */
	pthread_mutex_t fail_lock;
};

static void *run_batch(void *arg)
{
	struct batch *b = arg;
	struct op *ops = calloc(MAX_OPS, sizeof(*ops));
	char folder[64], msg[256];

	for (unsigned i = b->first; ops && i < b->seqs; i += b->step) {
		uint64_t seed = b->base + i;
		size_t n = generate(seed, b->ops, ops);

		snprintf(folder, sizeof(folder), "%s%u-s%llu", b->tag, b->first,
			 (unsigned long long)seed);
		if (!run_sequence(b->r, folder, ops, n, msg, sizeof(msg)))
			continue;
		pthread_mutex_lock(&b->fail_lock);
		b->failed++;
		pthread_mutex_unlock(&b->fail_lock);
		report(b->r, folder, seed, ops, n, msg);
	}
	free(ops);
	return NULL;
}

static unsigned env_uint(const char *name, unsigned dflt, unsigned max)
{
	const char *v = getenv(name);
	unsigned long n = v ? strtoul(v, NULL, 10) : dflt;

	return n > max ? max : (unsigned)n;
}

/* The seeded random sequences, in threads threads sharing one namespace. */
static void test_random(struct rig *r, unsigned threads, const char *tag)
{
	struct batch b = {.r = r, .tag = tag,
			  .base = env_uint("IMGFS_MODEL_SEED", 1000, ~0u) +
				  (threads > 1 ? 1000000 : 0),
			  .seqs = env_uint("IMGFS_MODEL_SEQS", 1000, 1u << 24),
			  .ops = env_uint("IMGFS_MODEL_OPS", 40, MAX_OPS)};
	struct batch each[2];
	pthread_t t[2];

	pthread_mutex_init(&b.fail_lock, NULL);
	for (unsigned i = 0; i < threads && i < 2; i++) {
		each[i] = b;
		each[i].first = i;
		each[i].step = threads;
		pthread_mutex_init(&each[i].fail_lock, NULL);
		pthread_create(&t[i], NULL, run_batch, &each[i]);
	}
	for (unsigned i = 0; i < threads && i < 2; i++) {
		pthread_join(t[i], NULL);
		b.failed += each[i].failed;
		pthread_mutex_destroy(&each[i].fail_lock);
	}
	pthread_mutex_destroy(&b.fail_lock);
	fprintf(stderr, "model: %u sequences of %u ops in %u thread(s), %u "
		"disagreed\n", b.seqs, b.ops, threads, b.failed);
	CHECK_INT(b.failed, 0);
}

/* The generator is deterministic and keeps to its own rules. */
static void test_generator(void)
{
	struct op a[64], c[64];

	generate(7, 64, a);
	generate(7, 64, c);
	CHECK(memcmp(a, c, sizeof(a)) == 0);
	CHECK(valid(a, 64));
	generate(8, 64, c);
	CHECK(memcmp(a, c, sizeof(a)) != 0);
}

int main(int argc, char **argv)
{
	struct rig r;
	int rc = worker_dispatch(argc, argv);

	/* The thumbnail workers the namespace starts are this binary. */
	if (rc >= 0)
		return rc;
	if (rig_up(&r, 0) != 0) {
		fprintf(stderr, "test_model: cannot set up\n");
		return 1;
	}
	log_quiet(1); /* EIO of stale readers is expected; disagreements print */
	test_generator();
	test_regressions(&r);
	test_random(&r, 1, "one");
	test_random(&r, 2, "two");
	rig_down(&r);
	return check_done("model");
}
