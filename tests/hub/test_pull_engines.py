"""test_pull_engines.py - the issue's "done when": the test Hub serves the
repositories of every engine (the test store of tests/fixtures/gen_store.py:
real repo ids, file names, subfolders, Higgs Audio's pinned commits beside a
main they must not use, sharded indexes, borrowed and shared files), with
faults on; `ttsm pull ENGINE` fetches each engine's default model, and then,
offline, `ttsm load ENGINE` and `ttsm verify ENGINE` pass for all seven."""
import json
import os
import subprocess
import unittest

from pull_util import SRC, PullTest, hs

ENGINES = ["chatterbox", "chatterbox_official_23lang", "f5tts", "higgs_audio", "index_tts",
           "rvc", "vibevoice"]
GEN = os.path.join(SRC, "tests", "fixtures", "gen_store.py")


def serve_store(hub_dir, root):
    """Lays the hub cache the generator wrote out as the server's
    repositories: the snapshot refs/main names is the main tree; any other
    snapshot (a pinned commit) is a tree of its own with that commit."""
    for folder in sorted(os.listdir(hub_dir)):
        kind, org, name = folder.split("--", 2)
        rd = os.path.join(hub_dir, folder)
        with open(os.path.join(rd, "refs", "main")) as f:
            main = f.read().strip()
        trees, commits = {}, {}
        files = None
        for commit in os.listdir(os.path.join(rd, "snapshots")):
            top = os.path.join(rd, "snapshots", commit)
            content = {}
            for dp, _, fs in os.walk(top):
                for fn in fs:
                    p = os.path.join(dp, fn)
                    with open(p, "rb") as f:
                        content[os.path.relpath(p, top)] = f.read()
            if commit == main:
                files = content
            else:
                trees[commit] = content
                commits[commit] = commit
        hs.write_repo(root, org + "/" + name, files or {}, kind=kind, trees=trees,
                      commits=commits or None)


class Engines(PullTest):

    def test_every_engine_pulls_with_faults_on_and_loads_offline(self):
        store = os.path.join(self.tmp, "store")
        subprocess.run(["/usr/bin/python3", GEN, store, "--layout", "hub"], check=True,
                       timeout=120, stdout=subprocess.DEVNULL)
        root = os.path.join(self.tmp, "engine-root")
        serve_store(os.path.join(store, "hub"), root)
        self.root = root
        self.start_hub(resolve_cache=True)
        self.hub.set_switches([
            {"kind": "drop", "port": "cdn", "count": 6, "name": "drop"},
            {"kind": "drop", "port": "hub", "method": "GET", "count": 3, "reset": True,
             "name": "reset"},
            {"kind": "status", "port": "hub", "method": "HEAD", "status": 503, "retry_after": 0,
             "count": 4, "skip": 3, "name": "503"},
            {"kind": "status", "port": "any", "method": "GET", "status": 429, "retry_after": 0,
             "count": 3, "skip": 5, "name": "429"},
            {"kind": "stall", "port": "cdn", "seconds": 20, "count": 2, "skip": 4,
             "name": "stall"},
            {"kind": "ignore_range", "port": "cdn", "count": 2, "name": "range"},
            {"kind": "weak_etag", "count": None, "name": "weak"},
        ])
        for engine in ENGINES:
            with self.subTest(engine=engine):
                r = self.pull(engine, ok=False, HF_HUB_DOWNLOAD_TIMEOUT="1")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("downloaded", r.stdout)
        fired = {s["name"]: s["fired"] for s in self.hub.switches()}
        for name, n in fired.items():
            self.assertGreater(n, 0, "fault %s fired" % name)
        self.assertEqual(self.partials(), [])
        # Higgs Audio is pulled at its pinned commits, with no ref for them,
        # and nothing of the main it must not use.
        for repo in ("bosonai/higgs-audio-v2-generation-3B-base", "bosonai/higgs-audio-v2-tokenizer"):
            rd = self.repo_dir(repo)
            self.assertFalse(os.path.exists(os.path.join(rd, "refs")), repo)
            snaps = os.listdir(os.path.join(rd, "snapshots"))
            self.assertEqual(len(snaps), 1)
            self.assertNotEqual(snaps[0], self.hub.repo_info(repo)["commit"], "not main")
        self.hub.clear_log()
        for engine in ENGINES:
            with self.subTest(engine=engine, step="offline"):
                r = self.ttsm("load", engine, "--device", "cpu", "--json", HF_HUB_OFFLINE="1")
                self.assertEqual(r.returncode, 0, r.stderr)
                for c in json.loads(r.stdout)["model"]["components"]:
                    self.assertTrue(c["path"].startswith(self.cache + "/"), c["path"])
                r = self.ttsm("verify", engine, HF_HUB_OFFLINE="1")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = self.pull(engine, HF_HUB_OFFLINE="1")
                self.assertIn("up to date", r.stdout)
        self.assertEqual(self.hub.requests(), [], "offline: no request")


if __name__ == "__main__":
    unittest.main()
