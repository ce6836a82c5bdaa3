#!/usr/bin/python3
"""report.py - turns the JSON lines bench/run collected into results.md
(every figure beside its baseline from the same run, as a ratio) and the PNG
plots of the scaling curves (gnuplot). Standard library only.

Usage: report.py RESULTS.jsonl OUT_DIR
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

MiB, GiB = 1 << 20, 1 << 30
FORMATS = ["safetensors", "sharded", "gguf", "pytorch"]


def t(ns):
    """A duration for people: ns, µs, ms or s with 3 significant digits."""
    if ns is None:
        return "–"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return "%.3g %s" % (ns / div, unit)
    return "%d ns" % ns


def size(b):
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if b >= div:
            v = b / div
            return ("%.0f %s" if v >= 100 or v == int(v) else
                    "%.1f %s" if v >= 10 else "%.2f %s") % (v, unit)
    return "%d B" % b


def ratio(a, b):
    if not a or not b:
        return "–"
    r = a / b
    return ("%.3g×" % r) if r < 1000 else ("%.0f×" % r)


def load(path):
    by = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rec = json.loads(line)
                by[rec["bench"]].append(rec)
    return by


def axis_of(label):
    # "count:safetensors:1000" -> ("count", "safetensors", 1000)
    a, fmt, x = label.split(":")
    return a, fmt, int(x)


class Report:
    def __init__(self, by):
        self.by = by
        self.out = []
        self.m = by["machine"][0]
        self.quick = self.m["mode"] == "quick"
        self.open = {axis_of(r["label"]): r for r in by["open"]}
        self.peers = collections.defaultdict(dict)  # peer -> (axis, fmt, x) -> rec
        for r in by["peer"]:
            if r["label"].count(":") == 2:
                self.peers[r["peer"]][axis_of(r["label"])] = r
        self.unavailable = {r["peer"]: r["why"] for r in by["peer_unavailable"]}
        self.targets = []

    def w(self, *lines):
        self.out.extend(lines)

    def table(self, head, rows):
        self.w("| " + " | ".join(head) + " |", "|" + "---|" * len(head))
        for r in rows:
            self.w("| " + " | ".join(str(c) for c in r) + " |")
        self.w("")

    # ---- sections ------------------------------------------------------

    def header(self):
        m = self.m
        end = self.by["end"][0] if self.by["end"] else {}
        dur = self.by["duration"][0]["seconds"] if self.by["duration"] else None
        self.w("# ttsm benchmarks", "",
               "Written by `bench/run%s` (bench/README.md says what each figure is). Every "
               "figure stands beside a baseline measured in the same run on the same machine, "
               "and the ratio between them is what carries over to other machines: other work "
               "may share this machine (see the load average)." % (" --quick" if self.quick
                                                                   else ""), "")
        self.table(["", ""], [
            ["mode", m["mode"] + (" (small sizes: the targets are judged on a full run)"
                                  if self.quick else "")],
            ["date", m["date"]],
            ["commit", m["commit"] + (" with uncommitted changes" if m["dirty"] else "")],
            ["CPU", "%s, %d cores" % (m["cpu"], m["cores"])],
            ["RAM", size(m["ram_bytes"])],
            ["kernel", m["kernel"]],
            ["file system of the data", m["fs"]],
            ["load average (1 min)", "%.2f at the start, %s at the end" %
             (m["loadavg_start"], "%.2f" % end["loadavg_end"] if end else "?")],
            ["duration", "%d s (build included)" % dur if dur is not None else "?"],
            ["build", "CMake Release (-O3 -DNDEBUG), gcc, in build-bench/"],
        ])

    def targets_section(self):
        self.w("## Targets", "")
        self.table(["target", "measured", "verdict"], self.targets)

    def target(self, name, measured, ok):
        verdict = {True: "**met**", False: "**missed**", None: "**not measured**"}[ok]
        if self.quick and ok is not None:
            verdict += " (quick run: judged on a full run)"
        self.targets.append([name, measured, verdict])

    def startup(self):
        self.w("## Start-up (excluded from every timing below)", "",
               "Each peer is timed inside its own process, after its imports; what a process "
               "pays before it can do anything is here instead (median of 3 runs of a process "
               "that only starts and imports).", "")
        self.table(["process", "start-up"],
                   [[r["what"], t(r["median_ns"])] for r in self.by["startup"]])

    def open_section(self):
        o, peers = self.open, self.peers
        self.w("## Open: until every tensor is usable through the mapping", "",
               "`ttsm_checkpoint_open` plus a data pointer for every tensor, no tensor byte "
               "read (median of the repetitions, warm page cache). **Baseline**: the bare "
               "system calls an mmap-based opener makes on the same files (open, fstat, mmap, "
               "munmap, close), timed in the same process. Peers ran on the same files in the "
               "same run; the peer columns give the peer's time as a multiple of ttsm's.", "")
        for axis, title in (("count", "tensor count (%s of data, sparse)"),
                            ("size", "file size (%s tensors, sparse)")):
            xs = sorted({k[2] for k in o if k[0] == axis})
            if not xs:
                continue
            fixed = (size(o[(axis, "safetensors", xs[0])]["data_bytes"]) if axis == "count"
                     else str(o[(axis, "safetensors", xs[0])]["tensors"]))
            self.w("### Open cost against " + title % fixed, "")
            head = ["format", "tensors" if axis == "count" else "file size", "ttsm open",
                    "syscall floor", "ttsm / floor", "numpy views", "@huggingface/gguf",
                    "torch.load", "torch.load weights_only", "ttsm python state_dict"]
            rows = []
            for fmt in FORMATS:
                for x in xs:
                    r = o.get((axis, fmt, x))
                    if not r:
                        continue
                    row = [fmt, "{:,}".format(x) if axis == "count" else size(x),
                           t(r["open_median_ns"]), t(r["floor_median_ns"]),
                           ratio(r["open_median_ns"], r["floor_median_ns"])]
                    for p in ("numpy open", "@huggingface/gguf", "torch.load",
                              "torch.load weights_only", "ttsm python state_dict"):
                        pr = peers[p].get((axis, fmt, x))
                        row.append("%s (%s)" % (t(pr["median_ns"]),
                                                ratio(pr["median_ns"], r["open_median_ns"]))
                                   if pr else "")
                    rows.append(row)
            self.table(head, rows)
        self.w("The size axis uses **sparse files**: the tensor data are holes that read as "
               "zeros. Opening reads headers only, so the holes are never read by ttsm (nor by "
               "the NumPy and GGUF peers); torch.load reads every byte, which is why it is not "
               "run on the size axis. Sharded checkpoints are 4 shards plus the index.", "")

        self.open_targets()

        # The scaling target: within 2x from the smallest to the largest file.
        xs = sorted({k[2] for k in o if k[0] == "size"})
        if len(xs) >= 2:
            for fmt in FORMATS:
                a, b = o.get(("size", fmt, xs[0])), o.get(("size", fmt, xs[-1]))
                if a and b:
                    r = b["open_median_ns"] / a["open_median_ns"]
                    self.target("Open cost within 2× from %s to %s at %d tensors (%s)" %
                                (size(xs[0]), size(xs[-1]), a["tensors"], fmt),
                                "%s → %s: %.2f×" % (t(a["open_median_ns"]),
                                                    t(b["open_median_ns"]), r), r <= 2.0)

    def open_targets(self):
        """Issue 19: open at 1,000 tensors against the floor; linear cost per
        tensor from 10 to 100,000; peak memory against the header."""
        o = self.open
        for fmt, limit in (("safetensors", 10), ("sharded", 10), ("gguf", 3), ("pytorch", 25)):
            r = o.get(("count", fmt, 1000))
            if r:
                f = r["open_median_ns"] / r["floor_median_ns"]
                self.target("Open ≤ %d× the syscall floor at 1,000 tensors (%s)" % (limit, fmt),
                            "%s vs %s: %.1f×" % (t(r["open_median_ns"]), t(r["floor_median_ns"]),
                                                 f), f <= limit)
        xs = sorted({k[2] for k in o if k[0] == "count"})
        if len(xs) >= 3:
            self.w("### Cost per tensor, from one count to the next", "",
                   "The time one more tensor adds: (open at N₂ − open at N₁) / (N₂ − N₁), "
                   "between consecutive counts of the table above. Linear means these stay "
                   "the same; the fixed cost of an open (the syscall floor and set-up) cancels "
                   "out.", "")
            rows, slopes = [], collections.defaultdict(list)
            for fmt in FORMATS:
                row = [fmt]
                for a, b in zip(xs, xs[1:]):
                    ra, rb = o.get(("count", fmt, a)), o.get(("count", fmt, b))
                    if ra and rb:
                        sl = (rb["open_median_ns"] - ra["open_median_ns"]) / (b - a)
                        slopes[fmt].append(sl)
                        row.append("%.0f ns" % sl)
                    else:
                        row.append("–")
                rows.append(row)
            self.table(["format"] + ["{:,} → {:,}".format(a, b) for a, b in zip(xs, xs[1:])],
                       rows)
            for fmt in ("safetensors", "sharded", "gguf", "pytorch"):
                sl = [x for x in slopes[fmt] if x > 0]
                if len(sl) == len(slopes[fmt]) and sl:
                    f = max(sl) / min(sl)
                    self.target("Open linear from %s to %s tensors, within 1.5× per tensor (%s)"
                                % ("{:,}".format(xs[0]), "{:,}".format(xs[-1]), fmt),
                                "%.0f to %.0f ns a tensor: %.2f×" % (min(sl), max(sl), f),
                                f <= 1.5)
        rss = self.by["open_rss"]
        if rss:
            self.w("### Memory an open adds", "",
                   "Peak RSS growth of a fresh child process that opens one file (its peak "
                   "reset through /proc/self/clear_refs first), against the header bytes the "
                   "readers parse (safetensors: 8 + N per file; sharded: the index plus every "
                   "shard's header). The table a checkpoint keeps (96 bytes of "
                   "`ttsm_tensor_info`, 32 of storage, the name and shape, the name index) is "
                   "part of it. **Fixed cost**: the growth of the smallest file of the same "
                   "format (10 tensors: the library's code paged in, the allocator's first "
                   "arena), which the target leaves out, as \"at most 2× the header\" is about "
                   "what grows with the header.", "")
            fixed = {}
            for r in rss:
                fmt = axis_of(r["label"])[1]
                if fmt not in fixed or r["tensors"] < fixed[fmt]["tensors"]:
                    fixed[fmt] = r
            rows = []
            for r in rss:
                a, fmt, x = axis_of(r["label"])
                hb, fx = r["header_bytes"], fixed[fmt]["rss_growth"]
                beyond = max(r["rss_growth"] - fx, 0)
                rows.append([fmt, "{:,}".format(r["tensors"]), size(hb) if hb else "–",
                             size(r["rss_growth"]), ratio(r["rss_growth"], hb) if hb else "–",
                             size(beyond) if r is not fixed[fmt] else "(fixed cost)",
                             ratio(beyond, hb) if hb and r is not fixed[fmt] else "–"])
            self.table(["format", "tensors", "header bytes", "peak RSS growth", "× header",
                        "beyond the fixed cost", "× header"], rows)
            for fmt in ("safetensors", "sharded"):
                recs = sorted((r for r in rss if axis_of(r["label"])[1] == fmt and
                               r["header_bytes"]), key=lambda r: r["tensors"])
                if len(recs) > 1:
                    r, fx = recs[-1], recs[0]
                    beyond = r["rss_growth"] - fx["rss_growth"]
                    f = beyond / r["header_bytes"]
                    self.target("Peak memory at open ≤ 2× the header (%s, %s tensors)" %
                                (fmt, "{:,}".format(r["tensors"])),
                                "%s for %s of header, beyond the fixed %s: %.2f× (%.2f× with it)"
                                % (size(beyond), size(r["header_bytes"]),
                                   size(fx["rss_growth"]), f,
                                   r["rss_growth"] / r["header_bytes"]), f <= 2.0)

    def usable(self):
        recs, peers = self.by["usable"], self.by["usable_peer"]
        if not recs:
            return
        self.w("## Time to usable on CPU: load, then every byte once", "",
               "`ttsm_load` in a fresh manager, then every byte of every tensor read once, "
               "eight at a time, as a first forward pass would (bench_usable.c): **mmap** as "
               "loads are by default; **mmap + prefetch**, the `prefetch` option "
               "(docs/manager.md), the pass starting at once beside the background prefetch; "
               "**read mode**, pread into owned buffers at load. Peers, in their own process "
               "after their imports: **NumPy** (memmap views, then the same pass) and "
               "**torch.load** (weights_only, of .pt twins written by torch.save from the same "
               "bytes, then the same pass). **Baselines**: `read()` of the same files in order, "
               "8 MiB at a time into one reused buffer, each piece passed over once (how fast "
               "the bytes can arrive at all: the limit), and `read() into fresh buffers`, what "
               "a copying loader pays. Throughput is the model's file bytes over the time. "
               "Cold: the page cache dropped before every run (%s); the methods take turns." %
               {"drop_caches": "`echo 3 > /proc/sys/vm/drop_caches`, as root",
                "fadvise": "posix_fadvise(DONTNEED) on the files: drop_caches needs root",
                "none": "it could not be dropped: the cold rows are not cold",
                "warm": "–"}.get(next((r["drop"] for r in recs if r["cache"] == "cold"),
                                      "warm"), "?"), "")
        labels = []
        for r in recs:
            if r["label"] not in labels:
                labels.append(r["label"])
        self.usable_rows = []
        for lab in labels:
            mine = [r for r in recs if r["label"] == lab]
            fb = mine[0]["file_bytes"]
            title = {"chatterbox": "ChatterBox-shaped model (%d files)" % mine[0]["files"],
                     "big": "one safetensors file"}.get(lab, lab)
            self.w("### %s, %s" % (title, size(fb)), "")
            rows = []
            for cache in ("cold", "warm"):
                base = next((r for r in mine if r["cache"] == cache and r["method"] == "read()"),
                            None)
                items = [(r["method"], r["time_median_ns"], r["file_bytes"]) for r in mine
                         if r["cache"] == cache]
                items += [(p["peer"], p["median_ns"], p["file_bytes"]) for p in peers
                          if p["label"] == lab and p["cache"] == cache]
                for meth, ns, b in items:
                    g = b / ns
                    rows.append([meth, cache, t(ns), "%.2f GB/s" % g,
                                 "%.0f%%" % (100 * base["time_median_ns"] / ns) if base else "–"])
                    self.usable_rows.append((lab, meth, cache, g))
            self.table(["method", "page cache", "time (median)", "throughput", "× read()"], rows)
            for meth in ("mmap + prefetch",):
                r = next((x for x in mine if x["cache"] == "cold" and x["method"] == meth), None)
                base = next((x for x in mine if x["cache"] == "cold" and x["method"] == "read()"),
                            None)
                if r and base:
                    f = base["time_median_ns"] / r["time_median_ns"]
                    self.target("Time to usable, cold ≥ 90%% of sequential read() (%s, %s, %s)" %
                                (title, size(fb), meth), "%s vs %s: %.0f%%" %
                                (t(r["time_median_ns"]), t(base["time_median_ns"]), 100 * f),
                                f >= 0.9)
        if any(r["cache"] == "cold" for r in recs):
            self.w("At most %.1f%% of a model's bytes were still in the page cache when a cold run "
                   "started (mincore)." % (100 * max(r["resident_max"] for r in recs
                                                     if r["cache"] == "cold")), "")

    def big_section(self):
        o, peers = self.open, self.peers
        big = [k for k in o if k[0] == "big"]
        if not big:
            return
        x = big[0][2]
        st, pt = o.get(("big", "safetensors", x)), o.get(("big", "pytorch", x))
        self.w("### A %s checkpoint of %d tensors (real data): ttsm against torch.load" %
               (size(x), st["tensors"] if st else 0), "",
               "The same weights as safetensors (written by gen_data.py) and as .pt "
               "(written by torch.save from those bytes). \"Usable tensors\": ttsm's pointers "
               "into the mapping; torch.load's tensors in memory; NumPy's views; the Python "
               "binding's torch tensors through DLPack.", "")
        rows = []
        for fmt, r in (("safetensors", st), ("pytorch", pt)):
            if r:
                rows.append(["ttsm open (C)", fmt, t(r["open_median_ns"]), "1×"])
        ref = pt or st
        for p in ("torch.load", "torch.load weights_only", "numpy open",
                  "ttsm python state_dict"):
            for fmt in ("safetensors", "pytorch"):
                pr = peers[p].get(("big", fmt, x))
                if pr:
                    base = o.get(("big", fmt, x)) or ref
                    rows.append([p, fmt, t(pr["median_ns"]),
                                 ratio(pr["median_ns"], base["open_median_ns"])])
        self.table(["what", "file", "time to usable tensors", "× ttsm open of that file"], rows)
        for p in ("torch.load", "torch.load weights_only"):
            pr = peers[p].get(("big", "pytorch", x))
            if pr and pt:
                f = pr["median_ns"] / pt["open_median_ns"]
                self.target("Open a %s checkpoint ≥ 100× faster than %s of the same weights "
                            "(ttsm opens the same .pt)" % (size(x), p),
                            "%s vs %s: %.0f×" % (t(pt["open_median_ns"]), t(pr["median_ns"]), f),
                            f >= 100)
        for p, why in self.unavailable.items():
            if "statedict" in p:
                self.w("Not measured: the Python binding's state_dict(): %s" % why, "")

    def materialise(self):
        recs = self.by["materialise"]
        if not recs:
            return
        self.w("## Materialise: every tensor byte in memory", "",
               "One %s file of real data. **ttsm_read**: read mode, every tensor's bytes "
               "pread into owned buffers (open and close included). **ttsm_mmap_touch**: mmap "
               "mode, every page of every tensor touched. **Baselines**, same file, same "
               "process: `read` = plain read() of the whole file into one fresh malloc'd "
               "buffer (page faults included, as for ttsm's buffers), `read_prefaulted` = into "
               "a buffer already faulted in, and `memcpy` between two faulted-in buffers." %
               size(recs[1]["bytes"] if len(recs) > 1 else 0), "")
        warm = {r["method"]: r for r in recs if r["cache"] == "warm"}
        cold = {r["method"]: r for r in recs if r["cache"] == "cold"}
        mc = next((r for r in recs if r["method"] == "memcpy"), None)
        rows = []
        for cache, d in (("warm", warm), ("cold", cold)):
            base = d.get("read")
            for meth in ("read", "read_prefaulted", "ttsm_read", "ttsm_mmap_touch"):
                r = d.get(meth)
                if not r:
                    continue
                rows.append([meth, cache, "%.2f GB/s" % r["gbps_median"], t(r["t_median_ns"]),
                             ratio(r["gbps_median"], base["gbps_median"]) if base else "–",
                             ratio(r["gbps_median"], mc["gbps_median"]) if mc else "–"])
        if mc:
            rows.append(["memcpy (%s)" % size(mc["bytes"]), "–", "%.2f GB/s" % mc["gbps_median"],
                         t(mc["t_median_ns"]), "–", "1×"])
        self.table(["method", "page cache", "throughput (median)", "time", "× read()",
                    "× memcpy"], rows)
        if cold:
            c = next(iter(cold.values()))
            self.w("Cold: the page cache was dropped before each repetition with **%s**; at "
                   "most %.1f%% of the file was still resident when timing started." %
                   ({"drop_caches": "`echo 3 > /proc/sys/vm/drop_caches` (root)",
                     "fadvise": "posix_fadvise(POSIX_FADV_DONTNEED) on the file (drop_caches "
                                "is not writable here)",
                     "none": "nothing (neither worked: the cold rows are not cold)"}
                    [c["drop_method"]], 100 * max(r["resident_before"] for r in cold.values())),
                   "")
        else:
            self.w("Cold: not measured (the page cache could not be dropped).", "")
        npm = [r for r in self.by["peer"] if r["peer"] == "numpy materialise"]
        if npm:
            r = npm[0]
            g = r["bytes"] / r["median_ns"]
            self.w("Peer: NumPy (memmap views, then `np.array` copies of every tensor) reaches "
                   "%.2f GB/s on the same file (%s of warm read())." %
                   (g, ratio(g, warm["read"]["gbps_median"]) if "read" in warm else "–"), "")
        pre = warm.get("read_prefaulted")
        for meth, what in (("ttsm_read", "read mode"), ("ttsm_mmap_touch", "mmap-touch")):
            if meth in warm and "read" in warm:
                f = warm[meth]["gbps_median"] / warm["read"]["gbps_median"]
                extra = (" (against read() into a buffer already faulted in, %.2f GB/s: %.0f%%)"
                         % (pre["gbps_median"], 100 * warm[meth]["gbps_median"] /
                            pre["gbps_median"]) if pre else "")
                self.target("Materialise (%s) ≥ 90%% of plain read() of the same file into one "
                            "fresh buffer, warm" % what, "%.2f vs %.2f GB/s: %.0f%%%s" %
                            (warm[meth]["gbps_median"], warm["read"]["gbps_median"], 100 * f,
                             extra), f >= 0.9)

    def cache(self):
        by = self.by
        self.w("## Cache", "")
        timer = by["timer"][0]["median_ns"] if by["timer"] else None
        self.w("### Hit latency", "",
               "`ttsm_load` of a cached key, one call per sample (the clock read between "
               "samples costs about %s in C). Two threads: both hit the same entry at once; "
               "their samples are pooled. **Baseline**: `ttsm_cache_key()` of the same config, "
               "the key every hit must compute, in the same process. Python: "
               "`Manager.load()` (building the Model object included) and, as baselines, "
               "`ttsm.cache_key()` and a bare ctypes call." % t(timer), "")
        rows = []
        for r in by["cache_hit"]:
            rows.append([r["label"], t(r["hit1_median_ns"]), t(r["hit1_p99_ns"]),
                         t(r["hit2_median_ns"]), t(r["hit2_p99_ns"]), t(r["key_median_ns"]),
                         ratio(r["hit1_median_ns"], r["key_median_ns"])])
        py = by["py_cache"][0] if by["py_cache"] else None
        pyn = by["py_cache_named"][0] if by.get("py_cache_named") else None
        if py:
            rows.append(["file engine, model_path (Python)", t(py["hit1_median_ns"]),
                         t(py["hit1_p99_ns"]), t(py["hit2_median_ns"]), t(py["hit2_p99_ns"]),
                         t(py["key_median_ns"]), ratio(py["hit1_median_ns"],
                                                       py["key_median_ns"])])
        if pyn:
            rows.append(["manifest engine by name (Python)", t(pyn["hit1_median_ns"]),
                         t(pyn["hit1_p99_ns"]), t(pyn["hit2_median_ns"]), t(pyn["hit2_p99_ns"]),
                         t(pyn["key_median_ns"]), ratio(pyn["hit1_median_ns"],
                                                        pyn["key_median_ns"])])
        self.table(["config", "median", "p99", "2 threads median", "2 threads p99",
                    "baseline: cache key", "hit / key"], rows)
        if py:
            self.w("Python floors: a bare ctypes call (`ttsm_version`) %s median; the "
                   "timer itself %s." % (t(py["ctypes_median_ns"]), t(py["timer_median_ns"])),
                   "")
        if pyn:
            self.w("The manifest engine by name from Python: `Manager.load()` %s median "
                   "against the same C hit made through a bare ctypes call in that process, %s "
                   "(the C hit alone, without Python: the row above)." %
                   (t(pyn["hit1_median_ns"]), t(pyn["ctypes_hit_median_ns"])), "")
        for r in by["cache_hit"]:
            self.target("Cache hit median ≤ 200 ns in C (%s)" % r["label"].replace(" (C)", ""),
                        t(r["hit1_median_ns"]) + " (the key alone: %s)" % t(r["key_median_ns"]),
                        r["hit1_median_ns"] <= 200)
            if "model_path" in r["label"]:
                self.target("Cache hit median ≤ 500 ns with model_path (C)",
                            t(r["hit1_median_ns"]) + " (resolving the path, the key: %s)" %
                            t(r["key_median_ns"]), r["hit1_median_ns"] <= 500)
        if by["entries"]:
            e = by["entries"]
            f = max(x["hit_median_ns"] for x in e) / e[0]["hit_median_ns"]
            self.target("Hit cost flat from %s to %s entries, within 1.5×" %
                        ("{:,}".format(e[0]["entries"]), "{:,}".format(e[-1]["entries"])),
                        ", ".join("%s: %s" % ("{:,}".format(x["entries"]), t(x["hit_median_ns"]))
                                  for x in e) + ": %.2f×" % f +
                        ("" if "random_read_ns" not in e[-1] else
                         " (one random memory read at %s entries: %s)" %
                         ("{:,}".format(e[-1]["entries"]), t(e[-1]["random_read_ns"]))), f <= 1.5)
        if pyn:
            self.target("Cache hit median ≤ 5 µs through Python (manifest engine by name)",
                        t(pyn["hit1_median_ns"]) + " (the C hit through ctypes: %s)" %
                        t(pyn["ctypes_hit_median_ns"]), pyn["hit1_median_ns"] <= 5000)
        if py:
            self.target("Cache hit median ≤ 5 µs through Python (file engine, model_path)",
                        t(py["hit1_median_ns"]), py["hit1_median_ns"] <= 5000)
        else:
            why = next((v for k, v in self.unavailable.items() if "cache" in k), "no result")
            self.target("Cache hit median ≤ 5 µs through Python", "not measured: " + why, False)

        if by["single_flight"]:
            r = by["single_flight"][0]
            self.w("### Miss to hit: single-flight with %d waiters" % r["waiters"], "",
                   "%d threads call `ttsm_load` for one key at once on an empty cache; the "
                   "factory sleeps %s (a stand-in for reading a model). %d rounds, each in a "
                   "fresh manager. **Baseline**: the factory's own duration." %
                   (r["waiters"], t(r["load_ns"]), r["rounds"]), "")
            self.table(["factory calls", "misses / hits", "wall, first call to last return "
                        "(median)", "× the load", "wake-up after the load: median", "p99",
                        "max"],
                       [["%d for %d rounds" % (r["factory_calls"], r["rounds"]),
                         "%d / %d" % (r["misses"], r["hits"]), t(r["wall_median_ns"]),
                         ratio(r["wall_median_ns"], r["load_ns"]), t(r["wake_median_ns"]),
                         t(r["wake_p99_ns"]), t(r["wake_max_ns"])]])
        if by["churn"]:
            self.w("### Eviction churn: every load evicts", "",
                   "Two 1 MiB checkpoints loaded in turn under a budget that holds one: each "
                   "load evicts the other. `cpu`: tensors point into the mapping. A registered "
                   "device that does not share host memory (`bdev`, malloc + memcpy) copies "
                   "every byte on each load. **Baseline**: what a load must do at least, in the "
                   "same process: open the checkpoint and get every tensor (plus, for the "
                   "copying device, malloc + memcpy of the bytes), then close.", "")
            self.table(["device", "loads", "evictions", "loads/s", "baseline/s",
                        "× baseline"],
                       [[r["label"], r["loads"], r["evictions"], "{:,.0f}".format(r["loads_per_s"]),
                         "{:,.0f}".format(r["baseline_per_s"]),
                         ratio(r["loads_per_s"], r["baseline_per_s"])] for r in by["churn"]])
        if by["entries"]:
            ents = by["entries"]
            b = ents[0]
            self.w("### Cost per operation as the cache grows", "",
                   "A registered engine with no files (keys differ by one param), N entries "
                   "cached; hits on random entries, misses of new keys (each unloaded again, so "
                   "N stays). **Baseline**: the same operation with 1 entry. For reference, "
                   "\"random read\": one dependent read of a random cache line in a buffer as "
                   "large as the heap the cache holds at N (measured after the hits, in the same "
                   "process); a hit makes about three such reads that depend on each other (the "
                   "caller's config, its memo slot, the entry's reference count), so once the "
                   "tables outgrow the processor's caches a hit costs what memory latency costs.",
                   "")
            self.table(["entries", "hit median", "hit p99", "× 1 entry", "miss median",
                        "miss p99", "× 1 entry", "cache heap", "random read"],
                       [["{:,}".format(r["entries"]), t(r["hit_median_ns"]), t(r["hit_p99_ns"]),
                         ratio(r["hit_median_ns"], b["hit_median_ns"]), t(r["miss_median_ns"]),
                         t(r["miss_p99_ns"]), ratio(r["miss_median_ns"], b["miss_median_ns"]),
                         size(r["heap_bytes"]) if "heap_bytes" in r else "–",
                         t(r["random_read_ns"]) if "random_read_ns" in r else "–"]
                        for r in ents])

    def engines(self):
        recs = self.by["engine"]
        if not recs:
            return
        self.w("## Engines: ttsm_load of each sample model", "",
               "Each engine's default model from the miniature store that "
               "tests/fixtures/gen_store.py writes (ComfyUI layout), and a ChatterBox-shaped "
               "store of real size (gen_data.py: t3_cfg, s3gen and ve as safetensors with the "
               "real file names; their tensor counts and byte shares are **estimates**; "
               "tokenizer.json and conds.pt from the miniature store). Cold: the model's files "
               "dropped from the page cache, a fresh manager. Warm: page cache warm, a fresh "
               "manager (a cache miss). Hit: the same manager again. **Baseline**: plain "
               "read() of every file of the model, in the same cache state.", "")
        rows = []
        for r in recs:
            rows.append([r["label"], r["files"], size(r["bytes"]), "{:,}".format(r["tensors"]),
                         t(r.get("cold_ns")), t(r.get("cold_read_ns")),
                         ratio(r.get("cold_ns"), r.get("cold_read_ns")), t(r["warm_ns"]),
                         t(r["warm_read_ns"]), ratio(r["warm_ns"], r["warm_read_ns"]),
                         t(r["hit_ns"])])
        self.table(["model", "files", "bytes", "tensors", "cold load", "cold read()",
                    "× read()", "warm load", "warm read()", "× read()", "hit"], rows)

    def manifests(self):
        recs = sorted(self.by["manifests"], key=lambda r: r["models"])
        if not recs:
            return
        self.w("## Manifests: work against size", "",
               "One engine manifest of N models (one repo and one component each, 106 bytes a "
               "model) in a folder: `ttsm_engines_load_dir` (parse, validate, register) and the "
               "cache key of every model (a lookup by name each, as `ttsm ls` and every load "
               "make). Time per model at each N; **baseline**: the per-model time at the "
               "smallest N. Linear work keeps the ratio near 1; a parse that compared every "
               "model with every other made it grow with N (35,000 models took seconds).", "")
        b = recs[0]
        rows = [["{:,}".format(r["models"]), size(r["bytes"]), t(r["load_median_ns"]),
                 t(r["load_per_model_ns"]), ratio(r["load_per_model_ns"], b["load_per_model_ns"]),
                 t(r["keys_median_ns"]), t(r["keys_per_model_ns"]),
                 ratio(r["keys_per_model_ns"], b["keys_per_model_ns"])] for r in recs]
        self.table(["models", "manifest", "load", "per model", "× smallest N", "all keys",
                    "per model", "× smallest N"], rows)
        top = recs[-1]
        grow = max(top["load_per_model_ns"] / b["load_per_model_ns"],
                   top["keys_per_model_ns"] / b["keys_per_model_ns"])
        self.target("Manifest work linear in its size: per-model time at %s models within 2× "
                    "of %s models" % ("{:,}".format(top["models"]), "{:,}".format(b["models"])),
                    "%.2f×" % grow, grow <= 2.0)

    def downloads(self):
        dl, par = self.by["download"], self.by["pull_parallel"]
        if not dl and not par:
            return
        self.w("## Downloads from the loopback test Hub", "",
               "tests/hub/hub_server.py serves the files (threads in the benchmark's process) "
               "on 127.0.0.1. One file: `ttsm pull` (HEAD, GET from the CDN port, SHA-256 while "
               "the bytes stream, rename, snapshot link; process start included) against "
               "**baseline** `curl -o` of the same CDN URL into the same file system, "
               "interleaved, medians. A model of several files: `ttsm pull --jobs 4` against "
               "`--jobs 1`. The server is Python, so both clients meet the same ceiling.", "")
        rows = []
        for r in dl:
            g_t = r["bytes"] / r["ttsm_median_ns"] * 1e9 / GiB
            g_c = r["bytes"] / r["curl_median_ns"] * 1e9 / GiB
            cv = r.get("curl_sha256sum_median_ns")
            rows.append(["one file, %s" % size(r["bytes"]), t(r["ttsm_median_ns"]),
                         "%.2f GiB/s" % g_t, t(r["curl_median_ns"]), "%.2f GiB/s" % g_c,
                         ratio(g_t, g_c), t(cv), ratio(cv, r["ttsm_median_ns"])])
            self.target("download throughput vs curl -o", ratio(g_t, g_c) + " of curl's",
                        g_t >= 0.8 * g_c)
        if rows:
            self.table(["what", "ttsm pull", "throughput", "curl -o", "throughput",
                        "× curl", "curl -o + sha256sum", "× that (time)"], rows)
            self.w("ttsm checks the SHA-256 of every byte, curl checks nothing: the last two "
                   "columns add `sha256sum` of curl's file, the check ttsm makes. The hash runs "
                   "on a thread beside the download; on a machine whose cores the server and the "
                   "receiving already fill, it still costs its CPU time.", "")
        rows = []
        for r in par:
            rows.append(["%d files × %s" % (r["files"], size(r["file_bytes"])),
                         t(r["serial_median_ns"]), t(r["parallel_median_ns"]),
                         ratio(r["serial_median_ns"], r["parallel_median_ns"])])
        if rows:
            self.table(["model", "--jobs 1", "--jobs 4", "speed-up"], rows)

    def gpu(self):
        self.w("## GPU", "")
        for r in self.by["gpu"]:
            if r["status"] != "run":
                self.w("Not run: %s." % r["why"].replace("no GPU: ", "no GPU — "), "")
                for name in ("CUDA upload, warm, ≥ 90% of pinned cuMemcpyHtoD of the same bytes",
                             "CUDA upload, cold, ≥ 90% of the smaller of disk and PCIe bandwidth"):
                    self.target(name, "not run: " + r["why"], None)
                return
            f = r["ttsm_load_gbps"] / r["pinned_htod_gbps"]
            self.target("CUDA upload, warm, ≥ 90% of pinned cuMemcpyHtoD of the same bytes",
                        "%.2f vs %.2f GB/s: %.0f%%" % (r["ttsm_load_gbps"], r["pinned_htod_gbps"],
                                                      100 * f), f >= 0.9)
            if "cold_load_gbps" in r:
                lim = min(r["disk_read_gbps"], r["pinned_htod_gbps"])
                which = "disk" if r["disk_read_gbps"] <= r["pinned_htod_gbps"] else "PCIe"
                self.target("CUDA upload, cold, ≥ 90% of the smaller of disk and PCIe bandwidth",
                            "%.2f vs %.2f GB/s (%s): %.0f%%" % (r["cold_load_gbps"], lim, which,
                                                              100 * r["cold_load_gbps"] / lim),
                            r["cold_load_gbps"] >= 0.9 * lim)
            else:
                self.target("CUDA upload, cold, ≥ 90% of the smaller of disk and PCIe bandwidth",
                            "not measured by this bench_gpu (warm page cache only)", None)
            self.w("Device: %s. File %s. Cold: the file dropped from the page cache before each "
                   "run (%s; at most %.1f%% still resident)." %
                   (r["device"], size(r["file_bytes"]), r.get("drop", "–"),
                    100 * r.get("resident_max", 0)), "")
            rows = [["ttsm_load to cuda:0 (fresh manager, page cache warm)",
                     "%.2f" % r["ttsm_load_gbps"],
                     ratio(r["ttsm_load_gbps"], r["pinned_htod_gbps"])],
                    ["cuMemcpyHtoD from pinned memory", "%.2f" % r["pinned_htod_gbps"], "1×"],
                    ["cuMemcpyHtoD from pageable memory", "%.2f" % r["pageable_htod_gbps"],
                     ratio(r["pageable_htod_gbps"], r["pinned_htod_gbps"])]]
            if "cold_load_gbps" in r:
                rows += [["ttsm_load to cuda:0, cold", "%.2f" % r["cold_load_gbps"],
                          ratio(r["cold_load_gbps"], r["pinned_htod_gbps"])],
                         ["read() of the file, cold (the disk)", "%.2f" % r["disk_read_gbps"],
                          ratio(r["disk_read_gbps"], r["pinned_htod_gbps"])]]
            self.table(["what", "GB/s", "× pinned cuMemcpyHtoD"], rows)
        for r in self.by["gpu_dlpack"]:
            self.w("Python: load on cuda:0 %s, then the first `torch.from_dlpack` %s (torch %s)."
                   % (t(r["load_ns"]), t(r["first_from_dlpack_ns"]), r["torch"]), "")
        for p, why in self.unavailable.items():
            if p.endswith("cuda"):
                self.w("Not measured: time to the first torch.from_dlpack on cuda: %s." % why, "")

    def render(self):
        self.header()
        body_start = len(self.out)
        self.startup()
        self.open_section()
        self.big_section()
        self.usable()
        self.materialise()
        self.cache()
        self.engines()
        self.manifests()
        self.downloads()
        self.gpu()
        body = self.out[body_start:]
        self.out = self.out[:body_start]
        self.targets_section()
        self.out += body
        self.w("## Plots", "", "![open vs tensor count](open_vs_tensors.png)", "",
               "![open cost per tensor](open_per_tensor.png)", "",
               "![open vs file size](open_vs_size.png)", "",
               "![time to usable](usable.png)", "",
               "![cache cost vs entries](cache_entries.png)", "")
        return "\n".join(self.out).rstrip() + "\n"

    # ---- plots ---------------------------------------------------------

    def plots(self, out_dir):
        if not shutil.which("gnuplot"):
            sys.stderr.write("report.py: gnuplot not found (scripts/install-deps installs "
                             "gnuplot-nox): no plots\n")
            return
        tmp = tempfile.mkdtemp(prefix="ttsm-plot.")
        try:
            self._plot_open(tmp, out_dir, "count", "open_vs_tensors.png",
                            "Open until every tensor is usable, against tensor count",
                            "tensors", 1)
            self._plot_open(tmp, out_dir, "size", "open_vs_size.png",
                            "Open cost against file size (1000 tensors, sparse files)",
                            "file size (MiB)", MiB)
            self._plot_entries(tmp, out_dir)
            self._plot_per_tensor(tmp, out_dir)
            self._plot_usable(tmp, out_dir)
        finally:
            shutil.rmtree(tmp)

    def _gnuplot(self, script):
        subprocess.run(["gnuplot"], input=script, text=True, check=True)

    def _series(self, tmp, name, points):
        path = os.path.join(tmp, name + ".dat")
        with open(path, "w") as f:
            for x, y in points:
                f.write("%g %g\n" % (x, y))
        return path

    def _plot_open(self, tmp, out_dir, axis, png, title, xlabel, xdiv):
        series = []
        for fmt in FORMATS:
            pts = sorted((k[2] / xdiv, r["open_median_ns"] / 1e3) for k, r in self.open.items()
                         if k[0] == axis and k[1] == fmt)
            if pts:
                series.append(("ttsm " + fmt, pts, "lp lw 2"))
        for p, fmt, name in (("numpy open", "safetensors", "numpy views (safetensors)"),
                             ("@huggingface/gguf", "gguf", "@huggingface/gguf (gguf)"),
                             ("torch.load", "pytorch", "torch.load (.pt)"),
                             ("torch.load weights_only", "pytorch", "torch.load weights_only"),
                             ("ttsm python state_dict", "safetensors",
                              "ttsm python state_dict (safetensors)")):
            pts = sorted((k[2] / xdiv, r["median_ns"] / 1e3) for k, r in self.peers[p].items()
                         if k[0] == axis and k[1] == fmt)
            if pts:
                series.append((name, pts, "lp dt 2"))
        if not series:
            return
        plots = ", ".join("'%s' u 1:2 w %s t '%s'" % (self._series(tmp, "%s%d" % (axis, i), pts),
                                                      style, name)
                          for i, (name, pts, style) in enumerate(series))
        self._gnuplot("set terminal pngcairo size 960,600 font 'Sans,10'\n"
                      "set termoption noenhanced\nset output '%s'\nset title '%s'\n"
                      "set logscale xy\nset grid\nset format y '%%g'\nset key top left\n"
                      "set xlabel '%s'\nset ylabel 'time (µs), median'\n"
                      "plot %s\n" % (os.path.join(out_dir, png), title, xlabel, plots))

    def _plot_per_tensor(self, tmp, out_dir):
        series = []
        for fmt in FORMATS:
            pts = sorted((k[2], r["open_median_ns"] / k[2]) for k, r in self.open.items()
                         if k[0] == "count" and k[1] == fmt)
            if pts:
                series.append((fmt, pts))
        if not series:
            return
        plots = ", ".join("'%s' u 1:2 w lp lw 2 t 'ttsm %s'" % (self._series(tmp, "pt%d" % i,
                                                                            pts), name)
                          for i, (name, pts) in enumerate(series))
        self._gnuplot("set terminal pngcairo size 960,600 font 'Sans,10'\n"
                      "set termoption noenhanced\nset output '%s'\n"
                      "set title 'Open: time per tensor against tensor count (median)'\n"
                      "set logscale xy\nset grid\nset format y '%%g'\nset key top right\n"
                      "set xlabel 'tensors'\nset ylabel 'open time / tensors (ns)'\n"
                      "plot %s\n" % (os.path.join(out_dir, "open_per_tensor.png"), plots))

    def _plot_usable(self, tmp, out_dir):
        rows = getattr(self, "usable_rows", [])
        if not rows:
            return
        labels = []
        for lab, _, _, _ in rows:
            if lab not in labels:
                labels.append(lab)
        script = ("set terminal pngcairo size 1100,%d font 'Sans,10'\n"
                  "set termoption noenhanced\nset output '%s'\nset multiplot layout %d,1\n"
                  % (380 * len(labels), os.path.join(out_dir, "usable.png"), len(labels)))
        for i, lab in enumerate(labels):
            meths = []
            for l2, m, _, _ in rows:
                if l2 == lab and m not in meths:
                    meths.append(m)
            path = os.path.join(tmp, "usable%d.dat" % i)
            with open(path, "w") as f:
                for m in meths:
                    g = {c: gb for l2, m2, c, gb in rows if l2 == lab and m2 == m}
                    f.write('"%s" %g %g\n' % (m, g.get("cold", 0), g.get("warm", 0)))
            script += ("set title 'Time to usable (%s): throughput, file bytes over load + first "
                       "pass'\nset style data histograms\nset style histogram clustered gap 1\n"
                       "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\n"
                       "set ylabel 'GB/s (median)'\nset xtics rotate by -20\nset key top right\n"
                       "plot '%s' u 2:xtic(1) t 'cold page cache', '' u 3 t 'warm'\n" % (lab, path))
        script += "unset multiplot\n"
        self._gnuplot(script)

    def _plot_entries(self, tmp, out_dir):
        ents = self.by["entries"]
        if not ents:
            return
        h = self._series(tmp, "hit", [(r["entries"], r["hit_median_ns"] / 1e3) for r in ents])
        hp = self._series(tmp, "hitp", [(r["entries"], r["hit_p99_ns"] / 1e3) for r in ents])
        m = self._series(tmp, "miss", [(r["entries"], r["miss_median_ns"] / 1e3) for r in ents])
        self._gnuplot("set terminal pngcairo size 960,600 font 'Sans,10'\n"
                      "set termoption noenhanced\nset output '%s'\n"
                      "set title 'Cache: cost per operation against cached entries'\n"
                      "set logscale xy\nset grid\nset format y '%%g'\nset key top left\n"
                      "set xlabel 'cached entries'\nset ylabel 'time (µs)'\n"
                      "plot '%s' u 1:2 w lp lw 2 t 'hit, median', '%s' u 1:2 w lp dt 2 "
                      "t 'hit, p99', '%s' u 1:2 w lp lw 2 t 'miss (load + unload), median'\n" %
                      (os.path.join(out_dir, "cache_entries.png"), h, hp, m))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    rep = Report(load(argv[0]))
    text = rep.render()
    with open(os.path.join(argv[1], "results.md"), "w") as f:
        f.write(text)
    rep.plots(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
