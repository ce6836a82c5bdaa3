"""pull_util.py - what the `ttsm pull` tests share: a test engine ("hubtest")
whose manifest covers what a pull must handle (LFS and small files, a
subfolder with spaces and non-ASCII names, alternatives, an optional file,
fallback repos, a deliberate pattern), the repositories the test Hub serves
for it, an isolated environment for the CLI, and checks of the hub cache
layout byte by byte. Every command runs with a timeout; every server is
stopped by the test that started it."""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hub_server as hs  # noqa: E402

TTSM = os.environ.get("TTSM", "ttsm")
SRC = os.environ.get("TTSM_SRC", os.path.normpath(os.path.join(HERE, "..", "..")))
TOKEN = "hf_pull_test_secret_1234"
NESTED = "sub dir/ünï/cfg ü.json"  # a folder with a space, non-ASCII names


def data(seed, n):
    return random.Random(seed).randbytes(n)


def safetensors(n_floats, seed):
    """A valid safetensors file: one F32 tensor of n_floats values."""
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "w": {"dtype": "F32", "shape": [n_floats],
                               "data_offsets": [0, 4 * n_floats]}}).encode()
    header += b" " * (-len(header) % 8)
    body = struct.pack("<%df" % n_floats, *[(i % 251) / 7.0 for i in range(n_floats)])
    return struct.pack("<Q", len(header)) + header + body


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def git_sha1(b):
    return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()


MANIFEST = {
    "schema": 1,
    "name": "hubtest",
    "aliases": ["HubTest"],
    "description": "a test engine for the Hub client",
    "runtime": "pytorch",
    "model_types": ["tts"],
    "capabilities": {
        "supports_voice_conversion": False, "has_fallback": True, "can_corrupt": False,
        "requires_special_init": False, "language_selects_model": False,
        "single_instance": False, "recovery": "none"},
    "devices": ["cpu"],
    "languages": ["en"],
    "identity_params": [],
    "folder": "HubTest",
    "legacy_folders": [],
    "default_model": "base",
    "models": [
        {"name": "base", "repos": [{"id": "org/hubtest"}],
         "components": [
             {"name": "weights", "kind": "tensors", "files": ["model.safetensors"]},
             {"name": "config", "kind": "json", "files": ["config.json"]},
             {"name": "nested", "kind": "json", "subfolder": "sub dir/ünï",
              "files": ["cfg ü.json"]},
             {"name": "alt", "kind": "blob", "files": ["first.bin", "second.txt"]},
             {"name": "extra", "kind": "blob", "files": ["extra.txt"], "optional": True}]},
        {"name": "other", "repos": [{"id": "org/hubtest", "subfolder": "other"}],
         "components": [
             {"name": "weights", "kind": "tensors", "files": ["model.safetensors"]},
             {"name": "config", "kind": "json", "files": ["config.json"]}]},
        {"name": "fallback", "repos": [{"id": "org/gone"}, {"id": "org/mirror"}],
         "components": [{"name": "config", "kind": "json", "files": ["config.json"]}]},
        {"name": "pattern", "repos": [{"id": "org/steps"}],
         "components": [{"name": "ckpt", "kind": "blob", "files": ["step_*.bin"],
                         "deliberate_pattern": True}]},
        {"name": "large", "repos": [{"id": "org/large"}],
         "components": [{"name": "weights", "kind": "tensors", "files": ["large.safetensors"]}]},
        {"name": "many", "repos": [{"id": "org/many"}],
         "components": [{"name": "part%d" % i, "kind": "blob", "files": ["part%d.bin" % i]}
                        for i in range(10)]},
    ],
}

BASE = {
    "model.safetensors": safetensors(1 << 20, 1),  # 4 MiB, LFS by its name
    "config.json": b'{"hidden_size": 8}\n',
    NESTED: '{"nested": "ü"}\n'.encode(),
    "second.txt": b"the second alternative\n",
    "other/model.safetensors": safetensors(1000, 2),
    "other/config.json": b'{"hidden_size": 4}\n',
}


# 20 MiB: large enough to be hashed and written on the writer thread.
LARGE = safetensors(5 << 20, 3)


def make_repos(root, many_size=100_000):
    hs.write_repo(root, "org/hubtest", BASE)
    hs.write_repo(root, "org/mirror", {"config.json": b'{"mirror": true}\n'})
    hs.write_repo(root, "org/steps", {"step_200000.bin": data(3, 100),
                                      "step_1250000.bin": data(4, 100),
                                      "step_30000.bin": data(5, 100),
                                      "other/step_9999999.bin": data(6, 100)})
    hs.write_repo(root, "org/large", {"large.safetensors": LARGE})
    hs.write_repo(root, "org/many", {"part%d.bin" % i: data(10 + i, many_size)
                                     for i in range(10)})


