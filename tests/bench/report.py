"""make bench's report: the results table and the targets it checks.

results: the dicts Bench.record() makes (workload, tool, samples, median,
rss, amount, rate_unit, note); counts: the dicts of the waste workload
(workload, tool, gets, bytes, of).
"""

MIB = 1024 * 1024
SHARP = "sharp 0.35 (concurrency = cores)"


TARGETS = {
    # workload: (baseline tool, imgfs tool, check(ratio, imgfs result), text)
    "cp image set": ("curl (sequential PUTs)", "imgfs",
                     lambda q, r: q <= 1.15, "<= 1.15x curl's time"),
    "write 1 GiB": ("curl (one PUT)", "imgfs",
                    lambda q, r: 1 / q >= 0.9 and r["rss"] <= 200e6,
                    ">= 0.9x curl's throughput, RSS <= 200 MB"),
    "read 1 GiB": ("curl (one GET)", "imgfs", lambda q, r: 1 / q >= 0.9,
                   ">= 0.9x curl's throughput"),
}


def verdicts(results):
    by = {(r["workload"], r["tool"]): r for r in results}
    out = []

    def get(w, t):
        return by.get((w, t))
    for w, (base, tool, check, text) in TARGETS.items():
        a, r = get(w, base), get(w, tool)
        if a and r:
            q = r["median"] / a["median"]
            got = f"{q:.2f}x" if w == "cp image set" else f"{1 / q:.2f}x"
            if r["rss"] and w != "cp image set":
                got += f", {r['rss'] / MIB:.0f} MiB"
            out.append((w, text, got, check(q, r)))
    a, c, wm = get("ls -l 5000", "boto3 ListObjectsV2"), get("ls -l 5000", "imgfs cold"), \
        get("ls -l 5000", "imgfs warm")
    if a and c and wm:
        q = c["median"] / a["median"]
        out.append(("ls -l 5000", "cold <= 1.3x boto3; warm <= 50 ms",
                    f"cold {q:.2f}x, warm {wm['median'] * 1000:.0f} ms",
                    q <= 1.3 and wm["median"] <= 0.05))
    v = get("thumbnails", "vipsthumbnail (a process per file)")
    p = get("thumbnails", "Pillow thumbnail()")
    sh = get("thumbnails", SHARP)
    for tool in ("imgfs first read", "imgfs first read, 4 readers"):
        i = get("thumbnails", tool)
        if v and p and sh and i:
            q = i["median"] / v["median"]
            qs = i["median"] / sh["median"]
            out.append((f"thumbnails ({tool})",
                        "<= 1.0x sharp, <= 0.5x vipsthumbnail, < Pillow, RSS <= 200 MB",
                        f"{qs:.2f}x sharp, {q:.2f}x vips, "
                        f"{i['median'] / p['median']:.2f}x Pillow, {i['rss'] / MIB:.0f} MiB",
                        qs <= 1.0 and q <= 0.5 and i["median"] < p["median"]
                        and i["rss"] <= 200e6))
    a, i = get("cp + thumbnails", "curl PUTs, then sharp"), \
        get("cp + thumbnails", "imgfs cp, then read every thumbnail")
    if a and i:
        q = i["median"] / a["median"]
        out.append(("cp + thumbnails", "<= 1.0x curl PUTs then sharp, no source GET",
                    f"{q:.2f}x, {i['note']}",
                    q <= 1.0 and i["note"] == "source GETs 0"))
    i = get("thumbnails", "imgfs after remount")
    if i:
        out.append(("thumbnails after remount", "<= 100 ms",
                    f"{i['median'] * 1000:.0f} ms", i["median"] <= 0.1))
    for tool in ("imgfs first pass", "imgfs second pass"):
        i = get("read 10000 links", tool)
        if i:
            rate = i["amount"] / i["median"]
            out.append((f"links ({tool})", ">= 5000/s", f"{rate:.0f}/s", rate >= 5000))
    return out


def baseline_of(results, r):
    base = {"cp image set": "curl (sequential PUTs)", "write 1 GiB": "curl (one PUT)",
            "read 1 GiB": "curl (one GET)", "ls -l 5000": "boto3 ListObjectsV2",
            "thumbnails": "vipsthumbnail (a process per file)",
            "cp + thumbnails": "curl PUTs, then sharp"}.get(r["workload"])
    for x in results:
        if x["workload"] == r["workload"] and x["tool"] == base:
            return x
    return None


WASTE_TARGETS = {
    # step: (wanted, check(gets, bytes, of))
    "3 x vipsheader + file + cat + viewer": (
        "fetched once: <= 1.2x its size", lambda g, n, of: n <= 1.2 * of),
    "head -c 100 of 25 MiB": ("<= 2 MiB", lambda g, n, of: n <= 2 * MIB),
    "cat after a remount": ("nothing fetched", lambda g, n, of: n == 0),
}


def waste_verdicts(counts):
    out = []
    for c in counts:
        if c["tool"] == "imgfs" and c["workload"] in WASTE_TARGETS:
            text, check = WASTE_TARGETS[c["workload"]]
            out.append((c["workload"], text, f"{c['gets']} GETs, {c['bytes'] / MIB:.2f} MiB",
                        check(c["gets"], c["bytes"], c["of"])))
    return out


def waste_table(counts):
    lines = ["", "| reads | tool | GETs | MiB fetched | x the bytes read |",
             "| --- | --- | ---: | ---: | ---: |"]
    for c in counts:
        lines.append(f"| {c['workload']} | {c['tool']} | {c['gets']} | "
                     f"{c['bytes'] / MIB:.2f} | {c['bytes'] / c['of']:.1f}x |")
    return lines


def table(results, machine, counts=()):
    lines = [f"imgfs bench — {machine}", "",
             "| workload | tool | median | throughput | peak RSS | time vs baseline |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        med = r["median"]
        t = f"{med * 1000:.0f} ms" if med < 1 else f"{med:.2f} s"
        if r["amount"] is None:
            thr = ""
        elif r["rate_unit"]:
            thr = f"{r['amount'] / med:,.0f} {r['rate_unit']}"
        else:
            thr = f"{r['amount'] / MIB / med:.1f} MiB/s"
        rss = f"{r['rss'] / MIB:.0f} MiB" if r["rss"] else ""
        base = baseline_of(results, r)
        ratio = "" if base is None or base is r else f"{med / base['median']:.2f}x"
        lines.append(f"| {r['workload']} | {r['tool']} | {t} | {thr} | {rss} | {ratio} |")
    if counts:
        lines += waste_table(counts)
    lines += ["", "| target | wanted | measured | met |", "| --- | --- | --- | --- |"]
    for w, text, got, ok in verdicts(results) + waste_verdicts(counts):
        lines.append(f"| {w} | {text} | {got} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


