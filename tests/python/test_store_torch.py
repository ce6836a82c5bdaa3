"""test_store_torch.py - the generated test store (tests/fixtures/gen_store.py)
against real PyTorch and the hub cache's conventions.

Every PyTorch file the generator pickles by hand (no torch) loads with
torch.load(weights_only=True), and what torch sees - names as ttsm flattens
them, dtypes, shapes, bytes, non-tensor values - is what `ttsm inspect` reports.
The generator runs without torch importable, writes the same bytes every run,
and lays out the hub cache like huggingface_hub (refs holding a commit,
relative snapshot symlinks into blobs/<sha256>).
"""
import collections
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("TTSM_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
TTSM = os.environ.get("TTSM")
GEN = os.path.join(SRC, "tests", "fixtures", "gen_store.py")

try:
    import torch
except ImportError:  # the tests that need it are skipped
    torch = None

TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64"}


def generate(out, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    subprocess.run([sys.executable, GEN, out], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def flatten(obj, prefix=""):
    """(tensors {name: tensor}, values {name: value}) the way ttsm names them:
    dict keys joined with '.', a bare tensor at the root called 'tensor'."""
    tensors, values = collections.OrderedDict(), {}
    if torch is not None and isinstance(obj, torch.Tensor):
        tensors[prefix or "tensor"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            t, o = flatten(v, "%s.%s" % (prefix, k) if prefix else k)
            tensors.update(t)
            values.update(o)
    else:
        values[prefix] = obj
    return tensors, values


class StoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.store = os.path.join(cls.tmp.name, "store")
        # A `torch` that refuses to import: the generator must not need it.
        poison = os.path.join(cls.tmp.name, "poison", "torch")
        os.makedirs(poison)
        with open(os.path.join(poison, "__init__.py"), "w") as f:
            f.write("raise ImportError('gen_store.py must not import torch')\n")
        generate(cls.store, {"PYTHONPATH": os.path.dirname(poison)})
        with open(os.path.join(cls.store, "store.json")) as f:
            cls.files = json.load(f)["files"]
        cls.torch_files = sorted({os.path.join(cls.store, e["comfy"]) for e in cls.files
                                  if e["kind"] == "tensors" and "comfy" in e
                                  and e["comfy"].endswith((".pt", ".pth", ".bin", ".ckpt"))})

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def inspect(self, path):
        r = subprocess.run([TTSM, "inspect", path, "--json", "--tensors"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_every_engine_has_torch_files(self):
        kinds = {os.path.splitext(p)[1] for p in self.torch_files}
        self.assertEqual(kinds, {".pt", ".pth", ".bin"})
        self.assertGreater(len(self.torch_files), 25)

    @unittest.skipIf(torch is None or not TTSM, "needs torch and the ttsm CLI")
    def test_torch_load_matches_ttsm(self):
        counts = {os.path.join(self.store, e["comfy"]): e["tensors"] for e in self.files
                  if "comfy" in e}
        for path in self.torch_files:
            with self.subTest(path=os.path.relpath(path, self.store)):
                obj = torch.load(path, weights_only=True, map_location="cpu")
                tensors, values = flatten(obj)
                info = self.inspect(path)
                self.assertEqual(info["format"], "pytorch-zip")
                self.assertEqual(counts[path], len(tensors))
                self.assertEqual([t["name"] for t in info["tensors"]], list(tensors))
                with open(path, "rb") as f:
                    data = f.read()
                for t in info["tensors"]:
                    ref = tensors[t["name"]]
                    self.assertEqual(TORCH_DTYPE[t["dtype"]], str(ref.dtype).split(".")[1])
                    self.assertEqual(t["shape"], list(ref.shape))
                    self.assertEqual(t["strides"], list(ref.stride()))
                    raw = ref.contiguous().view(torch.uint8).numpy().tobytes() \
                        if ref.dtype != torch.bfloat16 else \
                        ref.contiguous().view(torch.int16).numpy().tobytes()
                    self.assertEqual(t["nbytes"], len(raw))
                    self.assertEqual(data[t["offset"]:t["offset"] + t["nbytes"]], raw, t["name"])
                # Non-tensor values (RVC's config, sr, f0, version; conds' None).
                meta = {k: v["value"] for k, v in info["metadata"].items()}
                self.assertEqual(set(meta), set(values))
                for k, v in values.items():
                    self.assertEqual(meta[k], v, k)

    @unittest.skipIf(torch is None, "needs torch")
    def test_rvc_voice_and_conds_shapes(self):
        rvc = [p for p in self.torch_files if p.endswith("/TTS/RVC/Claire.pth")][0]
        d = torch.load(rvc, weights_only=True)
        self.assertEqual(sorted(d), ["config", "f0", "info", "sr", "version", "weight"])
        self.assertIsInstance(d["weight"], collections.OrderedDict)
        self.assertTrue(all(t.dtype == torch.float16 for t in d["weight"].values()))
        self.assertEqual((d["sr"], d["f0"], d["version"]), ("40k", 1, "v2"))
        self.assertEqual(d["config"][-1], 40000)
        conds = [p for p in self.torch_files if p.endswith("/chatterbox/English/conds.pt")][0]
        c = torch.load(conds, weights_only=True)
        self.assertEqual(c["t3"]["cond_prompt_speech_tokens"].dtype, torch.int64)
        self.assertIsNone(c["gen"]["prompt_feat_len"])
        feat = [p for p in self.torch_files if p.endswith("/IndexTTS-2/feat1.pt")][0]
        self.assertIsInstance(torch.load(feat, weights_only=True), torch.Tensor)

    def test_deterministic(self):
        with tempfile.TemporaryDirectory() as other:
            generate(os.path.join(other, "s"))
            for root, _, names in os.walk(self.store):
                for n in names:
                    a = os.path.join(root, n)
                    b = os.path.join(other, "s", os.path.relpath(a, self.store))
                    if os.path.islink(a):
                        self.assertEqual(os.readlink(a), os.readlink(b), a)
                    else:
                        with open(a, "rb") as fa, open(b, "rb") as fb:
                            self.assertEqual(fa.read(), fb.read(), a)

    def test_small(self):
        total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(self.store)
                    for n in ns if not os.path.islink(os.path.join(r, n)))
        self.assertLess(total, 2_000_000)

    def test_hub_layout(self):
        hub = os.path.join(self.store, "hub")
        repos = sorted(os.listdir(hub))
        self.assertIn("models--ResembleAI--chatterbox", repos)
        self.assertIn("datasets--SayanoAI--RVC-Studio", repos)
        # The snapshots each repo holds: those store.json names (a pinned
        # revision's, and main's), no other.
        commits = {}
        for e in self.files:
            if "hub" in e:
                _, rdir, _, commit = e["hub"].split("/")[:4]
                commits.setdefault(rdir, set()).add(commit)
        self.assertEqual(set(repos), set(commits))
        pinned = 0
        for repo in repos:
            base = os.path.join(hub, repo)
            self.assertRegex(repo, r"^(models|datasets)--[^/]+--[^/]+$")
            self.assertEqual(set(os.listdir(os.path.join(base, "snapshots"))), commits[repo])
            with open(os.path.join(base, "refs", "main")) as f:
                main = f.read()
            self.assertRegex(main, r"^[0-9a-f]{40}$")  # no newline, as huggingface_hub writes
            self.assertIn(main, commits[repo])
            # A pinned commit has a snapshot and no ref, as huggingface_hub
            # leaves it after a download at that revision.
            self.assertEqual(os.listdir(os.path.join(base, "refs")), ["main"])
            pinned += len(commits[repo]) - 1
            blobs = set(os.listdir(os.path.join(base, "blobs")))
            used = set()
            for root, _, names in os.walk(os.path.join(base, "snapshots")):
                for n in names:
                    link = os.path.join(root, n)
                    self.assertTrue(os.path.islink(link), link)
                    target = os.readlink(link)
                    self.assertFalse(os.path.isabs(target), link)
                    real = os.path.realpath(link)
                    self.assertEqual(os.path.dirname(real), os.path.realpath(os.path.join(base, "blobs")))
                    with open(real, "rb") as f:
                        self.assertEqual(hashlib.sha256(f.read()).hexdigest(), os.path.basename(real))
                    used.add(os.path.basename(real))
            self.assertEqual(used, blobs, repo)  # no stray blobs
        self.assertEqual(pinned, 2)  # Higgs Audio's two repos: the pinned commit beside main

    def test_safetensors_headers(self):
        """Every safetensors file: 8-byte length, a JSON header padded with
        spaces to 8 bytes, offsets that tile the data exactly."""
        n = 0
        for e in self.files:
            if not e.get("comfy", "").endswith(".safetensors"):
                continue
            with open(os.path.join(self.store, e["comfy"]), "rb") as f:
                data = f.read()
            (hl,) = struct.unpack("<Q", data[:8])
            self.assertEqual(hl % 8, 0)
            header = json.loads(data[8:8 + hl])
            self.assertEqual(header.pop("__metadata__"), {"format": "pt"})
            spans = sorted(v["data_offsets"] for v in header.values())
            self.assertEqual(spans[0][0], 0)
            for a, b in zip(spans, spans[1:]):
                self.assertEqual(a[1], b[0])
            self.assertEqual(spans[-1][1], len(data) - 8 - hl)
            self.assertEqual(len(header), e["tensors"])
            n += 1
        self.assertGreater(n, 40)

    def test_json_files_are_json(self):
        for e in self.files:
            if e["kind"] == "json" and "comfy" in e:
                with open(os.path.join(self.store, e["comfy"]), encoding="utf-8") as f:
                    obj = json.load(f)
                self.assertIsInstance(obj, dict)
                if re.search(r"tokenizer[^/]*\.json$|grapheme", e["name"]) and \
                        "config" not in e["name"] and "special" not in e["name"]:
                    self.assertEqual(obj["model"]["type"], "BPE", e["comfy"])


if __name__ == "__main__":
    unittest.main()