class PullTest(unittest.TestCase):
    """A temporary home, hub cache and repository root per test; a Hub
    started on demand and stopped at the end."""

    hub_options = {}

    def setUp(self):
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="ttsm-pull-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "root")
        self.cache = os.path.join(self.tmp, "cache")
        self.home = os.path.join(self.tmp, "home")
        self.engines = os.path.join(self.tmp, "engines")
        for d in (self.root, self.home, self.engines):
            os.makedirs(d)
        with open(os.path.join(self.engines, "hubtest.json"), "w", encoding="utf-8") as f:
            json.dump(MANIFEST, f, ensure_ascii=False, indent=1)
        make_repos(self.root)
        self.hub = None

    def start_hub(self, **options):
        opts = dict(self.hub_options)
        opts.update(options)
        self.hub = hs.HubServer(self.root, **opts).start()
        self.addCleanup(self.check_hub_errors)
        self.addCleanup(self.hub.stop)
        return self.hub

    def check_hub_errors(self):
        self.assertEqual(self.hub.errors(), [], "the test Hub failed on a request")

    def env(self, **extra):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("HF_", "TTSM_MODELS", "TTSM_ENGINES", "HUGGING"))}
        e.update(HOME=self.home, HF_HUB_CACHE=self.cache, TTSM_ENGINES_PATH=self.engines,
                 TTSM_MODELS_PATH=os.path.join(self.tmp, "no-models"),
                 HF_HUB_DOWNLOAD_TIMEOUT="5", HF_HUB_ETAG_TIMEOUT="5")
        if self.hub:
            e["HF_ENDPOINT"] = self.hub.url
        for k, v in extra.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def ttsm(self, *args, timeout=60, **env):
        return subprocess.run([TTSM, *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(**env))

    def pull(self, *args, ok=True, **env):
        r = self.ttsm("pull", *args, **env)
        if ok and r.returncode != 0:
            self.fail("ttsm pull %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                         r.stderr))
        return r

    # -- the cache

    def repo_dir(self, repo_id, kind="models"):
        return os.path.join(self.cache, "%s--%s" % (kind, repo_id.replace("/", "--")))

    def gets(self, port=None):
        return [e for e in self.hub.requests(port) if e["method"] == "GET"]

    def assert_layout(self, repo_id, paths, revision="main"):
        """The repo folder holds exactly `paths` of the server's `revision`,
        byte by byte: each blob named by its etag (SHA-256 of the bytes for
        LFS files, the git blob SHA-1 for the others), each snapshot entry a
        relative link (one ../ more per folder) that resolves to it, and
        refs/<revision> holding the commit (no ref when it is a commit)."""
        info = self.hub.repo_info(repo_id, revision=revision)
        commit = info["commit"]
        rd = self.repo_dir(repo_id)
        if revision == commit:
            self.assertFalse(os.path.exists(os.path.join(rd, "refs", revision)))
        else:
            with open(os.path.join(rd, "refs", revision), "rb") as f:
                self.assertEqual(f.read(), commit.encode(), "refs/%s" % revision)
        want_blobs = set()
        for p in paths:
            meta = info["files"][p]
            link = os.path.join(rd, "snapshots", commit, *p.split("/"))
            self.assertTrue(os.path.islink(link), "%s is a link" % link)
            target = os.readlink(link)
            self.assertEqual(target, "../" * p.count("/") + "../../blobs/" + meta["etag"], p)
            blob = os.path.join(rd, "blobs", meta["etag"])
            self.assertEqual(os.path.realpath(link), os.path.realpath(blob))
            with open(link, "rb") as f:
                got = f.read()
            # The file the server serves for that revision, wherever it lies.
            src = self.hub._repo("models", repo_id).lookup(revision).files[p].fs_path
            with open(src, "rb") as f:
                self.assertEqual(got, f.read(), "the bytes of %s" % p)
            if meta["lfs"]:
                self.assertEqual(sha256(got), meta["etag"], "LFS blob named by its SHA-256")
            else:
                self.assertEqual(git_sha1(got), meta["etag"], "blob named by its git SHA-1")
            want_blobs.add(meta["etag"])
        self.assertEqual(set(os.listdir(os.path.join(rd, "blobs"))), want_blobs,
                         "nothing but the blobs (no partial file)")
        snap_files = set()
        for dp, _, fs in os.walk(os.path.join(rd, "snapshots", commit)):
            for f in fs:
                snap_files.add(os.path.relpath(os.path.join(dp, f),
                                               os.path.join(rd, "snapshots", commit)))
        self.assertEqual(snap_files, set(paths), "the snapshot holds exactly these")
        return commit

    def partials(self):
        out = []
        for dp, _, fs in os.walk(self.cache):
            out += [os.path.join(dp, f) for f in fs if f.endswith(".incomplete")]
        return out
