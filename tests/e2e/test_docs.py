"""README.md, `imgfs -h` and docs/imgfs.1 against cfg's option table (issue 16).

The table in core/config/cfg_table.c is the one list of options: every row
must be documented in all three places, nothing may be documented that the
table lacks, the defaults must agree, and the FUSE and mount(8) option lists
must be the table's own.
"""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLE = ROOT / "core/config/cfg_table.c"
README = ROOT / "README.md"
MAN = ROOT / "docs/imgfs.1"
# Options the parser handles outside the table.
SPECIAL = {"config"}


def c_strings(text):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', text)


def table():
    """{name: (kind, default or None)} from cfg_keys[], in order."""
    src = TABLE.read_text()
    rows = {}
    for m in re.finditer(r'^\t\{"(\w+)", (KIND_\w+), F\([\w.]+\),\s*\{([^}]*)\},\s*'
                         r'(NULL|"[^"]*")', src, re.M):
        default = None if m.group(4) == "NULL" else m.group(4).strip('"')
        rows[m.group(1)] = (m.group(2), default)
    assert len(rows) >= 30, "cannot parse the option table"
    return rows


def c_list(name):
    src = TABLE.read_text()
    m = re.search(r"const char \*const " + name + r"\[\] = \{(.*?)\};", src, re.S)
    assert m, name
    return c_strings(m.group(1))


def fuse_names():
    return c_list("cfg_fuse_flags") + c_list("cfg_fuse_prefixes")


def ignored_names():
    return c_list("cfg_ignored_flags") + c_list("cfg_ignored_prefixes")


def words_default(kind, default):
    """How the docs may write a default."""
    if kind == "KIND_BOOL":
        return {"false": {"off", "false"}, "true": {"on", "true"}}[default]
    return {default}


# ------------------------------------------------------------------ README


def readme_rows():
    """{name: default cell} from the README's options table."""
    text = README.read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 4:
            continue
        names = re.findall(r"`([\w=]+)`", cells[0])
        defaults = [d.strip().strip("`") for d in cells[2].split(",")]
        for i, n in enumerate(names):
            d = defaults[i] if len(defaults) == len(names) else cells[2].replace("`", "")
            rows[n.rstrip("=")] = d
    return rows


def test_readme_documents_exactly_the_table():
    rows, opts = readme_rows(), table()
    missing = [n for n in list(opts) + sorted(SPECIAL) if n not in rows]
    extra = [n for n in rows if n not in opts and n not in SPECIAL]
    assert not missing, f"README's options table lacks {missing}"
    assert not extra, f"README documents options cfg does not have: {extra}"


def test_readme_defaults_match_the_table():
    rows, wrong = readme_rows(), []
    for name, (kind, default) in table().items():
        cell = rows.get(name, "")
        if default is not None:
            if cell not in words_default(kind, default):
                wrong.append(f"{name}: README says {cell!r}, the table {default!r}")
        elif re.fullmatch(r"\d+", cell):
            wrong.append(f"{name}: README gives the number {cell} for a derived default")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ -h


@pytest.fixture(scope="module")
def help_text(imgfs_bin):
    p = subprocess.run([str(imgfs_bin), "-h"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def help_options(text):
    """{name: default} of the `-o name` entries."""
    out = {}
    for m in re.finditer(r"^    -o (\w+) .*\n\s+default (.*?)(?:;.*)?$", text, re.M):
        out[m.group(1)] = m.group(2)
    return out


def test_help_documents_exactly_the_table(help_text):
    got, opts = help_options(help_text), table()
    assert list(got) == list(opts), (
        f"-h lacks {[n for n in opts if n not in got]}, "
        f"has extra {[n for n in got if n not in opts]}")
    for name in SPECIAL:
        assert f"-o {name}=" in help_text, name
    wrong = [f"{n}: -h says {got[n]!r}, the table {d!r}"
             for n, (k, d) in opts.items() if d is not None and got[n] != d]
    assert not wrong, "\n".join(wrong)


def test_help_lists_the_fuse_and_ignored_options(help_text):
    flat = " ".join(help_text.split())
    passed = flat.split("FUSE options passed through:")[1].split("Ignored")[0]
    ignored = flat.split("Ignored mount(8) options:")[1].split("See imgfs")[0]
    as_words = lambda s: [w.strip(",.") for w in s.split()]
    assert as_words(passed) == fuse_names()
    assert [w.rstrip("*") for w in as_words(ignored)] == ignored_names()


# ------------------------------------------------------------------ imgfs.1


def man_sections():
    text = MAN.read_text()
    options = text.split(".SH OPTIONS")[1].split(".SS FUSE and mount options")[0]
    fuse = text.split(".SS FUSE and mount options")[1].split(".SH ")[0]
    return options, fuse


def man_entries(options):
    """{name: the entry's text} of every `.TP` option entry."""
    out = {}
    for chunk in options.split(".TP\n")[1:]:
        head = chunk.splitlines()[0]
        m = re.match(r"\.B[IR]? (\w+)(?:=|\s|$)", head)
        if not m or head.startswith(".BR \\-") or head.startswith(".B \\-"):
            continue
        out[m.group(1)] = chunk
    return out


def man_words(text):
    """The names in a list of `.BR name ,` / `.BI name= X\\fR,` lines."""
    return [m.group(1) for m in re.finditer(r"^\.B[IR]? ([\w-]+=?)", text, re.M)]


def test_man_page_documents_exactly_the_table():
    entries, opts = man_entries(man_sections()[0]), table()
    missing = [n for n in opts if n not in entries]
    extra = [n for n in entries if n not in opts]
    assert not missing, f"imgfs.1 lacks {missing}"
    assert not extra, f"imgfs.1 documents options cfg does not have: {extra}"
    assert "config=" in MAN.read_text()


def test_man_page_defaults_match_the_table():
    entries, wrong = man_entries(man_sections()[0]), []
    for name, (kind, default) in table().items():
        body = " ".join(entries.get(name, "").replace("\\-", "-").split())
        m = re.search(r"Default: (?:\.BR? )?(.+?)\.?(?: \.|$)", body)
        said = m.group(1).strip().rstrip(".") if m else None
        if default is not None and said not in words_default(kind, default):
            wrong.append(f"{name}: imgfs.1 says {said!r}, the table {default!r}")
        elif default is None and said and re.fullmatch(r"\d+", said):
            wrong.append(f"{name}: imgfs.1 gives the number {said} for a derived default")
    assert not wrong, "\n".join(wrong)


def test_man_page_lists_the_fuse_and_ignored_options():
    fuse = man_sections()[1]
    passed, ignored = fuse.split("are accepted and ignored")
    passed_names = [w.rstrip("=") for w in man_words(passed.split("Other users")[0])]
    ignored_names_ = [w.rstrip("=-") for w in man_words(ignored)]
    assert sorted(passed_names) == sorted(n.rstrip("=") for n in fuse_names())
    assert sorted(ignored_names_) == sorted(n.rstrip("=-") for n in ignored_names())
    assert not set(ignored_names_) & set(table()), "an option of cfg is listed as ignored"
