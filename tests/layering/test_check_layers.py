"""test_check_layers.py - the layering check fails when it should: an
include that goes up a layer, a circle inside a folder, a circle between
folders, a file at the top of src/, an include without its folder, and a CLI
file reaching into src/. Each case is a small tree written here."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_layers.py")


def run(tree):
    with tempfile.TemporaryDirectory() as top:
        for rel, text in tree.items():
            path = os.path.join(top, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        os.makedirs(os.path.join(top, "tools"), exist_ok=True)
        p = subprocess.run([sys.executable, CHECK, "--src", top], capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout


GOOD = {
    "src/base/error.h": "",
    "src/base/error.c": '#include "base/error.h"\n',
    "src/formats/table.h": '#include "base/error.h"\n',
    "src/formats/table.c": '#include "formats/table.h"\n#include "ttsm.h"\n',
    "src/cache/manager.c": '#include "formats/table.h"\n',
}


class CheckLayers(unittest.TestCase):
    def test_a_layered_tree_passes(self):
        rc, out = run(GOOD)
        self.assertEqual(rc, 0, out)
        self.assertIn("0 include circles", out)
        self.assertIn("cache -> formats", out)

    def test_an_include_up_a_layer_fails(self):
        tree = dict(GOOD, **{"src/base/error.c": '#include "cache/manager.h"\n',
                             "src/cache/manager.h": ""})
        rc, out = run(tree)
        self.assertEqual(rc, 1)
        self.assertIn("src/base/error -> src/cache/manager goes up from base to cache", out)

    def test_a_circle_inside_a_folder_fails(self):
        tree = dict(GOOD, **{"src/formats/a.h": '#include "formats/b.h"\n',
                             "src/formats/b.c": '#include "formats/a.h"\n'})
        rc, out = run(tree)
        self.assertEqual(rc, 1)
        self.assertIn("circle between src/formats/a, src/formats/b", out)

    def test_a_top_level_file_fails(self):
        rc, out = run(dict(GOOD, **{"src/loose.c": ""}))
        self.assertEqual(rc, 1)
        self.assertIn("src/loose.c: files belong in a layer folder", out)

    def test_an_unknown_folder_fails(self):
        rc, out = run(dict(GOOD, **{"src/misc/x.c": ""}))
        self.assertEqual(rc, 1)
        self.assertIn("folder 'misc' is not a layer", out)

    def test_an_include_without_its_folder_fails(self):
        rc, out = run(dict(GOOD, **{"src/cache/manager.c": '#include "table.h"\n'}))
        self.assertEqual(rc, 1)
        self.assertIn('#include "table.h" is not a src/ header named by its folder', out)

    def test_the_cli_uses_the_public_header_only(self):
        rc, out = run(dict(GOOD, **{"tools/cmd_x.c": '#include "cache/manager.h"\n'}))
        self.assertEqual(rc, 1)
        self.assertIn("the CLI uses the public header and its own headers only", out)

    def test_a_cli_circle_fails(self):
        tree = dict(GOOD, **{"tools/a.h": '#include "b.h"\n', "tools/b.c": '#include "a.h"\n'})
        rc, out = run(tree)
        self.assertEqual(rc, 1)
        self.assertIn("tools: circle between tools/a, tools/b", out)


if __name__ == "__main__":
    unittest.main()
