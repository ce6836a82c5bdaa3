"""test_pull_cache.py - what `ttsm pull` leaves in the hub cache and how it
behaves around it: the layout byte by byte, a second pull that makes no GET,
a moved revision, the token kept from the CDN and from every output, offline
runs, a dead network, two processes at once, a kill in the middle, parallel
downloads, a pull into a models root, `ttsm rm`, `--dry-run`, `ttsm ls` and
`ttsm load --download`. Real HTTP on 127.0.0.1; every process has a timeout."""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from pull_util import BASE, NESTED, TOKEN, TTSM, PullTest, hs

FILES = ["model.safetensors", "config.json", NESTED, "second.txt"]


def lfs_sha(hub):
    return hub.repo_info("org/hubtest")["files"]["model.safetensors"]["etag"]


class Cache(PullTest):

    def setUp(self):
        super().setUp()
        self.start_hub()

    def test_layout_byte_by_byte(self):
        r = self.pull("hubtest")
        commit = self.assert_layout("org/hubtest", FILES)
        rd = self.repo_dir("org/hubtest")
        # Only the ref of the name asked for; the nested entry's link climbs
        # two more folders.
        self.assertEqual(os.listdir(os.path.join(rd, "refs")), ["main"])
        self.assertEqual(os.readlink(os.path.join(rd, "snapshots", commit, *NESTED.split("/"))),
                         "../../../../blobs/" +
                         self.hub.repo_info("org/hubtest")["files"][NESTED]["etag"])
        # The locks sit apart from the repo folder, one per blob.
        locks = os.listdir(os.path.join(self.cache, ".locks", "models--org--hubtest"))
        self.assertIn(lfs_sha(self.hub) + ".lock", locks)
        self.assertIn("4 files downloaded", r.stdout)
        # What it pulled loads, and verifies.
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/snapshots/%s/model.safetensors" % commit, r.stdout)
        r = self.ttsm("verify", "hubtest")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_second_pull_makes_no_get(self):
        self.pull("hubtest")
        self.hub.clear_log()
        r = self.pull("hubtest")
        self.assertIn("up to date", r.stdout)
        log = self.hub.requests()
        self.assertEqual([e for e in log if e["method"] == "GET"], [])
        # One HEAD asks whether main moved; the optional file is asked for again.
        self.assertEqual(sorted((e["method"], e["file"]) for e in log),
                         [("HEAD", "extra.txt"), ("HEAD", "model.safetensors")])

    def test_a_pinned_commit_already_here_needs_no_request(self):
        commit = self.hub.repo_info("org/hubtest")["commit"]
        self.pull("hubtest", "--revision", commit)
        self.assert_layout("org/hubtest", FILES, revision=commit)
        self.hub.clear_log()
        r = self.ttsm("load", "hubtest", "--device", "cpu")
        self.assertEqual(r.returncode, 3, "the load asks for main, which is not here")
        self.pull("hubtest", "--revision", commit)
        self.assertEqual([e for e in self.hub.requests() if e["file"] != "extra.txt"], [])

    def test_a_tag(self):
        # A tag names another tree; its ref is written beside main's.
        old = dict(BASE, **{"config.json": b'{"hidden_size": 2}\n'})
        hs.write_repo(self.root, "org/hubtest", {}, trees={"old": old}, refs={"v1.0": "old"})
        self.hub.rescan()
        self.pull("hubtest", "--revision", "v1.0")
        commit = self.assert_layout("org/hubtest", FILES, revision="v1.0")
        self.assertNotEqual(commit, self.hub.repo_info("org/hubtest")["commit"])
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir("org/hubtest"), "refs", "main")))
        r = self.ttsm("resolve", "hubtest", "--repo-id", "org/hubtest@v1.0", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("/snapshots/%s/config.json" % commit, r.stdout)
        r = self.pull("hubtest", "--revision", "v1.0", "--model", "fallback", ok=False)
        self.assertEqual(r.returncode, 3, "the revision is of the model's first repo")

    def test_a_moved_revision_fetches_only_what_changed(self):
        self.pull("hubtest")
        old = self.hub.repo_info("org/hubtest")["commit"]
        with open(os.path.join(self.root, "models", "org", "hubtest", "config.json"), "wb") as f:
            f.write(b'{"hidden_size": 16}\n')
        self.hub.rescan()
        self.hub.clear_log()
        self.pull("hubtest")
        new = self.hub.repo_info("org/hubtest")["commit"]
        self.assertNotEqual(old, new)
        self.assertEqual([e["file"] for e in self.gets() if e["file"]], ["config.json"],
                         "unchanged blobs are linked, not fetched again")
        rd = self.repo_dir("org/hubtest")
        with open(os.path.join(rd, "refs", "main")) as f:
            self.assertEqual(f.read(), new)
        self.assertEqual(sorted(os.listdir(os.path.join(rd, "snapshots"))), sorted([old, new]))
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--json")
        self.assertIn("/snapshots/%s/" % new, r.stdout)

    def test_the_token_goes_to_the_hub_only_and_is_never_shown(self):
        self.hub.set_options(tokens=[TOKEN], require_token=True)
        outputs = []
        for args in (["hubtest"], ["hubtest", "--model", "other", "-v", "-v"],
                     ["hubtest", "--model", "fallback", "--json"]):
            r = self.pull(*args, HF_TOKEN=TOKEN)
            outputs.append(r.stdout + r.stderr)
        # A failure's message and --json do not carry it either.
        self.hub.add_switch("gated", port="hub", count=None)
        self.hub.set_options(tokens=[TOKEN, "hf_someone_else"])
        r = self.pull("hubtest", "--model", "pattern", "--json", ok=False,
                      HF_TOKEN="hf_someone_else")
        outputs.append(r.stdout + r.stderr)
        for out in outputs:
            self.assertNotIn(TOKEN, out)
            self.assertNotIn("hf_someone_else", out)
        hub, cdn = self.hub.requests("hub"), self.hub.requests("cdn")
        self.assertTrue(cdn)
        self.assertTrue(all(e["headers"].get("authorization") == "Bearer " + TOKEN
                            for e in hub if e["repo"] != "models/org/steps"))
        self.assertFalse([e for e in cdn if "authorization" in e["headers"]],
                         "no token on the CDN port")

    def test_the_token_file(self):
        self.hub.set_options(tokens=[TOKEN], require_token=True)
        os.makedirs(os.path.join(self.home, "hf"))
        with open(os.path.join(self.home, "hf", "token"), "w") as f:
            f.write(TOKEN + "\n")
        self.pull("hubtest", HF_HOME=os.path.join(self.home, "hf"))
        self.assert_layout("org/hubtest", FILES)
        r = self.pull("hubtest", "--model", "other", ok=False)  # no token: 401
        self.assertEqual(r.returncode, 7, r.stderr)

    def test_a_fifo_where_the_token_file_goes_is_not_waited_on(self):
        hf = os.path.join(self.home, "hf")
        os.makedirs(hf)
        os.mkfifo(os.path.join(hf, "token"))
        self.pull("hubtest", HF_HOME=hf)  # would block forever opening the FIFO
        self.assert_layout("org/hubtest", FILES)
        self.assertFalse([e for e in self.hub.requests("hub") if "authorization" in e["headers"]])

    def test_offline_runs_make_no_request(self):
        r = self.pull("hubtest", ok=False, HF_HUB_OFFLINE="1")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("HF_HUB_OFFLINE is set", r.stderr)
        self.assertIn("unset HF_HUB_OFFLINE", r.stderr)
        self.assertEqual(self.hub.requests(), [])
        self.pull("hubtest")
        self.hub.clear_log()
        for args in (["pull", "hubtest"], ["load", "hubtest", "--device", "cpu"],
                     ["load", "hubtest", "--device", "cpu", "--download"],
                     ["verify", "hubtest"]):
            r = self.ttsm(*args, HF_HUB_OFFLINE="1")
            self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
        self.assertEqual(self.hub.requests(), [], "offline: no request at all")

    def test_a_dead_network_uses_the_cache_and_says_so(self):
        self.pull("hubtest")
        self.hub.stop()
        r = self.pull("hubtest")
        self.assertIn("[warn] cannot ask the Hub whether org/hubtest@main changed", r.stderr)
        self.assertIn("using the cached files", r.stderr)
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--download")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.pull("hubtest", "--model", "other", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("request failed", r.stderr)
        self.assertIn("(6 tries)", r.stderr)

    def test_two_processes_download_each_blob_once(self):
        # The first stalls in the middle of the big file, holding its lock.
        self.hub.add_switch("stall", port="cdn", file="model.safetensors",
                            after_bytes=1_000_000, seconds=2)
        env = self.env()
        a = subprocess.Popen([TTSM, "pull", "hubtest", "-v"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(a.kill)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                e["port"] == "cdn" and not e["done"] for e in self.hub.requests(wait=0)):
            time.sleep(0.02)
        b = subprocess.Popen([TTSM, "pull", "hubtest", "-v"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(b.kill)
        out_a, err_a = a.communicate(timeout=60)
        out_b, err_b = b.communicate(timeout=60)
        self.assertEqual((a.returncode, b.returncode), (0, 0), err_a + err_b)
        self.assertIn("waiting for the lock", err_b)
        gets = self.gets()
        files = [e["file"] for e in gets if e["file"]]
        self.assertEqual(sorted(files), sorted(FILES), "each blob downloaded once")
        self.assert_layout("org/hubtest", FILES)

    def test_a_kill_in_the_middle_leaves_no_visible_partial_file(self):
        self.hub.add_switch("stall", port="cdn", file="model.safetensors",
                            after_bytes=1_000_000, seconds=30)
        p = subprocess.Popen([TTSM, "pull", "hubtest", "--jobs", "1"], env=self.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(p.kill)
        blobs = os.path.join(self.repo_dir("org/hubtest"), "blobs")
        deadline = time.monotonic() + 20
        part = None
        while time.monotonic() < deadline and part is None:
            for f in os.listdir(blobs) if os.path.isdir(blobs) else []:
                if f.endswith(".incomplete") and os.path.getsize(os.path.join(blobs, f)) >= 1e6:
                    part = f
            time.sleep(0.02)
        self.assertIsNotNone(part, "the download got under way")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        sha = lfs_sha(self.hub)
        self.assertTrue(part.startswith(sha + "."), part)
        rd = self.repo_dir("org/hubtest")
        self.assertFalse(os.path.exists(os.path.join(blobs, sha)))
        self.assertFalse(os.path.exists(os.path.join(rd, "refs", "main")))
        for dp, _, fs in os.walk(os.path.join(rd, "snapshots")):
            self.assertNotIn("model.safetensors", fs, "no partial file under snapshots/")
        r = self.ttsm("load", "hubtest", "--device", "cpu")
        self.assertEqual(r.returncode, 3, "a partial download is never a file")
        self.hub.clear_switches()
        self.hub.clear_log()
        self.pull("hubtest")
        gets = [e for e in self.hub.requests("cdn", wait=0) if e["method"] == "GET"]
        self.assertEqual([e["headers"].get("range") for e in gets], ["bytes=1000000-"],
                         "the next pull resumed the partial file")
        self.assert_layout("org/hubtest", FILES)

    def test_parallel_downloads_overlap_and_serial_ones_do_not(self):
        for jobs, want_overlap in (("4", True), ("1", False)):
            with self.subTest(jobs=jobs):
                self.hub.set_switches([{"kind": "stall", "port": "cdn", "seconds": 0.3,
                                        "count": 4}])
                seen, stop = [0], threading.Event()

                def watch():
                    while not stop.is_set():
                        n = sum(1 for e in self.hub.requests("cdn", wait=0) if not e["done"])
                        seen[0] = max(seen[0], n)
                        time.sleep(0.01)
                t = threading.Thread(target=watch)
                t.start()
                try:
                    self.pull("hubtest", "--model", "many", "--jobs", jobs)
                finally:
                    stop.set()
                    t.join()
                self.assert_layout("org/many", ["part%d.bin" % i for i in range(10)])
                if want_overlap:
                    self.assertGreater(seen[0], 1, "downloads in parallel")
                else:
                    self.assertEqual(seen[0], 1, "one download at a time")
                r = self.ttsm("rm", "hubtest", "--model", "many")
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_into_a_models_root(self):
        dest = os.path.join(self.tmp, "ComfyUI", "models")
        r = self.pull("hubtest", "--to-models-root", dest)
        self.assertIn("-> " + dest, r.stdout)
        top = os.path.join(dest, "TTS", "HubTest", "base")
        for p in FILES:
            with open(os.path.join(top, *p.split("/")), "rb") as f:
                self.assertEqual(f.read(), BASE[p], p)
            self.assertFalse(os.path.islink(os.path.join(top, *p.split("/"))))
        self.assertFalse(os.path.exists(self.cache), "nothing written to the hub cache")
        leftovers = [f for dp, _, fs in os.walk(top) for f in fs if ".incomplete" in f]
        self.assertEqual(leftovers, [])
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--json", "--models-dir", dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(os.path.join(top, "model.safetensors"), r.stdout)
        self.hub.clear_log()
        r = self.pull("hubtest", "--to-models-root", dest)
        self.assertIn("up to date", r.stdout)
        self.assertEqual(self.gets(), [])

    def test_rm_takes_a_model_out_and_keeps_what_others_use(self):
        self.pull("hubtest")
        self.pull("hubtest", "--model", "other")
        rd = self.repo_dir("org/hubtest")
        commit = self.hub.repo_info("org/hubtest")["commit"]
        before = sorted(os.listdir(os.path.join(rd, "blobs")))
        r = self.ttsm("rm", "hubtest", "--model", "other", "--dry-run", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = json.loads(r.stdout)
        self.assertEqual(len(rep["links"]), 2)
        self.assertEqual(len(rep["blobs"]), 2)
        self.assertEqual(sorted(os.listdir(os.path.join(rd, "blobs"))), before, "dry run")
        r = self.ttsm("rm", "hubtest", "--model", "other")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(rd, "snapshots", commit, "other")))
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual(self.ttsm("load", "hubtest", "--device", "cpu").returncode, 0)
        r = self.ttsm("rm", "hubtest")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed the repo folder of org/hubtest", r.stdout)
        self.assertFalse(os.path.exists(rd))
        self.assertFalse(os.path.exists(os.path.join(self.cache, ".locks", "models--org--hubtest")))
        r = self.ttsm("rm", "hubtest")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("not in the hub cache", r.stdout)

    def test_dry_run_lists_files_and_sizes_and_writes_nothing(self):
        r = self.pull("hubtest", "--dry-run")
        self.assertIn("would download", r.stdout)
        self.assertIn("org/hubtest/model.safetensors", r.stdout)
        self.assertIn("total: 4.0 MiB to download", r.stdout)
        self.assertEqual(self.hub.requests("cdn"), [])
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir("org/hubtest"), "blobs")))
        r = self.pull("hubtest", "--dry-run", "--json")
        done = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual(done["event"], "done")
        files = {f["path"]: f for f in done["report"]["files"] if f["path"]}
        self.assertEqual(files["model.safetensors"]["size"], len(BASE["model.safetensors"]))
        self.assertEqual(files["model.safetensors"]["status"], "would download")
        self.assertEqual(done["report"]["download_bytes"], sum(len(BASE[p]) for p in FILES))

    def test_json_lines_and_quiet(self):
        r = self.pull("hubtest", "--json")
        events = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(events[-1]["event"], "done")
        finished = [e["file"] for e in events if e["event"] == "file"]
        self.assertEqual(sorted(finished), sorted(FILES))
        last = [e for e in events if e["event"] == "file"][-1]
        self.assertEqual(last["done"], last["total"])
        self.assertEqual(last["files_done"], 4)
        self.assertEqual(r.stderr, "")
        self.ttsm("rm", "hubtest")
        r = self.pull("hubtest", "-q")
        self.assertEqual((r.stdout, r.stderr), ("", ""))

    def test_ls_shows_what_a_pull_adds(self):
        r = self.ttsm("ls", "hubtest", "--all")
        self.assertIn("what a pull would add:\n  hubtest/base: weights, config, nested, alt: "
                      "ttsm pull hubtest\n", r.stdout)
        self.assertIn("  hubtest/other: weights, config: ttsm pull hubtest --model other\n",
                      r.stdout)
        self.pull("hubtest")
        r = self.ttsm("ls", "hubtest", "--json")
        models = {m["model"]: m for m in json.loads(r.stdout)["models"]}
        self.assertTrue(models["base"]["complete"])
        self.assertEqual(models["base"]["pull"], {"components": [], "command": None})

    def test_load_on_a_miss(self):
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--model", "other")
        self.assertEqual(r.returncode, 3)
        self.assertIn("or run `ttsm pull hubtest --model other` (or load with downloads on), "
                      "which fetches other/model.safetensors from org/hubtest", r.stderr)
        self.assertEqual(self.hub.requests(), [], "no download unless asked for")
        r = self.ttsm("load", "hubtest", "--device", "cpu", "--model", "other", "--download",
                      "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/snapshots/", r.stdout)
        self.assert_layout("org/hubtest", ["other/model.safetensors", "other/config.json"])


if __name__ == "__main__":
    unittest.main()
