"""test_prefetch.py - the prefetch load option through Python: the Manager
option and Model.prefetch(wait=True) bring the whole file in and say how many
bytes; read mode has nothing to do."""
import os
import struct
import tempfile
import unittest

import ttsm_testutil  # noqa: F401  (puts the binding on the path)
import ttsm


def write_st(path, n=4, floats=1 << 18):
    hdr, off = {}, 0
    for i in range(n):
        hdr["t%d" % i] = {"dtype": "F32", "shape": [floats], "data_offsets": [off, off + 4 * floats]}
        off += 4 * floats
    import json
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + struct.pack("<f", 2.0) * (off // 4))
    return os.path.getsize(path)


class PrefetchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "w.safetensors")
        self.size = write_st(self.path)

    def tearDown(self):
        self.tmp.cleanup()

    def test_manager_option_and_model_method(self):
        with ttsm.Manager(prefetch=True) as mgr:
            with mgr.load("file", model_path=self.path, device="cpu") as m:
                self.assertEqual(m.prefetch(wait=True), self.size)
                self.assertIsNone(m.prefetch())  # started already: returns at once
        with ttsm.Manager() as mgr:
            with mgr.load("file", model_path=self.path, device="cpu") as m:
                self.assertEqual(m.prefetch(wait=True), self.size)

    def test_read_mode_has_nothing_to_do(self):
        with ttsm.Manager(io_mode="read", prefetch=True) as mgr:
            with mgr.load("file", model_path=self.path, device="cpu") as m:
                self.assertEqual(m.prefetch(wait=True), 0)


if __name__ == "__main__":
    unittest.main()
