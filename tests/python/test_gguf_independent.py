"""GGUF files read two ways must agree: `ttsm inspect --json --tensors` and the
npm package @huggingface/gguf (tests/tools/gguf_dump.mjs, installed by
scripts/install-deps). Covers every third-party GGUF file and the valid
hand-made fixtures: tensor names, dtypes, shapes (GGUF lists ne innermost
first, ttsm shapes are outermost first), absolute offsets, and metadata keys,
types and values. Files third parties wrote as invalid must be rejected."""
import json
import os
import shutil
import struct
import subprocess
import unittest

SRC = os.environ.get("TTSM_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
TTSM = os.environ.get("TTSM", "ttsm")
THIRD_PARTY = os.path.join(SRC, "tests", "data", "third_party", "gguf")
FIXTURES = os.path.join(SRC, "tests", "fixtures", "gguf")
TOOLS = os.path.join(SRC, "tests", "tools")

# GGUF key/value type ids -> the names ttsm gives them.
GGUF_TYPES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool",
              8: "str", 9: "array", 10: "u64", 11: "i64", 12: "f64"}
# ggml type ids (ggml.h) -> ttsm dtype names.
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
              9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
              16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
              21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
              27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
              39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0"}
# Third-party files PROVENANCE.md marks NEGATIVE, with the rule ttsm must name.
NEGATIVE = {"llama.cpp_prerelease_example.gguf": "bad magic"}


def node():
    return shutil.which("node") or "/usr/bin/node"


def reference(path):
    """What @huggingface/gguf reads, or None when it rejects the file."""
    r = subprocess.run([node(), os.path.join(TOOLS, "gguf_dump.mjs"), path],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def inspect(path):
    r = subprocess.run([TTSM, "inspect", path, "--json", "--tensors"], capture_output=True,
                       text=True, timeout=120)
    return r


def same_number(kind, ours, ref):
    """Scalars compared as the type stores them: f32 bit patterns, exact ints
    (ttsm writes u64 past 2^63 - 1 as a decimal string)."""
    if isinstance(ref, str) and ref in ("NaN", "Infinity", "-Infinity"):
        return ours == ref
    if kind in ("f32", "f64"):
        if isinstance(ours, str):
            return False
        if kind == "f32":
            return struct.pack("<f", ours) == struct.pack("<f", ref) or (ours == 0 and ref == 0)
        return ours == ref
    if kind == "bool":
        return ours is ref
    if kind == "str":
        return ours == ref
    return int(ours) == int(ref)


class GGUFIndependentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(TOOLS, "node_modules", "@huggingface", "gguf")):
            raise AssertionError("@huggingface/gguf is not installed: run scripts/install-deps "
                                 "(npm ci --prefix tests/tools)")

    def compare_value(self, key, kind, ours, ref):
        """kind is the ttsm type of `ours` ("u32", "array[array[u32]]"), or None
        inside arrays whose inner arrays differ ("array[array]")."""
        if isinstance(ref, list):
            self.assertIsInstance(ours, list, key)
            self.assertEqual(len(ours), len(ref), key)
            inner = kind[len("array["):-1] if kind and kind.startswith("array[") else None
            for i, (o, r) in enumerate(zip(ours, ref)):
                self.compare_value(f"{key}[{i}]", inner, o, r)
            return
        if kind is None:  # infer from the values
            if isinstance(ours, bool) or isinstance(ref, bool):
                kind = "bool"
            elif isinstance(ours, float) or isinstance(ref, float):
                kind = "f32"
            elif isinstance(ours, int):
                kind = "i64"
            else:
                kind = "str"
        self.assertTrue(same_number(kind, ours, ref), f"{key}: {ours!r} != {ref!r}")

    def compare(self, path):
        ref = reference(path)
        self.assertIsNotNone(ref, f"@huggingface/gguf rejects {path}")
        r = inspect(path)
        self.assertEqual(r.returncode, 0, f"ttsm inspect {path}: {r.stderr}")
        ours = json.loads(r.stdout)
        self.assertEqual(ours["format"], "gguf")
        self.assertEqual(ours["version"], ref["version"])

        # Tensors: same order, names, dtypes; shape is ne reversed; offsets absolute.
        self.assertEqual(ours["tensor_count"], len(ref["tensors"]))
        self.assertEqual(len(ours["tensors"]), len(ref["tensors"]))
        for t, rt in zip(ours["tensors"], ref["tensors"]):
            self.assertEqual(t["name"], rt["name"])
            self.assertEqual(t["dtype"], GGML_TYPES[rt["ggml_type"]], t["name"])
            self.assertEqual(t["shape"], [int(d) for d in reversed(rt["ne"])], t["name"])
            self.assertEqual(len(t["shape"]), rt["n_dims"], t["name"])
            self.assertEqual(t["offset"], int(rt["offset"]), t["name"])
            self.assertEqual(t["file"], 0)
            self.assertTrue(t["contiguous"])

        # Metadata: the same keys (ttsm keeps an exact repeat once, as does a
        # JavaScript object), the same types, the same values.
        self.assertEqual(set(ours["metadata"]), set(ref["metadata"]))
        for key, rm in ref["metadata"].items():
            om = ours["metadata"][key]
            kind = GGUF_TYPES[rm["type"]]
            if kind == "array":
                sub = GGUF_TYPES[rm["subType"]]
                if sub == "array":
                    self.assertTrue(om["type"].startswith("array[array"), key)
                else:
                    self.assertEqual(om["type"], f"array[{sub}]", key)
            else:
                self.assertEqual(om["type"], kind, key)
            self.compare_value(key, om["type"], om["value"], rm["value"])
        return ours

    def test_third_party_files(self):
        names = sorted(n for n in os.listdir(THIRD_PARTY) if n.endswith(".gguf"))
        self.assertGreaterEqual(len(names), 5)
        for name in names:
            if name in NEGATIVE:
                continue
            with self.subTest(file=name):
                self.compare(os.path.join(THIRD_PARTY, name))

    def test_third_party_negative_files(self):
        for name, rule in NEGATIVE.items():
            path = os.path.join(THIRD_PARTY, name)
            self.assertIsNone(reference(path), f"@huggingface/gguf accepts {name}")
            r = inspect(path)
            self.assertNotEqual(r.returncode, 0, name)
            self.assertIn(f"{name}: {rule}:", r.stderr)

    def test_valid_fixtures(self):
        names = sorted(n for n in os.listdir(FIXTURES) if n.startswith("valid_"))
        self.assertGreaterEqual(len(names), 6)
        for name in names:
            with self.subTest(file=name):
                self.compare(os.path.join(FIXTURES, name))

    def test_known_facts(self):
        """A few values checked by hand, so an agreement of two wrong readers
        cannot pass: ollama's embedding is [32000, 8] F16 at data start 724416."""
        ours = self.compare(os.path.join(THIRD_PARTY, "ollama_llama-2-tiny-random.gguf"))
        emb = next(t for t in ours["tensors"] if t["name"] == "token_embd.weight")
        self.assertEqual((emb["shape"], emb["dtype"], emb["offset"], emb["nbytes"]),
                         ([32000, 8], "F16", 724416, 512000))
        ours = self.compare(os.path.join(FIXTURES, "valid_v3_all_types.gguf"))
        self.assertEqual(ours["metadata"]["t.u64"], {"type": "u64",
                                                     "value": "18446744073709551615"})
        self.assertEqual(ours["metadata"]["t.nested"]["type"], "array[array[u32]]")


if __name__ == "__main__":
    unittest.main()
