"""A reference model of docs/SEMANTICS.md for uploads/, and randomized,
seeded op sequences run against it and a real mount (issue 10).

The model is a small local disk: names point at inodes, an inode lives on
while a descriptor has it open (unlink and rename of open files), and what
one descriptor writes another reads. On top of it, what SEMANTICS.md says
differs from a disk: a descriptor opened for reading while nobody writes
the file reads the object as it was at open, and once the object is
replaced or its name moves, such a read may be EIO instead (promise 6).

The generator keeps to what the model can predict: at most one descriptor
writes a file at a time (two writers of one file upload separately, "last
close wins", which a disk does not do), and a reader opened while a writer
is open is closed before that writer. fstat after unlink is left out
(ESTALE, a documented limit of libfuse's high-level API).

Every call's result (errno, bytes read) is compared with the model, and at
the end of a sequence the folder's names and contents, through the mount
and in the bucket. A mismatch is shrunk (ops dropped while it still fails)
to a short reproduction, printed with its seed. Sequences that found bugs
are kept in REGRESSIONS. IMGFS_MODEL_SEQS (default 24) sequences of
IMGFS_MODEL_OPS (default 40) ops run in two threads, each in its own
folder of one mount.

tests/unit/test_model.c runs the same model and generator, ported to C,
over thousands of sequences against the namespace over the in-memory store
(ns_* called directly); this file is its shorter run through a real mount
on RGW.
"""

import errno
import os
import random
import threading

import pytest

NAMES = ["a", "b", "d/c"]
SEQS = int(os.environ.get("IMGFS_MODEL_SEQS", "24"))
OPS = int(os.environ.get("IMGFS_MODEL_OPS", "40"))

# Found and fixed (issue 10): each failed before the fix.
REGRESSIONS = [
    # (echo foo; mv g g.new) > g
    [("open_w", 0, "a", False), ("write", 0, 0, 4), ("rename", "a", "b"),
     ("write", 0, 4, 4), ("close", 0)],
    # unlink of a file open for writing: the name goes, nothing is uploaded
    [("open_w", 0, "a", False), ("write", 0, 0, 9), ("unlink", "a"),
     ("write", 0, 9, 3), ("read", 0, 0, 20), ("close", 0)],
    # a second descriptor reads what the first is writing
    [("open_w", 0, "a", True), ("write", 0, 0, 100), ("open_r", 1, "a"),
     ("read", 1, 0, 200), ("write", 0, 100, 10), ("read", 1, 90, 40),
     ("close", 1), ("close", 0)],
    # O_CREAT without O_TRUNC keeps the content (>>)
    [("open_w", 0, "a", True), ("write", 0, 0, 10), ("close", 0),
     ("open_w", 1, "a", False), ("write", 1, 10, 5), ("close", 1)],
    # rename over a file that is open for writing: its close uploads nothing
    [("open_w", 0, "b", True), ("write", 0, 0, 7), ("close", 0),
     ("open_w", 1, "a", True), ("write", 1, 0, 3), ("rename", "b", "a"),
     ("write", 1, 3, 3), ("close", 1)],
    # found by tests/unit/test_model.c (seed 1717): a file open for writing
    # but not written yet, replaced by a rename, read the new object's bytes
    [("open_w", 0, "a", True), ("write", 0, 15, 155), ("close", 0),
     ("open_w", 1, "b", False), ("ftruncate", 1, 425), ("open_w", 2, "a", False),
     ("close", 1), ("rename", "b", "a"), ("read", 2, 362, 142)],
]


class Model:
    def __init__(self):
        self.inodes = {}      # ino -> bytearray
        self.names = {}       # name -> ino
        self.dirs = set()     # "d" when made by mkdir
        self.fds = {}         # slot -> dict(ino, mode, snap, stale, writer)
        self.next_ino = 0

    def dir_exists(self, d):
        return d in self.dirs or any(n.startswith(d + "/") for n in self.names)

    def parent_ok(self, name):
        return "/" not in name or self.dir_exists(name.split("/")[0])

    def writer_of(self, ino):
        return next((s for s, f in self.fds.items() if f["ino"] == ino and f["mode"] == "w"), None)

    def committed(self, ino):
        # the object changed: plain readers of it may now read EIO
        for f in self.fds.values():
            if f["ino"] == ino and f["mode"] == "r" and f["writer"] is None:
                f["stale"] = True

    def moved(self, ino):
        self.committed(ino)


