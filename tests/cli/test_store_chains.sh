#!/usr/bin/env bash
# test_store_chains.sh - every fallback a manifest declares is taken, read
# from the manifests themselves: a variant falls back to its base model, a
# model of another language to the language_fallback model, a model to each
# of its fallback repos in order (with that repo's own file names), a
# component to each of its alternative files in order, and an own file to
# the one it borrows. Every manifest that claims has_fallback must have at
# least one of these, each one exercised here; F5-TTS once claimed one with
# nothing behind it.
. "$(dirname "$0")/store_lib.sh"

"$PY" - "$TTSM" "$STORE" "$TMP" "$TTSM_SRC" <<'PY' || fail "fallback chains"
import json, os, shutil, subprocess, sys
ttsm, store, tmp, src = sys.argv[1:5]
sys.path.insert(0, os.path.join(src, "tests", "fixtures"))
import gen_store  # the generator's bytes for a file it did not write

COMFY = ["--models-dir", store + "/comfy", "--hf-cache", tmp + "/no-hub"]
HUB = ["--models-dir", tmp + "/no-root", "--hf-cache", store + "/hub"]
failures, exercised = [], {}


def load(engine, model, mtype, where):
    r = subprocess.run([ttsm, "load", engine, "--model", model, "--type", mtype, "--device",
                        "cpu", "--json"] + where, capture_output=True, text=True)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else r.stderr.strip())


def check(kind, tag, engine, model, mtype, where, want_model, paths=None):
    """Loads `model` and wants `want_model` loaded, and each component in
    `paths` ({name: predicate on its path}) from the place the chain says."""
    rc, d = load(engine, model, mtype, where)
    exercised.setdefault(engine, {}).setdefault(kind, 0)
    if rc != 0:
        failures.append("%s %s: exit %d: %s" % (kind, tag, rc, d[:300]))
        return
    got = d["entries"][0]["model"]
    if got != want_model:
        failures.append("%s %s: loaded %s, want %s" % (kind, tag, got, want_model))
        return
    comps = {c["name"]: c["path"] for c in d["model"]["components"]}
    for name, ok in (paths or {}).items():
        if name not in comps or not ok(comps[name]):
            failures.append("%s %s: %s from %s" % (kind, tag, name, comps.get(name)))
            return
    exercised[engine][kind] += 1


def aside(path, moved):
    if os.path.lexists(path):
        dst = os.path.join(tmp, "aside%d" % len(moved))
        os.rename(path, dst)
        moved.append((dst, path))


def restore(moved):
    for dst, path in reversed(moved):
        os.rename(dst, path)
    moved.clear()


def local_dir(m, model):
    if model.get("dir"):
        return os.path.join(store, "comfy/TTS", model["dir"])
    return os.path.join(store, "comfy/TTS", m["folder"], model.get("folder", model["name"]))


def repo_dir(repo):
    return os.path.join(store, "hub", gen_store.repo_dir_name(repo))


def own(m, model, mtype, defaults):
    """The model's own components (files of its own) for type and params."""
    return [c for c in gen_store.components_of(m, model)
            if c.get("files") and mtype in c.get("types", [mtype])
            and all(defaults.get(k) == v for k, v in c.get("when", {}).items())]


engines = json.loads(subprocess.run([ttsm, "engines", "--json"], capture_output=True, text=True,
                                    check=True).stdout)["engines"]
