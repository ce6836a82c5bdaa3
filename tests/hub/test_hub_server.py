"""test_hub_server.py - the test Hub server's own tests: every route, header and
error the Hub download tests rely on, every fault switch, the request log, the
control API, and the command line (ready file, SIGTERM, lifetime, parent exit).
Real HTTP on 127.0.0.1 through http.client; every socket has a timeout."""
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hub_server as hs  # noqa: E402

TOKEN = "hf_test_reader"
TOKEN2 = "hf_test_licensed"
SPACED = "sub dir/naïve file.txt"


def data(seed, n):
    return random.Random(seed).randbytes(n)


MAIN = {
    "config.json": b'{"hidden_size": 8}\n',
    "tokenizer.json": b'{"model": {"vocab": {"a": 0}}}\n',
    "model.safetensors": data(1, 300_000),    # LFS by its name
    "big.dat": data(2, 70_000),               # LFS by its size (threshold 65536)
    "small.dat": data(3, 1000),               # kept in git
    SPACED: "spaces and non-ASCII\n".encode(),
    "sub dir/deep/weights.bin": data(4, 20_000),
}
OLD = {"config.json": b'{"hidden_size": 4}\n', "model.safetensors": data(5, 1000)}


def make_root(root):
    hs.write_repo(root, "org/repo", MAIN, trees={"old": OLD},
                  refs={"v1.0": "old", "refs/pr/1": "old"})
    hs.write_repo(root, "org/gated", {"model.safetensors": data(6, 2000), "config.json": "{}"},
                  gated=True)
    hs.write_repo(root, "org/licensed", {"config.json": "{}"}, gated="manual",
                  gated_tokens=[TOKEN2])
    hs.write_repo(root, "org/private", {"config.json": "{}"}, private=True)
    hs.write_repo(root, "org/pinned", {"a.txt": "a"}, trees={"b": {"a.txt": "b"}},
                  commits={"main": "1" * 40, "b": "2" * 40})
    hs.write_repo(root, "org/data", {"README.md": "# data\n", "train.parquet": data(7, 5000)},
                  kind="datasets")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def q(path):
    return "/".join(urllib.parse.quote(s, safe="") for s in path.split("/"))


