"""test_pull_python.py - the Python side of the Hub client: ttsm.pull() with
progress through a callable, cancelling it (clean: no file in place, no lock
held, the next pull resumes), ttsm.remove(), Manager(download=True) loading
on a miss with the bytes reported, and the ctypes mirrors of the new
structs. The library runs in this process; the test Hub in its threads."""
import ctypes
import os
import sys
import unittest

from pull_util import BASE, NESTED, SRC, PullTest

sys.path.insert(0, os.path.join(SRC, "python"))
import ttsm  # noqa: E402
from ttsm import _lib  # noqa: E402

FILES = ["model.safetensors", "config.json", NESTED, "second.txt"]


class Python(PullTest):

    def setUp(self):
        super().setUp()
        self.start_hub()
        # The library reads these at each call.
        self.saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN",
                                                     "HF_HUB_OFFLINE", "HF_HOME")}
        self.addCleanup(self.restore)
        for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HOME"):
            os.environ.pop(k, None)
        os.environ["HF_ENDPOINT"] = self.hub.url
        # The test engine joins this process's registry.
        ttsm.Manager(engines_dir=self.engines).close()

    def restore(self):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def test_structs_match_the_library(self):
        o = _lib.lib.ttsm_pull_options_default()
        self.assertEqual(o.struct_size, ctypes.sizeof(_lib.PullOptions))
        self.assertEqual((o.jobs, o.retries), (_lib.PULL_DEFAULT_JOBS, 5))

    def test_pull_with_progress(self):
        events = []
        rep = ttsm.pull("hubtest", hf_cache=self.cache, progress=events.append)
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual(rep["downloaded"], 4)
        self.assertEqual(rep["target"], "hub cache")
        done = [e for e in events if e.finished]
        self.assertEqual(sorted(e.file for e in done), sorted(FILES))
        self.assertTrue(all(isinstance(e, ttsm.PullProgress) for e in events))
        total = sum(len(BASE[p]) for p in FILES)
        self.assertEqual(events[-1].done, total)
        self.assertEqual(events[-1].total, total)
        self.assertEqual(events[-1].files_done, 4)
        big = [e.file_done for e in events if e.file == "model.safetensors"]
        self.assertEqual(big, sorted(big), "bytes only grow")
        self.assertEqual(big[-1], len(BASE["model.safetensors"]))
        rep = ttsm.pull("hubtest", hf_cache=self.cache)
        self.assertEqual(rep["downloaded"], 0)
        self.assertEqual({f["status"] for f in rep["files"]}, {"present", "absent"})

    def test_cancel_stops_cleanly_and_the_next_pull_resumes(self):
        def stop_midway(e):
            return e.file == "model.safetensors" and e.file_done >= 1_000_000

        with self.assertRaises(ttsm.TTSCancelledError):
            ttsm.pull("hubtest", hf_cache=self.cache, jobs=1, progress=stop_midway)
        rd = self.repo_dir("org/hubtest")
        sha = self.hub.repo_info("org/hubtest")["files"]["model.safetensors"]["etag"]
        self.assertFalse(os.path.exists(os.path.join(rd, "blobs", sha)))
        self.assertFalse(os.path.exists(os.path.join(rd, "refs", "main")))
        parts = self.partials()
        self.assertEqual(len(parts), 1, "the partial download is kept, hidden in blobs/")
        self.assertTrue(os.path.basename(parts[0]).startswith(sha + "."))
        # An exception in the callable cancels too, and is the cause.
        with self.assertRaises(ttsm.TTSCancelledError) as cm:
            ttsm.pull("hubtest", hf_cache=self.cache, progress=lambda e: 1 / 0)
        self.assertIsInstance(cm.exception.__cause__, ZeroDivisionError)
        # No lock is left held: the next pull goes straight on, from the partial file.
        self.hub.clear_log()
        ttsm.pull("hubtest", hf_cache=self.cache)
        self.assert_layout("org/hubtest", FILES)
        ranges = [e["headers"].get("range") for e in self.hub.requests("cdn")
                  if e["method"] == "GET"]
        self.assertEqual(len(ranges), 1)
        self.assertTrue(ranges[0] and ranges[0].startswith("bytes="), ranges)

    def test_remove(self):
        ttsm.pull("hubtest", hf_cache=self.cache)
        rep = ttsm.remove("hubtest", hf_cache=self.cache, dry_run=True)
        self.assertTrue(rep["dry_run"])
        self.assertEqual(len(rep["links"]), 4)
        rep = ttsm.remove("hubtest", hf_cache=self.cache)
        self.assertEqual(rep["repos_removed"], ["org/hubtest"])
        self.assertEqual(rep["freed_bytes"], sum(len(BASE[p]) for p in FILES))

    def test_manager_downloads_on_a_miss(self):
        with ttsm.Manager(hf_cache=self.cache, models_dir=os.path.join(self.tmp, "none")) as m:
            with self.assertRaises(ttsm.TTSModelNotFoundError) as cm:
                m.load("hubtest", device="cpu")
            self.assertIn("ttsm pull hubtest", cm.exception.hint)
        self.assertEqual(self.hub.requests(), [])
        seen = []
        with ttsm.Manager(hf_cache=self.cache, download=True, download_jobs=2,
                          progress=lambda key, done, total: seen.append((key, done, total))) as m:
            with m.load("hubtest", device="cpu") as model:
                names = model.components
                self.assertEqual(names, ["weights", "config", "nested", "alt"])
                self.assertEqual(model.component_info("weights").tensors, 1)
                self.assertEqual(model.bytes, 4 << 20)
                key = model.key
        self.assert_layout("org/hubtest", FILES)
        total = sum(len(BASE[p]) for p in FILES)
        self.assertIn((key, total, total), seen, "the download's bytes, under the model's key")

    def test_manager_cancel_during_the_download(self):
        with ttsm.Manager(hf_cache=self.cache, download=True,
                          progress=lambda key, done, total: done > 100) as m:
            with self.assertRaises(ttsm.TTSCancelledError):
                m.load("hubtest", device="cpu")
        with self.assertRaises(ttsm.TTSInvalidArgumentError):
            ttsm.Manager(download="yes")
        with self.assertRaises(ttsm.TTSInvalidArgumentError):
            ttsm.Manager(download=True, download_jobs=99)


if __name__ == "__main__":
    unittest.main()
