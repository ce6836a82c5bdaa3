"""README.md says what is true: its first commands are the two fresh-machine
commands, its command list names every command `ttsm --help` lists, its
documentation list names every page of docs/, and its Python section's
install command and five-line example work as written (the install into a
fresh virtual environment, offline, building the wheel that carries libttsm;
the example from the repository root, with no TTSM_LIBRARY)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

SRC = os.path.abspath(os.environ.get("TTSM_SRC",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
CLI = os.environ.get("TTSM")


def readme():
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        return f.read()


def section(text, title):
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text, re.M | re.S)
    if not m:
        raise AssertionError("README.md has no '## %s' section" % title)
    return m.group(1)


class Readme(unittest.TestCase):
    def test_the_first_commands_are_the_two_fresh_machine_commands(self):
        # the same rule .ci/run uses to find them
        cmds = re.findall(r"^    (scripts/[^#]*[^ #]) *#", readme(), re.M)[:2]
        self.assertEqual(cmds, ["scripts/main", "scripts/test"])

    def test_every_command_is_listed(self):
        out = subprocess.run([CLI, "--help"], capture_output=True, text=True).stdout
        block = out.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
        commands = [line.split()[0] for line in block.splitlines() if line.strip()]
        self.assertGreaterEqual(len(commands), 10)
        m = re.search(r"^- `ttsm` — (.*?)(?=^- |\Z)", readme(), re.M | re.S)
        self.assertIsNotNone(m, "README.md has no '- `ttsm` — ...' item")
        listed = set(re.findall(r"`([a-z-]+)`", m.group(1)))
        self.assertEqual([c for c in commands if c not in listed], [],
                         "commands missing from README.md's list")

    def test_every_documentation_page_is_listed(self):
        docs = section(readme(), "Documentation")
        pages = ["docs/" + n for n in sorted(os.listdir(os.path.join(SRC, "docs")))
                 if n.endswith(".md")]
        folders = ["docs/%s/" % n for n in sorted(os.listdir(os.path.join(SRC, "docs")))
                   if os.path.isdir(os.path.join(SRC, "docs", n))]
        self.assertIn("docs/python.md", pages)
        self.assertEqual([p for p in pages + folders if "`%s`" % p not in docs], [],
                         "docs/ pages missing from README.md's Documentation list")

    def test_the_python_section_installs_and_its_example_runs(self):
        py_section = section(readme(), "Python")
        install = re.findall(r"^    (pip install \S+)", py_section, re.M)
        self.assertEqual(install, ["pip install ."])
        self.assertIn("TTSM_LIBRARY", py_section)
        examples = re.findall(r"^```python\n(.*?)^```", py_section, re.M | re.S)
        self.assertEqual(len(examples), 1)
        example = examples[0]
        self.assertEqual(len(example.splitlines()), 5, "the example is five lines")

        tmp = tempfile.mkdtemp(prefix="ttsm-readme-")
        self.addCleanup(shutil.rmtree, tmp, True)
        venv = os.path.join(tmp, "venv")
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True,
                       capture_output=True)
        py = os.path.join(venv, "bin", "python")
        env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
        env.pop("PYTHONPATH", None)
        env.pop("TTSM_LIBRARY", None)  # the wheel carries the library: nothing else is needed
        # `.` is the repository root: installing must not write into the source tree
        def tree():
            r = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--ignored"],
                               capture_output=True, text=True)
            return r.stdout if r.returncode == 0 else None
        before = tree()
        r = subprocess.run([py, "-m"] + install[0].split(), capture_output=True, text=True,
                           cwd=SRC, env=env, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        if before is not None:
            self.assertEqual(tree(), before, "installing wrote into the source tree")

        r = subprocess.run([py, "-c", "import ttsm; print(ttsm.__file__)\n" + example],
                           capture_output=True, text=True, cwd=SRC, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith(venv), "not the installed package: " + lines[0])
        self.assertRegex(lines[1], r"^ttsm\.Model\(chatterbox/English on cpu, key [0-9a-f]{32}, "
                                   r"\d+ bytes\) \['t3_cfg', 's3gen', 've', 'tokenizer', "
                                   r"'conds'\] \['lstm\.weight_ih_l0', 'lstm\.weight_hh_l0'\]$")
        self.assertEqual(lines[2], "1 [('chatterbox', 'English', 0)]")


if __name__ == "__main__":
    unittest.main()