def request(url, method="GET", headers=None, timeout=5):
    """(status, {lower-case header: value}, body) of one request on a fresh
    connection."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request(method, u.path + ("?" + u.query if u.query else ""), headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


class HubCase(unittest.TestCase):
    """One in-process server per test over a shared fixture tree."""
    options = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hub-test-")
        cls.root = os.path.join(cls.tmp, "root")
        make_root(cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        opts = {"lfs_threshold": 65536, "tokens": [TOKEN, TOKEN2]}
        opts.update(self.options)
        self.hub = hs.HubServer(self.root, **opts).start()

    def tearDown(self):
        errors = self.hub.errors()
        self.hub.stop()
        self.assertEqual(errors, [], "the server failed on a request")

    def url(self, path):
        return self.hub.url + path

    def resolve(self, path, rev="main", repo="org/repo", prefix=""):
        return self.url(f"/{prefix}{repo}/resolve/{urllib.parse.quote(rev, safe='')}/{q(path)}")

    def commit(self, rev="main", repo="org/repo"):
        st, _, body = request(self.url(f"/api/models/{repo}/revision/{q(rev)}"),
                              headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(st, 200)
        return json.loads(body)["sha"]

    def cdn_location(self, path="model.safetensors", rev="main"):
        st, h, _ = request(self.resolve(path, rev), "HEAD")
        self.assertEqual(st, 302)
        return h["location"]


class ServeTests(HubCase):

    def test_small_file_head_and_get(self):
        st, h, body = request(self.resolve("config.json"), "HEAD")
        self.assertEqual(st, 200)
        self.assertEqual(body, b"")
        self.assertEqual(h["etag"], '"%s"' % hs.git_blob_sha1(MAIN["config.json"]))
        self.assertEqual(int(h["content-length"]), len(MAIN["config.json"]))
        self.assertEqual(h["x-repo-commit"], self.commit())
        self.assertNotIn("location", h)
        self.assertNotIn("x-linked-etag", h)
        st, h2, body = request(self.resolve("config.json"))
        self.assertEqual((st, body), (200, MAIN["config.json"]))
        self.assertEqual(h2["etag"], h["etag"])

    def test_git_blob_sha1_matches_git(self):
        git = shutil.which("git")
        if git is None:
            self.skipTest("git is not installed")
        for name in ("config.json", "small.dat"):
            out = subprocess.run([git, "hash-object", "--stdin"], input=MAIN[name],
                                 capture_output=True, timeout=30, check=True).stdout
            self.assertEqual(out.decode().strip(), hs.git_blob_sha1(MAIN[name]))
        # The server's ETag for a small file is that id, computed from the file on disk.
        st, h, _ = request(self.resolve("small.dat"), "HEAD")
        self.assertEqual(h["etag"].strip('"'), hs.git_blob_sha1(MAIN["small.dat"]))

    def test_ranges(self):
        blob = MAIN["small.dat"]
        cases = [("bytes=100-", 206, blob[100:], "bytes 100-999/1000"),
                 ("bytes=10-19", 206, blob[10:20], "bytes 10-19/1000"),
                 ("bytes=-5", 206, blob[-5:], "bytes 995-999/1000"),
                 ("bytes=990-5000", 206, blob[990:], "bytes 990-999/1000"),
                 ("bytes=0-", 206, blob, "bytes 0-999/1000")]
        for rng, status, body, crange in cases:
            st, h, got = request(self.resolve("small.dat"), headers={"Range": rng})
            self.assertEqual((st, got, h.get("content-range")), (status, body, crange), rng)
            self.assertEqual(int(h["content-length"]), len(body))
        st, h, _ = request(self.resolve("small.dat"), headers={"Range": "bytes=1000-"})
        self.assertEqual((st, h["content-range"]), (416, "bytes */1000"))
        st, _, got = request(self.resolve("small.dat"), headers={"Range": "lines=1-2"})
        self.assertEqual((st, got), (200, blob))

    def test_lfs_head_redirects_to_cdn(self):
        content = MAIN["model.safetensors"]
        st, h, body = request(self.resolve("model.safetensors"), "HEAD")
        self.assertEqual(st, 302)
        self.assertEqual(h["x-linked-etag"], f'"{sha256(content)}"')
        self.assertEqual(int(h["x-linked-size"]), len(content))
        self.assertEqual(h["x-repo-commit"], self.commit())
        # ETag names the pointer file in git, not the content; Content-Length is
        # the redirect's own body, so a client must prefer the X-Linked-* headers.
        ptr = hs.lfs_pointer(sha256(content), len(content))
        self.assertEqual(h["etag"], f'"{hs.git_blob_sha1(ptr)}"')
        self.assertNotEqual(int(h["content-length"]), len(content))
        loc = urllib.parse.urlsplit(h["location"])
        self.assertEqual((loc.scheme, loc.hostname, loc.port), ("http", "127.0.0.1", self.hub.cdn_port))
        self.assertNotEqual(self.hub.cdn_port, self.hub.hub_port)
        st, h2, body = request(h["location"])
        self.assertEqual(st, 200)
        self.assertEqual(sha256(body), sha256(content))
        self.assertEqual(h2["etag"], f'"{sha256(content)}"')
        # GET on the resolve URL redirects the same way.
        st, h3, _ = request(self.resolve("model.safetensors"))
        self.assertEqual((st, h3["x-linked-size"]), (302, str(len(content))))
        # LFS by size, and in a subfolder.
        for path in ("big.dat", "sub dir/deep/weights.bin"):
            st, h, _ = request(self.resolve(path), "HEAD")
            self.assertEqual((st, h["x-linked-etag"]), (302, f'"{sha256(MAIN[path])}"'), path)

    def test_cdn_range_and_signature(self):
        content = MAIN["model.safetensors"]
        loc = self.cdn_location()
        st, h, body = request(loc, headers={"Range": "bytes=123456-"})
        self.assertEqual((st, body), (206, content[123456:]))
        self.assertEqual(h["content-range"], f"bytes 123456-{len(content) - 1}/{len(content)}")
        st, h, _ = request(loc, "HEAD")
        self.assertEqual((st, int(h["content-length"])), (200, len(content)))
        self.assertIn("filename*=UTF-8''model.safetensors", h["content-disposition"])
        bad = loc.replace("signature=", "signature=0")
        self.assertEqual(request(bad)[0], 403)
        self.assertEqual(request(self.hub.cdn_url + "/lfs/" + "0" * 64)[0], 403)
        self.assertEqual(request(self.hub.cdn_url + "/elsewhere")[0], 404)

    def test_quoted_paths_and_revisions(self):
        st, h, body = request(self.resolve(SPACED))
        self.assertEqual((st, body), (200, MAIN[SPACED]))
        self.assertIn("%20", self.resolve(SPACED))
        self.assertIn("%C3%AF", self.resolve(SPACED))
        old = self.commit("v1.0")
        self.assertNotEqual(old, self.commit())
        for rev in ("v1.0", "refs/pr/1", old):
            st, h, body = request(self.resolve("config.json", rev))
            self.assertEqual((st, body, h["x-repo-commit"]), (200, OLD["config.json"], old), rev)
        # Unquoted, refs/pr/1 reads as revision "refs" and path "pr/1/config.json".
        st, h, _ = request(self.url("/org/repo/resolve/refs/pr/1/config.json"))
        self.assertEqual((st, h["x-error-code"]), (404, "RevisionNotFound"))

    def test_pinned_commit_serves_its_own_tree(self):
        main, old = self.commit(), self.commit("v1.0")
        st, h, _ = request(self.resolve("model.safetensors", old), "HEAD")
        self.assertEqual(h["x-linked-etag"], f'"{sha256(OLD["model.safetensors"])}"')
        self.assertEqual(h["x-repo-commit"], old)
        st, _, body = request(h["location"])
        self.assertEqual(body, OLD["model.safetensors"])
        st, h, _ = request(self.resolve("model.safetensors", main), "HEAD")
        self.assertEqual(h["x-linked-etag"], f'"{sha256(MAIN["model.safetensors"])}"')
        # A file of main that the old commit lacks is not there.
        st, h, _ = request(self.resolve("small.dat", old), "HEAD")
        self.assertEqual((st, h["x-error-code"], h["x-repo-commit"]), (404, "EntryNotFound", old))

    def test_commits_are_content_derived_or_fixed(self):
        self.assertEqual(self.commit(repo="org/pinned"), "1" * 40)
        st, h, body = request(self.resolve("a.txt", "2" * 40, "org/pinned"))
        self.assertEqual((st, body, h["x-repo-commit"]), (200, b"b", "2" * 40))
        first = self.commit()
        self.hub.rescan()
        self.assertEqual(self.commit(), first)
        self.assertRegex(first, r"^[0-9a-f]{40}$")
        info = self.hub.repo_info("org/repo")
        self.assertEqual(info["commit"], first)
        self.assertEqual(info["files"]["big.dat"]["etag"], sha256(MAIN["big.dat"]))

    def test_datasets_prefix(self):
        st, h, body = request(self.resolve("README.md", repo="org/data", prefix="datasets/"))
        self.assertEqual((st, body), (200, b"# data\n"))
        st, h, _ = request(self.resolve("train.parquet", repo="org/data", prefix="datasets/"), "HEAD")
        self.assertEqual((st, h["x-linked-etag"]), (302, f'"{sha256(data(7, 5000))}"'))
        self.assertEqual(urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)["repo"],
                         ["datasets/org/data"])
        st, _, body = request(self.url("/api/datasets/org/data/revision/main"))
        self.assertEqual(st, 200)
        self.assertEqual(sorted(s["rfilename"] for s in json.loads(body)["siblings"]),
                         ["README.md", "train.parquet"])
        # Without the prefix the dataset is not a model repository.
        st, h, _ = request(self.resolve("README.md", repo="org/data"))
        self.assertEqual((st, h["x-error-code"]), (401, "RepoNotFound"))

    def test_revision_api(self):
        st, _, body = request(self.url("/api/models/org/repo/revision/main"))
        info = json.loads(body)
        self.assertEqual(info["id"], "org/repo")
        self.assertEqual(info["sha"], self.hub.repo_info("org/repo")["commit"])
        self.assertEqual(sorted(s["rfilename"] for s in info["siblings"]), sorted(MAIN))
        st, _, body2 = request(self.url("/api/models/org/repo"))
        self.assertEqual(json.loads(body2)["sha"], info["sha"])
        st, _, body = request(self.url("/api/models/org/repo/revision/main?blobs=true"))
        sib = {s["rfilename"]: s for s in json.loads(body)["siblings"]}
        self.assertEqual(sib["small.dat"]["size"], 1000)
        self.assertEqual(sib["small.dat"]["blobId"], hs.git_blob_sha1(MAIN["small.dat"]))
        self.assertNotIn("lfs", sib["small.dat"])
        self.assertEqual(sib["big.dat"]["lfs"]["sha256"], sha256(MAIN["big.dat"]))
        self.assertEqual(sib["big.dat"]["lfs"]["size"], 70_000)
        st, _, body = request(self.url("/api/models/org/repo/revision/refs%2Fpr%2F1"))
        self.assertEqual(sorted(s["rfilename"] for s in json.loads(body)["siblings"]), sorted(OLD))
        st, h, _ = request(self.url("/api/models/org/repo/revision/nope"))
        self.assertEqual((st, h["x-error-code"]), (404, "RevisionNotFound"))
        self.assertNotIn("x-repo-commit", h)

    def test_tree_api(self):
        st, _, body = request(self.url("/api/models/org/repo/tree/main?recursive=true"))
        self.assertEqual(st, 200)
        entries = {e["path"]: e for e in json.loads(body)}
        files = {p for p, e in entries.items() if e["type"] == "file"}
        dirs = {p for p, e in entries.items() if e["type"] == "directory"}
        self.assertEqual(files, set(MAIN))
        self.assertEqual(dirs, {"sub dir", "sub dir/deep"})
        for p, content in MAIN.items():
            e = entries[p]
            self.assertEqual(e["size"], len(content), p)
            if p.endswith((".safetensors", ".bin")) or p == "big.dat":
                ptr = hs.lfs_pointer(sha256(content), len(content))
                self.assertEqual(e["lfs"], {"oid": sha256(content), "size": len(content),
                                            "pointerSize": len(ptr)}, p)
                self.assertEqual(e["oid"], hs.git_blob_sha1(ptr), p)
            else:
                self.assertNotIn("lfs", e, p)
                self.assertEqual(e["oid"], hs.git_blob_sha1(content), p)
        st, _, body = request(self.url("/api/models/org/repo/tree/main"))
        self.assertEqual({e["path"] for e in json.loads(body)},
                         {p for p in MAIN if "/" not in p} | {"sub dir"})
        st, _, body = request(self.url("/api/models/org/repo/tree/main/sub%20dir?recursive=1"))
        self.assertEqual({e["path"] for e in json.loads(body)},
                         {SPACED, "sub dir/deep", "sub dir/deep/weights.bin"})
        st, _, body = request(self.url("/api/models/org/repo/tree/v1.0?recursive=true"))
        self.assertEqual({e["path"] for e in json.loads(body)}, set(OLD))
        st, h, _ = request(self.url("/api/models/org/repo/tree/main/nowhere"))
        self.assertEqual((st, h["x-error-code"]), (404, "EntryNotFound"))

    def test_tree_pagination(self):
        self.hub.set_options(tree_page_size=2)
        url, seen, pages = self.url("/api/models/org/repo/tree/main?recursive=true"), [], 0
        while url:
            st, h, body = request(url)
            self.assertEqual(st, 200)
            page = json.loads(body)
            self.assertLessEqual(len(page), 2)
            seen += [e["path"] for e in page]
            pages += 1
            link = h.get("link")
            url = link[link.index("<") + 1:link.index(">")] if link else None
            if link:
                self.assertTrue(link.endswith('rel="next"'))
                self.assertIn("recursive=true", url)
        self.assertEqual(len(seen), len(MAIN) + 2)
        self.assertEqual(len(set(seen)), len(seen))
        self.assertEqual(pages, (len(MAIN) + 2 + 1) // 2)

    def test_errors(self):
        st, h, _ = request(self.resolve("x", repo="org/nope"))
        self.assertEqual((st, h["x-error-code"]), (401, "RepoNotFound"))
        st, h, _ = request(self.resolve("x", repo="org/nope"), headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual((st, h["x-error-code"]), (404, "RepoNotFound"))
        st, h, body = request(self.resolve("missing.bin"), "HEAD")
        self.assertEqual((st, h["x-error-code"], h["x-repo-commit"]), (404, "EntryNotFound", self.commit()))
        st, h, _ = request(self.resolve("sub dir"))  # a folder is no file
        self.assertEqual((st, h["x-error-code"]), (404, "EntryNotFound"))
        st, h, _ = request(self.resolve("config.json", "nope"))
        self.assertEqual((st, h["x-error-code"]), (404, "RevisionNotFound"))
        self.assertNotIn("x-repo-commit", h)
        st, h, _ = request(self.resolve("config.json"), headers={"Authorization": "Bearer wrong"})
        self.assertEqual(st, 401)
        self.assertIn("Invalid credentials", h["x-error-message"])
        for bad in ("/org/repo/resolve/main/../../../etc/passwd",
                    "/org/repo/resolve/main/sub%20dir/%2E%2E/config.json",
                    "/org/repo/resolve/main/a%2Fb", "/org/repo/resolve/main//config.json",
                    "/%2E%2E/repo/resolve/main/config.json", "/org/repo/resolve/main/%FF",
                    "/api/models/org/repo/tree/main/..", "/api/resolve-cache/bogus/org/repo/x/y"):
            self.assertEqual(request(self.url(bad))[0], 400, bad)
        self.assertEqual(request(self.url("/nowhere"))[0], 404)
        # A name sent without quoting (raw UTF-8 on the wire) is refused.
        with socket.create_connection(("127.0.0.1", self.hub.hub_port), timeout=5) as s:
            s.sendall("HEAD /org/repo/resolve/main/sub%20dir/naïve%20file.txt HTTP/1.1\r\n"
                      "Host: x\r\nConnection: close\r\n\r\n".encode("utf-8"))
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))
        self.assertEqual(request(self.resolve("config.json"), "POST")[0], 405)
        self.assertEqual(request(self.hub.url + "/_control/nowhere")[0], 404)

    def test_gated_and_private(self):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        st, h, _ = request(self.resolve("model.safetensors", repo="org/gated"), "HEAD")
        self.assertEqual((st, h["x-error-code"]), (401, "GatedRepo"))
        st, h, _ = request(self.resolve("model.safetensors", repo="org/gated"), "HEAD", auth)
        self.assertEqual(st, 302)
        # The listing of a gated repository is public, as on the Hub.
        st, _, body = request(self.url("/api/models/org/gated/revision/main"))
        self.assertEqual((st, json.loads(body)["gated"]), (200, "auto"))
        st, h, _ = request(self.resolve("config.json", repo="org/licensed"), headers=auth)
        self.assertEqual((st, h["x-error-code"]), (403, "GatedRepo"))
        st, _, _ = request(self.resolve("config.json", repo="org/licensed"),
                           headers={"Authorization": f"Bearer {TOKEN2}"})
        self.assertEqual(st, 200)
        st, h, _ = request(self.resolve("config.json", repo="org/private"))
        self.assertEqual((st, h["x-error-code"]), (401, "RepoNotFound"))
        st, h, _ = request(self.url("/api/models/org/private/tree/main"))
        self.assertEqual((st, h["x-error-code"]), (401, "RepoNotFound"))
        st, _, _ = request(self.resolve("config.json", repo="org/private"), headers=auth)
        self.assertEqual(st, 200)

    def test_require_token(self):
        self.hub.set_options(require_token=True)
        self.assertEqual(request(self.resolve("config.json"))[0], 401)
        self.assertEqual(request(self.url("/api/models/org/repo"))[0], 401)
        st, _, _ = request(self.resolve("config.json"), headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(st, 200)
        # The CDN never asks for a token: its URLs are signed.
        self.hub.set_options(require_token=False)
        loc = self.cdn_location()
        self.hub.set_options(require_token=True)
        self.assertEqual(request(loc)[0], 200)

    def test_resolve_cache_relative_redirect(self):
        self.hub.set_options(resolve_cache=True)
        st, h, _ = request(self.resolve("config.json"), "HEAD")
        self.assertEqual(st, 307)
        loc = h["location"]
        self.assertTrue(loc.startswith(f"/api/resolve-cache/models/org/repo/{self.commit()}/"), loc)
        self.assertEqual(h["x-repo-commit"], self.commit())
        st, h2, _ = request(self.url(loc), "HEAD")
        self.assertEqual(st, 200)
        self.assertEqual(h2["etag"], '"%s"' % hs.git_blob_sha1(MAIN["config.json"]))
        st, _, body = request(self.url(loc))
        self.assertEqual(body, MAIN["config.json"])
        st, h, _ = request(self.resolve(SPACED), "HEAD")
        self.assertEqual(request(self.url(h["location"]))[2], MAIN[SPACED])
        # By commit there is nothing to resolve; LFS files still go to the CDN.
        self.assertEqual(request(self.resolve("config.json", self.commit()), "HEAD")[0], 200)
        self.assertEqual(request(self.resolve("model.safetensors"), "HEAD")[0], 302)

    def test_request_log(self):
        self.hub.clear_log()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        st, h, _ = request(self.resolve("model.safetensors"), "HEAD", auth)
        request(h["location"], headers={"Range": "bytes=10-"})
        request(self.hub.url + "/_control")  # control requests are not logged
        log = self.hub.requests()
        self.assertEqual([(e["port"], e["method"]) for e in log], [("hub", "HEAD"), ("cdn", "GET")])
        hub_e, cdn_e = log
        self.assertEqual(hub_e["headers"]["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(hub_e["headers"]["accept-encoding"], "identity")
        self.assertEqual((hub_e["status"], hub_e["repo"], hub_e["file"], hub_e["revision"]),
                         (302, "models/org/repo", "model.safetensors", "main"))
        self.assertEqual(hub_e["server_port"], self.hub.hub_port)
        self.assertEqual(cdn_e["server_port"], self.hub.cdn_port)
        self.assertNotIn("authorization", cdn_e["headers"])
        self.assertEqual(cdn_e["headers"]["range"], "bytes=10-")
        self.assertEqual((cdn_e["status"], cdn_e["bytes"], cdn_e["complete"], cdn_e["done"]),
                         (206, 300_000 - 10, True, True))
        self.assertEqual(cdn_e["file"], "model.safetensors")
        self.assertTrue(cdn_e["target"].startswith("/lfs/"))
        self.assertEqual(self.hub.requests("cdn"), [cdn_e])
        over_http = hs.fetch_log(self.hub.url)
        self.assertEqual(over_http, log)
        self.assertEqual(hs.fetch_log(self.hub.url, port="hub"), [hub_e])
        self.assertEqual(hs.fetch_log(self.hub.url, since=hub_e["seq"]), [cdn_e])
        self.hub.clear_log()
        self.assertEqual(self.hub.requests(), [])
        request(self.resolve(SPACED))
        self.assertEqual(self.hub.requests()[0]["file"], SPACED)
        self.assertEqual(self.hub.requests()[0]["path"], f"/org/repo/resolve/main/{SPACED}")

    def test_log_waits_for_requests_in_flight(self):
        # The server pauses after the last byte: the client is done, the server
        # not yet. requests() waits for it; wait=0 shows it unfinished.
        body = MAIN["small.dat"]
        for wait, done in ((0, False), (5, True)):
            self.hub.clear_log()
            self.hub.add_switch("stall", file="small.dat", after_bytes=len(body), seconds=2)
            self.assertEqual(request(self.resolve("small.dat"))[2], body)
            e = self.hub.requests(wait=wait)[-1]
            self.assertEqual((e["done"], e["complete"]), (done, done), wait)
        self.assertTrue(hs.fetch_log(self.hub.url)[-1]["done"])

    def test_log_file(self):
        path = os.path.join(self.tmp, "requests.jsonl")
        with hs.HubServer(self.root, log_file=path) as other:
            request(other.url + "/org/repo/resolve/main/config.json", "HEAD")
            request(other.url + "/org/repo/resolve/main/config.json")
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        # Lines come as requests finish, which need not be the order they came.
        lines.sort(key=lambda e: e["seq"])
        self.assertTrue(all(e["done"] for e in lines))
        self.assertEqual([(e["method"], e["status"], e["bytes"]) for e in lines],
                         [("HEAD", 200, 0), ("GET", 200, len(MAIN["config.json"]))])
        os.unlink(path)

    def test_rescan_sees_changed_files(self):
        root = os.path.join(self.tmp, "mutable")
        hs.write_repo(root, "org/m", {"f.txt": "one"})
        with hs.HubServer(root) as other:
            base = other.url + "/org/m/resolve/main/f.txt"
            c1 = request(base, "HEAD")[1]["x-repo-commit"]
            hs.write_repo(root, "org/m", {"f.txt": "two", "g.txt": "new"})
            hs.control_request(other.url, {"rescan": True})
            st, h, body = request(base)
            self.assertEqual(body, b"two")
            self.assertNotEqual(h["x-repo-commit"], c1)
            self.assertEqual(request(other.url + "/org/m/resolve/main/g.txt")[0], 200)

    def test_parallel_requests_and_a_stall_blocks_nothing(self):
        self.hub.add_switch("stall", file="tokenizer.json", seconds=20)
        stalled = {}

        def slow():
            try:
                stalled["r"] = request(self.resolve("tokenizer.json"), timeout=30)
            except OSError as e:
                stalled["r"] = e
        t = threading.Thread(target=slow)
        t.start()
        try:
            deadline = time.monotonic() + 10
            while not any(e["file"] == "tokenizer.json" for e in self.hub.requests(wait=0)):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            results = [None] * 8
            paths = list(MAIN)

            def get(i):
                p = paths[i % len(paths)]
                st, h, body = request(self.resolve(p), timeout=10)
                if st == 302:
                    st, _, body = request(h["location"], timeout=10)
                results[i] = (p, st, body)
            workers = [threading.Thread(target=get, args=(i,)) for i in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(20)
            for p, st, body in results:
                self.assertEqual((st, body), (200, MAIN[p]), p)
            self.assertTrue(t.is_alive(), "the stalled request should still be waiting")
        finally:
            self.hub.stop()  # wakes the stall and closes it, long before its 20 s
            t.join(10)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(stalled["r"], (http.client.RemoteDisconnected, ConnectionResetError))

    def test_stop_leaves_no_threads(self):
        other = hs.HubServer(self.root).start()
        c = http.client.HTTPConnection("127.0.0.1", other.hub_port, timeout=5)
        c.request("HEAD", "/org/repo/resolve/main/config.json")
        c.getresponse().read()  # the connection stays open (keep-alive)
        other.stop()
        c.close()
        self.hub.stop()  # this test's own server (setUp) too
        left = [t.name for t in threading.enumerate() if t.name.startswith("hub-")]
        self.assertEqual(left, [])
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", other.hub_port), timeout=2).close()


class FaultTests(HubCase):

    def get_cdn(self, path="model.safetensors", headers=None, timeout=5):
        loc = self.cdn_location(path)
        return request(loc, headers=headers, timeout=timeout)

    def test_drop_mid_body(self):
        content = MAIN["model.safetensors"]
        self.hub.add_switch("drop", port="cdn", after_bytes=1000)
        loc = self.cdn_location()
        with self.assertRaises(http.client.IncompleteRead) as cm:
            request(loc)
        self.assertEqual(len(cm.exception.partial), 1000)
        self.assertEqual(cm.exception.partial, content[:1000])
        e = self.hub.requests("cdn")[-1]
        self.assertEqual((e["complete"], e["bytes"], e["faults"]), (False, 1000, ["drop"]))
        st, _, rest = request(loc, headers={"Range": "bytes=1000-"})
        self.assertEqual((st, content[:1000] + rest), (206, content))
        self.assertEqual(request(loc)[2], content)  # count 1: once only

    def test_drop_default_is_half_and_reset(self):
        body = MAIN["small.dat"]
        self.hub.add_switch("drop", file="small.dat")
        with self.assertRaises(http.client.IncompleteRead) as cm:
            request(self.resolve("small.dat"))
        self.assertEqual(cm.exception.partial, body[:500])
        self.hub.add_switch("drop", file="small.dat", after_bytes=0, reset=True)
        with self.assertRaises((http.client.IncompleteRead, ConnectionResetError)) as cm:
            request(self.resolve("small.dat"))
        if isinstance(cm.exception, http.client.IncompleteRead):
            self.assertEqual(cm.exception.partial, b"")
        # A listing's JSON body drops the same way.
        self.hub.add_switch("drop", path="/api/*", after_bytes=10)
        with self.assertRaises(http.client.IncompleteRead) as cm:
            request(self.url("/api/models/org/repo/tree/main?recursive=true"))
        self.assertEqual(len(cm.exception.partial), 10)
        # A HEAD has no body to drop: the switch waits for a GET.
        self.hub.add_switch("drop", file="small.dat", after_bytes=10)
        self.assertEqual(request(self.resolve("small.dat"), "HEAD")[0], 200)
        with self.assertRaises(http.client.IncompleteRead):
            request(self.resolve("small.dat"))

    def test_stall_before_headers(self):
        self.hub.add_switch("stall", method="HEAD", seconds=5)
        with self.assertRaises(socket.timeout):
            request(self.resolve("config.json"), "HEAD", timeout=0.5)
        e = self.hub.requests(wait=0)[-1]
        self.assertEqual((e["status"], e["done"]), (None, False))  # still stalled
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 200)

    def test_stall_mid_body(self):
        content = MAIN["model.safetensors"]
        self.hub.add_switch("stall", port="cdn", after_bytes=100, seconds=5)
        loc = self.cdn_location()
        u = urllib.parse.urlsplit(loc)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            c.request("GET", u.path + "?" + u.query)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(100), content[:100])
            c.sock.settimeout(0.5)  # the stall is 5 s
            with self.assertRaises(socket.timeout):
                r.read(1)
        finally:
            c.close()

    def test_stall_continue_and_cap(self):
        content = MAIN["small.dat"]
        self.hub.add_switch("stall", file="small.dat", after_bytes=10, seconds=0.2)
        self.assertEqual(request(self.resolve("small.dat"), timeout=10)[2], content)
        # However long a switch asks for, no stall outlasts stall_cap: a client
        # without a timeout of its own gets its answer, not a hang.
        self.hub.set_options(stall_cap=0.3)
        self.hub.add_switch("stall", file="small.dat", seconds=100000, then="close")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            request(self.resolve("small.dat"), timeout=20)
        self.assertEqual(request(self.resolve("small.dat"), timeout=5)[2], content)

    def test_corrupt(self):
        content = MAIN["model.safetensors"]
        self.hub.add_switch("corrupt", port="cdn")
        st, h, body = self.get_cdn()
        self.assertEqual((st, len(body)), (200, len(content)))
        self.assertNotEqual(sha256(body), sha256(content))
        diff = [i for i in range(len(body)) if body[i] != content[i]]
        self.assertEqual(diff, [len(content) // 2])
        self.assertEqual(self.get_cdn()[2], content)
        # An explicit offset, inside a Range request.
        self.hub.add_switch("corrupt", file="small.dat", offset=600)
        st, _, body = request(self.resolve("small.dat"), headers={"Range": "bytes=500-"})
        self.assertEqual(st, 206)
        self.assertEqual([i for i in range(len(body)) if body[i] != MAIN["small.dat"][500 + i]], [100])

    def test_lie_size_metadata(self):
        self.hub.add_switch("lie_size", delta=7)
        st, h, _ = request(self.resolve("model.safetensors"), "HEAD")
        self.assertEqual(int(h["x-linked-size"]), 300_007)
        self.hub.add_switch("lie_size", file="small.dat", delta=-1)
        st, h, _ = request(self.resolve("small.dat"), "HEAD")
        self.assertEqual(int(h["content-length"]), 999)
        # The body that follows is the real one.
        self.assertEqual(self.get_cdn()[2], MAIN["model.safetensors"])

    def test_lie_size_body(self):
        content = MAIN["model.safetensors"]
        self.hub.add_switch("lie_size", port="cdn", target="body", delta=5)
        with self.assertRaises(http.client.IncompleteRead) as cm:
            self.get_cdn()
        self.assertEqual(cm.exception.partial, content)
        self.hub.add_switch("lie_size", port="cdn", target="body", delta=-5)
        st, h, body = self.get_cdn()
        self.assertEqual((st, int(h["content-length"]), body), (200, len(content) - 5, content[:-5]))
        self.assertEqual(self.get_cdn()[2], content)

    def test_status_with_retry_after(self):
        self.hub.add_switch("status", method="HEAD", status=429, retry_after=1, count=2)
        for _ in range(2):
            st, h, _ = request(self.resolve("config.json"), "HEAD")
            self.assertEqual((st, h["retry-after"]), (429, "1"))
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 200)
        self.hub.add_switch("status", port="cdn", status=503, retry_after="2", skip=1)
        loc = self.cdn_location()
        self.assertEqual(request(loc)[0], 200)
        st, h, _ = request(loc)
        self.assertEqual((st, h["retry-after"]), (503, "2"))
        self.assertEqual(request(loc)[0], 200)
        self.hub.add_switch("status", status=404, error_code="EntryNotFound", file="config.json")
        st, h, _ = request(self.resolve("config.json"))
        self.assertEqual((st, h["x-error-code"]), (404, "EntryNotFound"))
        self.assertNotIn("x-repo-commit", h)

    def test_ignore_range(self):
        self.hub.add_switch("ignore_range", port="cdn")
        st, h, body = self.get_cdn(headers={"Range": "bytes=1000-"})
        self.assertEqual((st, body), (200, MAIN["model.safetensors"]))
        self.assertNotIn("content-range", h)
        st, _, _ = self.get_cdn(headers={"Range": "bytes=1000-"})
        self.assertEqual(st, 206)

    def test_redirect_loop(self):
        self.hub.add_switch("redirect_loop", port="hub", count=None)
        url = self.resolve("config.json")
        for hop in range(20):
            st, h, _ = request(url, "HEAD")
            self.assertEqual(st, 302)
            loc = h["location"]
            self.assertTrue(loc.startswith("/org/repo/resolve/main/config.json?"), loc)
            self.assertEqual(urllib.parse.parse_qs(loc.split("?", 1)[1])["loop"], [str(hop + 1)])
            url = self.url(loc)
        self.hub.clear_switches()
        loc = self.cdn_location()
        self.hub.add_switch("redirect_loop", port="cdn", count=None)
        for _ in range(5):
            st, h, _ = request(loc)
            self.assertEqual(st, 302)
            self.assertTrue(h["location"].startswith(self.hub.cdn_url + "/lfs/"))
            loc = h["location"]

    def test_tree_escape(self):
        self.hub.add_switch("tree_escape", count=None)
        st, _, body = request(self.url("/api/models/org/repo/tree/main?recursive=true"))
        paths = [e["path"] for e in json.loads(body)]
        for p in hs.DEFAULT_ESCAPES:
            self.assertIn(p, paths)
        self.assertTrue(any(p.startswith("../") for p in paths))
        st, _, body = request(self.url("/api/models/org/repo/revision/main"))
        self.assertIn("../escape.bin", [s["rfilename"] for s in json.loads(body)["siblings"]])
        for p in hs.DEFAULT_ESCAPES:  # and the server never serves them
            self.assertEqual(request(self.url("/org/repo/resolve/main/" + p))[0], 400)
        self.hub.set_switches([{"kind": "tree_escape", "paths": ["/abs/x", "ok/../../y"]}])
        st, _, body = request(self.url("/api/models/org/repo/tree/main"))
        self.assertEqual([e["path"] for e in json.loads(body)][-2:], ["/abs/x", "ok/../../y"])

    def test_gated_switch(self):
        self.hub.add_switch("gated", file="model.safetensors", count=None)
        st, h, _ = request(self.resolve("model.safetensors"), "HEAD")
        self.assertEqual((st, h["x-error-code"]), (401, "GatedRepo"))
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 200)
        st, _, _ = request(self.resolve("model.safetensors"), "HEAD",
                           {"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(st, 302)

    def test_strip_headers(self):
        self.hub.add_switch("strip_headers", file="missing.bin")
        st, h, _ = request(self.resolve("missing.bin"), "HEAD")
        self.assertEqual((st, h["x-error-code"]), (404, "EntryNotFound"))
        self.assertNotIn("x-repo-commit", h)
        st, h, _ = request(self.resolve("missing.bin"), "HEAD")
        self.assertIn("x-repo-commit", h)
        self.hub.add_switch("strip_headers", headers=["X-Linked-Etag", "etag"])
        st, h, _ = request(self.resolve("model.safetensors"), "HEAD")
        self.assertEqual(st, 302)
        self.assertNotIn("x-linked-etag", h)
        self.assertNotIn("etag", h)
        self.assertIn("x-linked-size", h)
        # Without Content-Length the body ends where the connection does.
        self.hub.add_switch("strip_headers", file="small.dat", headers=["Content-Length"])
        st, h, body = request(self.resolve("small.dat"))
        self.assertNotIn("content-length", h)
        self.assertEqual(body, MAIN["small.dat"])

    def test_weak_etag(self):
        self.hub.add_switch("weak_etag", count=2)
        st, h, _ = request(self.resolve("config.json"), "HEAD")
        self.assertEqual(h["etag"], 'W/"%s"' % hs.git_blob_sha1(MAIN["config.json"]))
        st, h, _ = request(self.resolve("model.safetensors"), "HEAD")
        self.assertEqual(h["x-linked-etag"], f'W/"{sha256(MAIN["model.safetensors"])}"')
        self.assertTrue(h["etag"].startswith('W/"'))

    def test_scoping_count_and_skip(self):
        sw = [{"kind": "status", "status": 503, "name": "cdn-only", "port": "cdn", "count": None},
              {"kind": "status", "status": 500, "method": "GET", "file": "*.json", "range": False},
              {"kind": "status", "status": 429, "repo": "datasets/*", "skip": 1, "count": 1},
              {"kind": "status", "status": 418, "count": 0}]
        self.hub.set_switches(sw)
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 200)   # method
        self.assertEqual(request(self.resolve("small.dat"))[0], 200)             # file
        self.assertEqual(request(self.resolve("tokenizer.json"), headers={"Range": "bytes=0-"})[0], 206)
        self.assertEqual(request(self.resolve("tokenizer.json"))[0], 500)
        self.assertEqual(request(self.resolve("tokenizer.json"))[0], 200)        # count 1
        self.assertEqual(request(self.resolve("model.safetensors"), "HEAD")[0], 302)
        loc = self.cdn_location()
        for _ in range(3):                                                       # always
            self.assertEqual(request(loc)[0], 503)
        dpath = self.resolve("README.md", repo="org/data", prefix="datasets/")
        self.assertEqual([request(dpath)[0] for _ in range(3)], [200, 429, 200])  # skip 1
        state = {s.get("name", s["status"]): s for s in self.hub.switches()}
        self.assertEqual((state["cdn-only"]["fired"], state["cdn-only"]["remaining"]), (3, None))
        self.assertEqual((state[500]["fired"], state[500]["remaining"]), (1, 0))
        self.assertEqual((state[429]["seen"], state[429]["fired"]), (2, 1))
        self.assertEqual(state[418]["fired"], 0)
        self.assertEqual(self.hub.requests("cdn")[-1]["faults"], ["status:cdn-only"])

    def test_switches_are_checked(self):
        for bad in ({"kind": "explode"}, {"kind": "drop", "after": 3},
                    {"kind": "status"}, {"kind": "drop", "port": "elsewhere"},
                    {"kind": "drop", "count": -1}, {"kind": "lie_size", "target": "x"}, "drop"):
            with self.assertRaises(ValueError, msg=repr(bad)):
                self.hub.add_switches([bad])
        with self.assertRaises(ValueError):
            hs.control_request(self.hub.url, {"add_switches": [{"kind": "explode"}]})
        with self.assertRaises(ValueError):
            hs.control_request(self.hub.url, {"frobnicate": True})
        with self.assertRaises(ValueError):
            self.hub.set_options(colour="red")
        self.assertEqual(self.hub.switches(), [])

    def test_control_over_http(self):
        state = hs.control_request(self.hub.url, {
            "add_switches": [{"kind": "status", "status": 503, "retry_after": 3, "method": "HEAD"}],
            "options": {"tree_page_size": 3}})
        self.assertEqual(state["switches"][0]["status"], 503)
        self.assertEqual(state["options"]["tree_page_size"], 3)
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 503)
        self.assertEqual(request(self.resolve("config.json"), "HEAD")[0], 200)
        state = hs.control_request(self.hub.url)
        self.assertEqual(state["switches"][0]["fired"], 1)
        self.assertEqual(state["requests"], 2)
        st, h, body = request(self.url("/api/models/org/repo/tree/main?recursive=true"))
        self.assertEqual(len(json.loads(body)), 3)
        hs.control_request(self.hub.url, {"clear_switches": True, "clear_log": True,
                                          "switches": [{"kind": "weak_etag"}]})
        self.assertEqual(len(self.hub.switches()), 1)
        self.assertEqual(self.hub.requests(), [])


class ProcessTests(unittest.TestCase):
    """The server as the shell tests run it: a child process."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hub-proc-")
        cls.root = os.path.join(cls.tmp, "root")
        make_root(cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def script(self, *args, **kw):
        return subprocess.run([sys.executable, os.path.join(HERE, "hub_server.py"), *args],
                              capture_output=True, text=True, timeout=30, **kw)

    def test_ready_file_sigterm_and_ctl(self):
        with hs.HubProcess(self.root, ["--lfs-threshold", "65536"]) as p:
            self.assertEqual(p.info["pid"], p.pid)
            self.assertTrue(p.hub.startswith("http://127.0.0.1:"))
            self.assertTrue(p.cdn.startswith("http://127.0.0.1:"))
            self.assertNotEqual(p.hub, p.cdn)
            st, h, _ = request(p.hub + "/org/repo/resolve/main/big.dat", "HEAD")
            self.assertEqual(st, 302)
            out = self.script("ctl", p.hub, json.dumps(
                {"add_switches": [{"kind": "status", "status": 429, "retry_after": 1}]}))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout)["switches"][0]["status"], 429)
            self.assertEqual(request(p.hub + "/org/repo/resolve/main/big.dat", "HEAD")[0], 429)
            out = self.script("log", p.hub)
            lines = [json.loads(x) for x in out.stdout.splitlines()]
            self.assertEqual([e["status"] for e in lines], [302, 429])
            self.assertEqual(p.requests(), lines)
            bad = self.script("ctl", p.hub, '{"add_switches": [{"kind": "nope"}]}')
            self.assertEqual(bad.returncode, 1)
            self.assertIn("unknown switch kind", bad.stderr)
            self.assertEqual(p.stop(), 0)  # SIGTERM: a clean exit
        with self.assertRaises(OSError):
            request(p.hub + "/_control", timeout=2)

    def test_control_file_and_flags(self):
        ctl = os.path.join(self.tmp, "control.json")
        with open(ctl, "w") as f:
            json.dump({"options": {"tree_page_size": 2},
                       "switches": [{"kind": "status", "status": 503, "retry_after": 1,
                                     "file": "config.json"}]}, f)
        log = os.path.join(self.tmp, "proc-log.jsonl")
        args = ["--control", ctl, "--switch", '{"kind": "weak_etag", "count": null}',
                "--token", TOKEN, "--require-token", "--resolve-cache", "--log-file", log]
        with hs.HubProcess(self.root, args) as p:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            self.assertEqual(request(p.hub + "/org/repo/resolve/main/small.dat", "HEAD")[0], 401)
            st, h, _ = request(p.hub + "/org/repo/resolve/main/config.json", "HEAD", auth)
            self.assertEqual((st, h["retry-after"]), (503, "1"))
            st, h, _ = request(p.hub + "/org/repo/resolve/main/config.json", "HEAD", auth)
            self.assertEqual(st, 307)
            st, h, _ = request(p.hub + h["location"], "HEAD", auth)
            self.assertTrue(h["etag"].startswith('W/"'))
            st, h, body = request(p.hub + "/api/models/org/repo/tree/main", headers=auth)
            self.assertEqual(len(json.loads(body)), 2)
            self.assertEqual(p.control()["options"]["tokens"], [TOKEN])
        with open(log, encoding="utf-8") as f:
            self.assertEqual(len(f.readlines()), 5)

    def test_bad_arguments(self):
        out = self.script("--root", self.root, "--switch", '{"kind": "explode"}')
        self.assertEqual(out.returncode, 2)
        self.assertIn("unknown switch kind", out.stderr)
        out = self.script("ctl")
        self.assertEqual(out.returncode, 2)

    def test_max_seconds(self):
        ready = os.path.join(self.tmp, "ready-max.json")
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "hub_server.py"),
                                 "--root", self.root, "--ready-file", ready, "--max-seconds", "1"],
                                stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()  # the ready line comes first on stdout
            info = json.loads(line)
            self.assertEqual(info["pid"], proc.pid)
            with open(ready) as f:
                self.assertEqual(json.load(f), info)
            self.assertEqual(proc.wait(20), 0)  # it stops by itself
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stdout.close()

    def test_exits_with_parent(self):
        ready = os.path.join(self.tmp, "ready-orphan.json")
        server = os.path.join(HERE, "hub_server.py")
        # The shell starts the server in the background, waits until it is
        # ready, and exits.
        out = subprocess.run(
            ["sh", "-c", '"$0" "$1" --root "$2" --ready-file "$3" >/dev/null & pid=$!; '
             'n=0; while [ ! -f "$3" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; '
             'echo $pid', sys.executable, server, self.root, ready],
            capture_output=True, text=True, timeout=30)
        pid = int(out.stdout.strip())

        def alive():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except FileNotFoundError:
                return False
        try:
            deadline = time.monotonic() + 20
            while alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertFalse(alive(), "the server outlived its parent shell")
        finally:
            if alive():
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
