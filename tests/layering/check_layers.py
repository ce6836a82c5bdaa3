#!/usr/bin/env python3
"""check_layers.py - keeps src/ layered as docs/internals/architecture.md says.

Reads every `#include "..."` in src/ and tools/ and, given the build's object
files, every symbol one object takes from another (calls through the public
header count too). It fails when:
  - a .c file sits at the top of src/;
  - an internal include does not name its folder ("base/error.h");
  - a file includes or calls into a layer above its own;
  - modules (a .c with its .h) include or call each other in a circle,
    inside a folder or across folders;
  - a tools/ file includes anything but the public header and tools/ headers.
Prints the include edges between folders, so a review can see them whole.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

# Bottom first. A file may include and call files of its own layer and of
# layers before it in this list, never after.
LAYERS = ["base", "formats", "devices", "manifest", "store", "engines", "cache"]
PUBLIC = {"ttsm.h", "dlpack.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def modules_of(top, folder, exts=(".c", ".h")):
    """Maps module name ("cache/manager") to its files."""
    mods = collections.defaultdict(list)
    for dirpath, _, names in os.walk(os.path.join(top, folder)):
        for n in sorted(names):
            if os.path.splitext(n)[1] in exts:
                path = os.path.join(dirpath, n)
                rel = os.path.relpath(path, os.path.join(top, folder))
                mods[os.path.splitext(rel)[0]].append(path)
    return mods


def layer_of(module):
    return module.split("/", 1)[0]


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def include_graph(top, problems):
    mods = modules_of(top, "src")
    graph = collections.defaultdict(set)
    for mod, files in mods.items():
        if "/" not in mod:
            problems.append(f"src/{os.path.basename(files[0])}: files belong in a layer folder")
            continue
        if layer_of(mod) not in LAYERS:
            problems.append(f"src/{mod}: folder '{layer_of(mod)}' is not a layer "
                            f"(layers: {', '.join(LAYERS)})")
            continue
        for path in files:
            text = open(path, encoding="utf-8").read()
            for inc in INCLUDE.findall(text):
                if inc in PUBLIC:
                    continue
                target = os.path.splitext(inc)[0]
                where = os.path.relpath(path, top)
                if target not in mods:
                    problems.append(f"{where}: #include \"{inc}\" is not a src/ header named "
                                    "by its folder (\"layer/file.h\")")
                    continue
                if target == mod:
                    continue
                graph[mod].add(target)
    return mods, graph


def read_symbols(obj, mod, defined, wanted):
    """Adds what object `obj` of module `mod` defines and takes from others."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "U":
            wanted[mod].add(f[1])
        elif len(f) == 3 and f[1] in "TDBRC":
            defined[f[2]] = mod


def object_graph(objdir, mods):
    """Symbol edges between modules, from `nm` of the library's objects."""
    defined, wanted = {}, collections.defaultdict(set)
    for dirpath, _, names in os.walk(objdir):
        for n in names:
            if not n.endswith(".c.o"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, n), objdir)
            parts = rel.split(os.sep)
            if "src" not in parts:
                continue  # generated sources
            mod = "/".join(parts[parts.index("src") + 1:])[: -len(".c.o")]
            if mod not in mods:
                continue
            read_symbols(os.path.join(dirpath, n), mod, defined, wanted)
    graph = collections.defaultdict(set)
    for mod, syms in wanted.items():
        for s in syms:
            d = defined.get(s)
            if d and d != mod:
                graph[mod].add(d)
    return graph, len(defined)


def check_graph(graph, what, problems):
    for mod, targets in sorted(graph.items()):
        for t in sorted(targets):
            if LAYERS.index(layer_of(t)) > LAYERS.index(layer_of(mod)):
                problems.append(f"{what}: src/{mod} -> src/{t} goes up from "
                                f"{layer_of(mod)} to {layer_of(t)}")
    circles = cycles(graph)
    for c in circles:
        problems.append(f"{what}: circle between " + ", ".join("src/" + m for m in c))
    folders = collections.defaultdict(set)
    for mod, targets in graph.items():
        for t in targets:
            if layer_of(t) != layer_of(mod):
                folders[layer_of(mod)].add(layer_of(t))
    for c in cycles(folders):
        problems.append(f"{what}: circle between folders " + ", ".join(c))
    return circles, folders


def check_tools(top, problems, objdir):
    mods = {"tools/" + k: v for k, v in modules_of(top, "tools").items()}
    graph = collections.defaultdict(set)
    for mod, files in mods.items():
        for path in files:
            for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
                if inc in PUBLIC:
                    continue
                target = "tools/" + os.path.splitext(inc)[0]
                if target not in mods:
                    problems.append(f"{os.path.relpath(path, top)}: #include \"{inc}\": the CLI "
                                    "uses the public header and its own headers only")
                elif target != mod:
                    graph[mod].add(target)
    if objdir:
        defined, wanted = {}, collections.defaultdict(set)
        for dirpath, _, names in os.walk(objdir):
            for n in names:
                if n.endswith(".c.o"):
                    read_symbols(os.path.join(dirpath, n), "tools/" + n[: -len(".c.o")],
                                 defined, wanted)
        for mod, syms in wanted.items():
            for s in syms:
                if defined.get(s, mod) != mod:
                    graph[mod].add(defined[s])
    for c in cycles(graph):
        problems.append("tools: circle between " + ", ".join(c))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, help="the repository root")
    ap.add_argument("--objects", help="object folder of the library (CMakeFiles/ttsm_obj.dir)")
    ap.add_argument("--cli-objects", help="object folder of the CLI (CMakeFiles/ttsm_cli.dir)")
    args = ap.parse_args()
    problems = []
    mods, inc = include_graph(args.src, problems)
    circles, folders = check_graph(inc, "include", problems)
    print("include edges between folders:")
    for f in LAYERS:
        if f in folders:
            print(f"  {f} -> {', '.join(sorted(folders[f], key=LAYERS.index))}")
    print(f"{len(mods)} modules, {sum(len(v) for v in inc.values())} include edges, "
          f"{len(circles)} include circles")
    if args.objects:
        calls, n_syms = object_graph(args.objects, mods)
        if n_syms == 0:
            problems.append(f"{args.objects}: no objects with symbols found")
        ccircles, _ = check_graph(calls, "call", problems)
        print(f"{sum(len(v) for v in calls.values())} call edges between modules, "
              f"{len(ccircles)} call circles")
    check_tools(args.src, problems, args.cli_objects)
    for p in problems:
        print("LAYERING:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
