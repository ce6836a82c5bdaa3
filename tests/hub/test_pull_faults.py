"""test_pull_faults.py - `ttsm pull` against the test Hub with every fault
the issue lists switched on, one at a time: what the pull must do (resume,
retry, refuse) and what it must leave in the cache (nothing half-written,
no blob that does not hash to its name). Real HTTP on 127.0.0.1."""
import os
import time
import unittest

from pull_util import BASE, NESTED, TOKEN, PullTest

FILES = ["model.safetensors", "config.json", NESTED, "second.txt"]
LFS = "model.safetensors"


class Faults(PullTest):

    def setUp(self):
        super().setUp()
        self.start_hub()

    def assert_nothing_kept(self):
        rd = self.repo_dir("org/hubtest")
        info = self.hub.repo_info("org/hubtest")
        blob = os.path.join(rd, "blobs", info["files"][LFS]["etag"])
        self.assertFalse(os.path.exists(blob), "no blob of a file that failed")
        link = os.path.join(rd, "snapshots", info["commit"], LFS)
        self.assertFalse(os.path.lexists(link), "no snapshot entry of a file that failed")
        self.assertEqual(self.partials(), [], "no partial file kept")
        self.assertFalse(os.path.exists(os.path.join(rd, "refs", "main")),
                         "no ref for a snapshot that is not whole")

    def cdn_gets(self):
        return [e for e in self.gets("cdn") if e["path"].startswith("/lfs/")]

    # -- broken and stalled connections: resumed with Range

    def test_dropped_connection_resumes_with_range(self):
        self.hub.add_switch("drop", port="cdn", file=LFS, after_bytes=1_000_000)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)
        gets = self.cdn_gets()
        self.assertEqual([g["headers"].get("range") for g in gets], [None, "bytes=1000000-"])
        self.assertEqual([g["status"] for g in gets], [200, 206])

    def test_a_large_file_resumes_and_starts_over_through_the_writer_thread(self):
        # 20 MiB is hashed and written beside the network (hub_writer.c):
        # what was received is on disk before the resume asks for the rest.
        self.hub.add_switch("drop", port="cdn", after_bytes=9_000_000)
        self.pull("hubtest", "--model", "large")
        self.assert_layout("org/large", ["large.safetensors"])
        self.assertEqual([g["headers"].get("range") for g in self.cdn_gets()],
                         [None, "bytes=9000000-"])
        self.ttsm("rm", "hubtest", "--model", "large")
        self.hub.clear_log()
        self.hub.add_switch("drop", port="cdn", after_bytes=12_345_678)
        self.hub.add_switch("ignore_range", port="cdn")
        self.pull("hubtest", "--model", "large")
        self.assert_layout("org/large", ["large.safetensors"])
        self.assertEqual([g["status"] for g in self.cdn_gets()], [200, 200])
        self.ttsm("rm", "hubtest", "--model", "large")
        self.hub.add_switch("corrupt", port="cdn", offset=17_000_000)
        r = self.pull("hubtest", "--model", "large", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("hash mismatch", r.stderr)
        self.assertEqual(self.partials(), [])

    def test_reset_connection_resumes(self):
        self.hub.add_switch("drop", port="cdn", file=LFS, after_bytes=123_457, reset=True)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual(self.cdn_gets()[-1]["headers"].get("range"), "bytes=123457-")

    def test_stall_past_the_timeout_is_retried(self):
        # No byte for 1 s fails the try; the stall would last 20 s.
        self.hub.add_switch("stall", port="cdn", file=LFS, after_bytes=500_000, seconds=20)
        t0 = time.monotonic()
        self.pull("hubtest", HF_HUB_DOWNLOAD_TIMEOUT="1")
        self.assertLess(time.monotonic() - t0, 20, "the stall did not run its course")
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual(self.cdn_gets()[-1]["headers"].get("range"), "bytes=500000-")

    def test_stall_before_the_headers_is_retried(self):
        self.hub.add_switch("stall", port="hub", method="HEAD", file="config.json", seconds=20)
        self.pull("hubtest", HF_HUB_DOWNLOAD_TIMEOUT="1")
        self.assert_layout("org/hubtest", FILES)
        heads = [e for e in self.hub.requests("hub")
                 if e["method"] == "HEAD" and e["file"] == "config.json"]
        self.assertEqual(len(heads), 2, "the stalled HEAD was asked again")

    def test_server_ignoring_range_starts_over(self):
        self.hub.add_switch("drop", port="cdn", file=LFS, after_bytes=1_000_000)
        self.hub.add_switch("ignore_range", port="cdn", file=LFS)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual([g["status"] for g in self.cdn_gets()], [200, 200])

    def test_body_shorter_than_its_length_resumes(self):
        self.hub.add_switch("lie_size", port="cdn", file=LFS, target="body", delta=-1000)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)
        self.assertEqual(self.cdn_gets()[-1]["headers"].get("range"),
                         "bytes=%d-" % (len(BASE[LFS]) - 1000))

    def test_body_length_larger_than_sent_completes(self):
        self.hub.add_switch("lie_size", port="cdn", file=LFS, target="body", delta=7)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)

    # -- wrong bytes and wrong sizes: refused, nothing kept

    def test_wrong_bytes_are_a_hash_mismatch(self):
        self.hub.add_switch("corrupt", port="cdn", file=LFS, count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("org/hubtest/model.safetensors: hash mismatch", r.stderr)
        self.assertIn("nothing was kept", r.stderr)
        self.assert_nothing_kept()

    def test_wrong_bytes_in_a_small_file_are_a_git_sha1_mismatch(self):
        self.hub.add_switch("corrupt", port="hub", method="GET", file="config.json", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("config.json: hash mismatch", r.stderr)
        self.assertIn("git blob SHA-1", r.stderr)

    def test_announced_size_too_large(self):
        self.hub.add_switch("lie_size", port="hub", file=LFS, delta=5, count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("size mismatch", r.stderr)
        self.assert_nothing_kept()

    def test_announced_size_too_small(self):
        self.hub.add_switch("lie_size", port="hub", file=LFS, delta=-5, count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("more than the %d bytes announced" % (len(BASE[LFS]) - 5), r.stderr)
        self.assert_nothing_kept()

    # -- answers the Hub gives

    def test_404_with_a_commit_leaves_a_marker(self):
        # extra.txt (optional) is not in the repo: EntryNotFound with X-Repo-Commit.
        self.pull("hubtest")
        commit = self.assert_layout("org/hubtest", FILES)
        marker = os.path.join(self.repo_dir("org/hubtest"), ".no_exist", commit, "extra.txt")
        self.assertTrue(os.path.isfile(marker))
        self.assertEqual(os.path.getsize(marker), 0)

    def test_404_without_a_commit_leaves_no_marker(self):
        self.hub.add_switch("strip_headers", port="hub", file="extra.txt", count=None)
        self.pull("hubtest")
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir("org/hubtest"), ".no_exist")))

    def test_required_file_absent_is_not_found(self):
        os.remove(os.path.join(self.root, "models", "org", "hubtest", "config.json"))
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("ttsm: hubtest/base: not on the Hub: config.json (component config) is in "
                      "no repo (tried org/hubtest@main)", r.stderr)
        commit = self.hub.repo_info("org/hubtest")["commit"]
        self.assertTrue(os.path.isfile(os.path.join(self.repo_dir("org/hubtest"), ".no_exist",
                                                    commit, "config.json")))

    def test_404_entry_not_found_without_commit_on_a_required_file(self):
        self.hub.add_switch("status", port="hub", file="config.json", status=404,
                            error_code="EntryNotFound", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir("org/hubtest"), ".no_exist")))

    def test_gated_repository_without_a_token(self):
        self.hub.add_switch("gated", port="hub", repo="models/org/hubtest", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("org/hubtest: gated repository", r.stderr)
        self.assertIn("no token was sent", r.stderr)
        self.assertIn("accept the conditions, then set HF_TOKEN", r.stderr)

    def test_gated_repository_with_a_token_that_did_not_accept(self):
        self.hub.stop()
        from pull_util import hs
        hs.write_repo(self.root, "org/hubtest", {}, gated=True, gated_tokens=["hf_other"])
        self.start_hub(tokens=[TOKEN, "hf_other"])
        r = self.pull("hubtest", ok=False, HF_TOKEN=TOKEN)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("gated repository", r.stderr)
        self.assertIn("HTTP 403", r.stderr)
        self.assertIn("the token has not accepted them", r.stderr)
        self.assertNotIn(TOKEN, r.stderr + r.stdout)
        r = self.pull("hubtest", "--json", ok=False, HF_TOKEN=TOKEN)
        self.assertNotIn(TOKEN, r.stderr + r.stdout)
        r = self.pull("hubtest", ok=True, HF_TOKEN="hf_other")
        self.assert_layout("org/hubtest", FILES)

    def test_unknown_repository(self):
        self.hub.add_switch("status", port="hub", repo="models/org/hubtest", status=401,
                            error_code="RepoNotFound", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("org/hubtest: repository not found", r.stderr)
        self.assertIn("a private repository needs HF_TOKEN", r.stderr)

    def test_unknown_repository_with_the_long_code(self):
        # The issue names it RepositoryNotFound; the Hub sends RepoNotFound: both mean it.
        self.hub.add_switch("status", port="hub", repo="models/org/hubtest", status=404,
                            error_code="RepositoryNotFound", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("repository not found", r.stderr)

    def test_unknown_revision(self):
        r = self.pull("hubtest", "--revision", "no-such-branch", ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("revision not found", r.stderr)
        self.assertIn("no-such-branch", r.stderr)

    def test_429_and_503_with_retry_after(self):
        self.hub.add_switch("status", port="hub", method="HEAD", file="config.json", status=429,
                            retry_after=1, count=2)
        self.hub.add_switch("status", port="cdn", status=503, retry_after=1, count=1)
        t0 = time.monotonic()
        self.pull("hubtest")
        self.assertGreaterEqual(time.monotonic() - t0, 2.0, "Retry-After was honoured")
        self.assert_layout("org/hubtest", FILES)
        heads = [e for e in self.hub.requests("hub")
                 if e["method"] == "HEAD" and e["file"] == "config.json"]
        self.assertEqual([e["status"] for e in heads], [429, 429, 200])

    def test_5xx_gives_up_after_the_retries(self):
        self.hub.add_switch("status", port="hub", method="HEAD", file="config.json", status=503,
                            retry_after=0, count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("HTTP 503", r.stderr)
        self.assertIn("(6 tries)", r.stderr)

    def test_redirect_loop_on_the_hub(self):
        self.hub.add_switch("redirect_loop", port="hub", method="HEAD", file="config.json",
                            count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("redirect loop", r.stderr)

    def test_redirect_loop_on_the_cdn(self):
        self.hub.add_switch("redirect_loop", port="cdn", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("redirect loop", r.stderr)
        self.assert_nothing_kept()

    def test_listing_with_escaping_paths(self):
        # "alt" has two alternatives, so its repo is listed; the listing names ../ paths.
        self.hub.add_switch("tree_escape", port="hub", count=None)
        r = self.pull("hubtest", ok=False)
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("unsafe path in listing", r.stderr)
        self.assertIn("../escape.bin", r.stderr)
        for dp, _, fs in os.walk(self.tmp):
            self.assertNotIn("escape.bin", fs, dp)

    def test_tree_pages_and_escapes(self):
        # A deliberate pattern lists its folder through the tree, one entry a
        # page (other/, then the steps in name order): the newest in version
        # order is on the second of four pages.
        self.hub.set_options(tree_page_size=1)
        self.pull("hubtest", "--model", "pattern")
        self.assert_layout("org/steps", ["step_1250000.bin"])
        trees = [e for e in self.hub.requests("hub") if "/tree/" in e["path"]]
        self.assertEqual(len(trees), 4, "every page was read")
        self.assertTrue(all(e["query"].get("recursive") is None for e in trees))
        self.hub.add_switch("tree_escape", port="hub", count=None,
                            paths=["../../outside.bin"])
        os.rename(self.repo_dir("org/steps"), os.path.join(self.tmp, "moved"))
        r = self.pull("hubtest", "--model", "pattern", ok=False)
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("../../outside.bin", r.stderr)

    def test_relative_redirects_of_the_resolve_cache(self):
        # A small file asked for by name answers 307 to a relative URL.
        self.hub.set_options(resolve_cache=True)
        self.pull("hubtest", "--model", "fallback")
        self.assert_layout("org/mirror", ["config.json"])
        hub = self.hub.requests("hub")
        self.assertEqual([(e["method"], e["status"]) for e in hub
                          if e["repo"] == "models/org/mirror" and e["file"] == "config.json"
                          and not e["path"].startswith("/api/")], [("HEAD", 307)])
        self.assertEqual([e["method"] for e in hub
                          if e["path"].startswith("/api/resolve-cache/")], ["HEAD", "GET"],
                         "the 307 was followed, and the bytes came from where it led")

    def test_weak_etags(self):
        self.hub.add_switch("weak_etag", count=None)
        self.pull("hubtest")
        self.assert_layout("org/hubtest", FILES)

    def test_metadata_without_commit_etag_or_size_is_refused(self):
        for header in ("X-Repo-Commit", "ETag", "Content-Length"):
            with self.subTest(header=header):
                self.hub.clear_switches()
                self.hub.add_switch("strip_headers", port="hub", method="HEAD",
                                    file="config.json", headers=[header], count=None)
                r = self.pull("hubtest", ok=False)
                self.assertEqual(r.returncode, 6, r.stderr)
                self.assertIn("invalid metadata", r.stderr)
                self.assertIn(header if header != "Content-Length" else
                              "X-Linked-Size or Content-Length", r.stderr)

    def test_fallback_repo_when_the_first_is_gone(self):
        self.pull("hubtest", "--model", "fallback")
        self.assert_layout("org/mirror", ["config.json"])
        self.assertFalse(os.path.exists(self.repo_dir("org/gone")))


if __name__ == "__main__":
    unittest.main()