def gen_op(rnd, m):
    """A random op the model can predict, given the model's state."""
    slots = [s for s in range(4)]
    free = [s for s in slots if s not in m.fds]
    kinds = ["open_w", "open_r", "write", "write", "read", "read", "truncate",
             "ftruncate", "rename", "unlink", "mkdir", "rmdir", "fsync", "close", "close"]
    while True:
        k = rnd.choice(kinds)
        name = rnd.choice(NAMES)
        if k == "open_w" and free:
            ino = m.names.get(name)
            if ino is not None and m.writer_of(ino) is not None:
                continue
            return ("open_w", free[0], name, rnd.random() < 0.5)
        if k == "open_r" and free:
            return ("open_r", free[0], name)
        ws = [s for s, f in m.fds.items() if f["mode"] == "w"]
        rs = list(m.fds)
        if k == "write" and ws:
            s = rnd.choice(ws)
            size = len(m.inodes[m.fds[s]["ino"]])
            return ("write", s, rnd.randrange(0, size + 50), rnd.randrange(1, 300))
        if k == "read" and rs:
            return ("read", rnd.choice(rs), rnd.randrange(0, 400), rnd.randrange(1, 400))
        if k == "ftruncate" and ws:
            return ("ftruncate", rnd.choice(ws), rnd.randrange(0, 500))
        if k == "fsync" and ws:
            return ("fsync", rnd.choice(ws))
        if k == "close" and rs:
            s = rnd.choice(rs)
            if m.fds[s]["mode"] == "w" and any(f["writer"] == s for f in m.fds.values()):
                continue  # its readers close first
            return ("close", s)
        if k == "truncate":
            return ("truncate", name, rnd.randrange(0, 500))
        if k == "rename":
            return ("rename", name, rnd.choice([n for n in NAMES if n != name]))
        if k == "unlink":
            return ("unlink", name)
        if k in ("mkdir", "rmdir"):
            return (k, "d")


def data_for(op_index, length):
    return random.Random(op_index).randbytes(length)


def model_step(m, op, i):
    """Apply op to the model; returns the expected result: ('ok', value) or
    ('err', errno), or ('any', set of allowed errnos/values)."""
    k = op[0]
    if k == "open_w":
        _, s, name, trunc = op
        if not m.parent_ok(name):
            return ("err", errno.ENOENT)
        ino = m.names.get(name)
        if ino is None:
            ino = m.names[name] = m.next_ino
            m.next_ino += 1
            m.inodes[ino] = bytearray()
        elif trunc:
            m.inodes[ino][:] = b""
        m.fds[s] = {"ino": ino, "mode": "w", "snap": None, "stale": False, "writer": None,
}
        return ("ok", None)
    if k == "open_r":
        _, s, name = op
        ino = m.names.get(name)
        if ino is None:
            return ("err", errno.ENOENT)
        w = m.writer_of(ino)
        m.fds[s] = {"ino": ino, "mode": "r", "snap": bytes(m.inodes[ino]) if w is None else None,
                    "stale": False, "writer": w}
        return ("ok", None)
    if k == "write":
        _, s, off, n = op
        d = m.inodes[m.fds[s]["ino"]]
        if off > len(d):
            d.extend(b"\0" * (off - len(d)))
        d[off:off + n] = data_for(i, n)
        return ("ok", n)
    if k == "read":
        _, s, off, n = op
        f = m.fds[s]
        if f["writer"] is not None or f["mode"] == "w":
            return ("ok", bytes(m.inodes[f["ino"]][off:off + n]))
        want = f["snap"][off:off + n]
        return ("any", {("ok", want), ("err", errno.EIO)}) if f["stale"] else ("ok", want)
    if k == "ftruncate":
        _, s, size = op
        d = m.inodes[m.fds[s]["ino"]]
        d[:] = (bytes(d) + b"\0" * size)[:size]
        return ("ok", None)
    if k == "truncate":
        _, name, size = op
        ino = m.names.get(name)
        if ino is None:
            return ("err", errno.ENOENT)
        d = m.inodes[ino]
        d[:] = (bytes(d) + b"\0" * size)[:size]
        if m.writer_of(ino) is None:
            m.committed(ino)
        return ("ok", None)
    if k == "fsync" or k == "close":
        s = op[1]
        f = m.fds[s]
        if f["mode"] == "w" and f["ino"] in m.names.values():
            m.committed(f["ino"])
        if k == "close":
            del m.fds[s]
        return ("ok", None)
    if k == "unlink":
        ino = m.names.pop(op[1], None)
        if ino is None:
            return ("err", errno.ENOENT)
        m.moved(ino)
        return ("ok", None)
    if k == "rename":
        _, a, b = op
        ino = m.names.get(a)
        if ino is None:
            return ("err", errno.ENOENT)
        if not m.parent_ok(b):
            return ("err", errno.ENOENT)
        old = m.names.pop(b, None)
        if old is not None:
            m.moved(old)
        m.names[b] = m.names.pop(a)
        m.moved(ino)
        return ("ok", None)
    if k == "mkdir":
        if m.dir_exists("d"):
            return ("err", errno.EEXIST)
        m.dirs.add("d")
        return ("ok", None)
    if k == "rmdir":
        if not m.dir_exists("d"):
            return ("err", errno.ENOENT)
        if any(n.startswith("d/") for n in m.names):
            return ("err", errno.ENOTEMPTY)
        m.dirs.discard("d")
        return ("ok", None)
    raise AssertionError(op)