claims = {}
for e in engines:
    m = e["manifest"]
    if not m or all(md.get("system_dirs") for md in m["models"]):
        continue
    eng = m["name"]
    claims[eng] = m["capabilities"]["has_fallback"]
    defaults = {k: v["default"] for k, v in m.get("params", {}).items()}
    models = {md["name"]: md for md in m["models"]}
    first_type = lambda md: md.get("types", [m["model_types"][0]])[0]
    moved = []

    # A variant whose own files are missing: its base model.
    for md in m["models"]:
        if not md.get("variant_of"):
            continue
        t = first_type(md)
        aside(local_dir(m, md), moved)
        check("variant_of", "%s/%s" % (eng, md["name"]), eng, md["name"], t, COMFY,
              md["variant_of"])
        restore(moved)
        others = {r["id"] for o in m["models"] if o is not md for r in o.get("repos", [])}
        if md.get("repos") and not {r["id"] for r in md["repos"]} & others:
            for r in md["repos"]:
                aside(repo_dir(r), moved)
            check("variant_of", "%s/%s (hub)" % (eng, md["name"]), eng, md["name"], t, HUB,
                  md["variant_of"])
            restore(moved)

    # A model of another language whose files are missing: the fallback model.
    lf = models.get(m.get("language_fallback"))
    for md in m["models"]:
        if not lf or md is lf or md.get("variant_of") or md.get("language") in (None, lf.get("language")):
            continue
        aside(local_dir(m, md), moved)
        check("language_fallback", "%s/%s" % (eng, md["name"]), eng, md["name"], first_type(md),
              COMFY, lf["name"])
        restore(moved)

    # Fallback repos, in order: the earlier ones absent, the i-th holding
    # the files the manifest names for it (repo_files, else the files).
    users = [(md, md, False) for md in m["models"]]
    for key, sm in m.get("shared", {}).items():
        user = next((md for md in m["models"] for c in gen_store.components_of(m, md)
                     if c.get("shared") == key), None)
        if user:
            users.append((dict(sm, name=key), user, True))
    for holder, user, is_shared in users:
        repos = holder.get("repos", [])
        t = first_type(user)
        comps = own(m, holder, first_type(holder) if not is_shared else t, defaults)
        comps = [c for c in comps if not c.get("repo")]
        if len(repos) < 2 or not comps:
            continue
        rc0, d0 = load(eng, user["name"], t, HUB)
        if rc0 != 0:
            failures.append("repos %s/%s: the primary does not load: %s" % (eng, holder["name"], d0))
            continue
        found = {c["name"]: c["path"] for c in d0["model"]["components"]}
        for i in range(1, len(repos)):
            made = []
            target = repo_dir(repos[i])
            for r in repos[:i]:
                aside(repo_dir(r), moved)
            if not os.path.exists(target):
                shutil.copytree(moved[0][0], target, symlinks=True)
                made.append(target)
            with open(os.path.join(target, "refs", "main")) as f:
                snap = os.path.join(target, "snapshots", f.read().strip())
            for c in comps:
                names = c.get("repo_files", {}).get(repos[i]["id"], c["files"])
                rel = "/".join(x for x in (repos[i].get("subfolder"), c.get("subfolder"),
                                           gen_store.file_name_for(names[0], user["name"])) if x)
                dst = os.path.join(snap, rel)
                if not os.path.lexists(dst):
                    srcf = found[c["name"]]
                    for dp, rp in moved:  # the primary's file, now aside
                        if srcf.startswith(rp + "/"):
                            srcf = dp + srcf[len(rp):]
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copyfile(srcf, dst)
                    made.append(dst)
            check("repos", "%s/%s -> %s" % (eng, holder["name"], repos[i]["id"]), eng,
                  user["name"], t, HUB, user["name"],
                  {c["name"]: (lambda p, tg=target: p.startswith(tg + "/snapshots/")) for c in comps})
            for p in reversed(made):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
            restore(moved)

    # Alternative files, in order: the earlier ones absent, the j-th present.
    for md in m["models"]:
        t = first_type(md)
        for c in own(m, md, t, defaults):
            files = [gen_store.file_name_for(f, md["name"]) for f in c["files"]]
            folder = os.path.join(local_dir(m, md), c.get("subfolder", ""))
            for j in range(1, len(files)):
                made = []
                for f in files[:j]:
                    aside(os.path.join(folder, f), moved)
                want = os.path.join(folder, files[j])
                if not os.path.exists(want):
                    for rel, (data, _) in gen_store.component_files(eng, c["name"], c["kind"],
                                                                    files[j], md["name"]).items():
                        gen_store.write_file(os.path.join(folder, rel), data)
                        made.append(os.path.join(folder, rel))
                check("alternatives", "%s/%s %s -> %s" % (eng, md["name"], c["name"], files[j]),
                      eng, md["name"], t, COMFY, md["name"],
                      {c["name"]: (lambda p, w=want: p == w)})
                for p in made:
                    os.unlink(p)
                restore(moved)

    # An own file missing: the borrowed model's.
    for md in m["models"]:
        t = first_type(md)
        for c in own(m, md, t, defaults):
            if not c.get("borrow"):
                continue
            lender = models[c["borrow"]]
            folder = os.path.join(local_dir(m, md), c.get("subfolder", ""))
            for f in c["files"]:
                aside(os.path.join(folder, gen_store.file_name_for(f, md["name"])), moved)
            lent = os.path.normpath(os.path.join(local_dir(m, lender), c.get("subfolder", "")))
            check("borrow", "%s/%s %s" % (eng, md["name"], c["name"]), eng, md["name"], t, COMFY,
                  md["name"], {c["name"]: (lambda p, d=lent: os.path.dirname(p) == d)})
            restore(moved)

for x in failures:
    print("FAIL:", x, file=sys.stderr)
for eng in sorted(claims):
    kinds = exercised.get(eng, {})
    print("%-28s has_fallback=%-5s %s" % (eng, claims[eng], ", ".join(
        "%s %d" % (k, n) for k, n in sorted(kinds.items())) or "-"))
    if claims[eng] and not any(kinds.values()):
        print("FAIL: %s claims a fallback, and none is declared or none was taken" % eng,
              file=sys.stderr)
        failures.append(eng)
sys.exit(1 if failures else 0)
PY
PASSED=$((PASSED + 1))
done_testing