def real_step(root, fds, op, i):
    k = op[0]
    try:
        if k == "open_w":
            flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if op[3] else 0)
            fds[op[1]] = os.open(root / op[2], flags, 0o644)
            return ("ok", None)
        if k == "open_r":
            fds[op[1]] = os.open(root / op[2], os.O_RDONLY)
            return ("ok", None)
        if k == "write":
            return ("ok", os.pwrite(fds[op[1]], data_for(i, op[3]), op[2]))
        if k == "read":
            return ("ok", os.pread(fds[op[1]], op[3], op[2]))
        if k == "ftruncate":
            os.ftruncate(fds[op[1]], op[2])
        elif k == "truncate":
            os.truncate(root / op[1], op[2])
        elif k == "fsync":
            os.fsync(fds[op[1]])
        elif k == "close":
            os.close(fds.pop(op[1]))
        elif k == "unlink":
            os.unlink(root / op[1])
        elif k == "rename":
            os.rename(root / op[1], root / op[2])
        elif k == "mkdir":
            os.mkdir(root / op[1])
        elif k == "rmdir":
            os.rmdir(root / op[1])
        return ("ok", None)
    except OSError as e:
        if k == "close":
            fds.pop(op[1], None)
        return ("err", e.errno)


def run_sequence(mnt, rgw, bucket, folder, ops):
    """Run ops in uploads/folder; None when all agreed, else a message."""
    root = mnt.uploads / folder
    root.mkdir()
    m, fds = Model(), {}
    try:
        for i, op in enumerate(ops):
            want = model_step(m, op, i)
            got = real_step(root, fds, op, i)
            ok = got in want[1] if want[0] == "any" else got == want
            if not ok:
                return f"op {i} {op}: expected {want}, got {got}"
        for s in sorted(m.fds, key=lambda s: m.fds[s]["mode"] == "w"):
            model_step(m, ("close", s), len(ops))
            got = real_step(root, fds, ("close", s), len(ops))
            if got != ("ok", None):
                return f"final close of slot {s}: {got}"
        files = {n: bytes(m.inodes[ino]) for n, ino in m.names.items()}
        for n, data in files.items():
            seen = (root / n).read_bytes() if (root / n).exists() else None
            if seen != data:
                return f"final content of {n}: expected {len(data)} bytes, got " \
                       f"{None if seen is None else len(seen)}"
        keys = {o["Key"][len(f"uploads/{folder}/"):]
                for o in rgw.s3.list_objects_v2(Bucket=bucket, Prefix=f"uploads/{folder}/")
                .get("Contents", [])}
        if keys != set(files):
            return f"bucket holds {sorted(keys)}, model {sorted(files)}"
        return None
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass


def shrink(mnt, rgw, bucket, ops, tag):
    """Drop ops while the sequence still fails (each try in a new folder)."""
    n = 0
    changed = True
    while changed:
        changed = False
        for i in range(len(ops)):
            cand = ops[:i] + ops[i + 1:]
            if not valid(cand):
                continue
            n += 1
            if run_sequence(mnt, rgw, bucket, f"{tag}-shrink{n}", cand):
                ops, changed = cand, True
                break
    return ops


def valid(ops):
    """Does ops still keep to the generator's rules (model can predict)?"""
    m = Model()
    try:
        for i, op in enumerate(ops):
            k = op[0]
            if k in ("write", "read", "ftruncate", "fsync", "close") and op[1] not in m.fds:
                return False
            if k in ("write", "ftruncate", "fsync") and m.fds[op[1]]["mode"] != "w":
                return False
            if k in ("open_w", "open_r") and op[1] in m.fds:
                return False
            if k == "open_w" and op[2] in m.names and m.writer_of(m.names[op[2]]) is not None:
                return False
            if k == "close" and any(f["writer"] == op[1] for f in m.fds.values()):
                return False
            if model_step(m, op, i)[0] == "err" and k in ("open_w", "open_r"):
                m.fds.pop(op[1], None)
    except KeyError:
        return False
    return True


def generate(seed):
    rnd, m, ops = random.Random(seed), Model(), []
    for i in range(OPS):
        op = gen_op(rnd, m)
        res = model_step(m, op, i)
        if res[0] == "err" and op[0] in ("open_w", "open_r"):
            m.fds.pop(op[1], None)
        ops.append(op)
    return ops


@pytest.mark.parametrize("case", range(len(REGRESSIONS)))
def test_model_regressions(rgw, bucket, mount, case):
    m = mount(bucket)
    msg = run_sequence(m, rgw, bucket, f"reg{case}", REGRESSIONS[case])
    assert msg is None, msg


def test_model_random_sequences(rgw, bucket, mount):
    m = mount(bucket)
    base = int(os.environ.get("IMGFS_MODEL_SEED", "1000"))
    failures = []

    def worker(t):
        for n in range(t, SEQS, 2):
            seed = base + n
            ops = generate(seed)
            msg = run_sequence(m, rgw, bucket, f"s{seed}", ops)
            if msg:
                small = shrink(m, rgw, bucket, ops, f"s{seed}")
                failures.append(f"seed {seed}: {msg}\n  shrunk to {small}\n  "
                                f"-> {run_sequence(m, rgw, bucket, f's{seed}-final', small)}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, "\n".join(failures)
