"""test_wheel.py - the wheel works on its own: `pip install .` at the
repository root and `pip install ./python`, each into a fresh virtual
environment, offline (--no-index), build libttsm with the repository's CMake
through the standard-library backend and install a platform wheel that
carries it; `import ttsm` there, from outside the repository and with no
TTSM_LIBRARY, uses that copy and loads a model. Nothing is written into the
source tree. The sdist holds what such a build needs."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

from ttsm_testutil import SRC, ttsm

CHECK = r"""
import os, sys, ttsm
assert "TTSM_LIBRARY" not in os.environ
print(ttsm.library_path)
print(ttsm.__file__)
with ttsm.Manager(models_dir=sys.argv[1]) as mgr, mgr.load("chatterbox", device="cpu") as m:
    print(m.name, len(m.tensors("ve")), m.bytes)
print(ttsm.cache_key("chatterbox", device="cpu"))
"""


def git_state():
    r = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--ignored"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


class Wheel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ttsm-wheel-test-")
        cls.env = {k: v for k, v in os.environ.items()
                   if k not in ("TTSM_LIBRARY", "PYTHONPATH", "PYTHONHOME")}
        cls.env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                       # One CMake build folder for every wheel: the later ones are incremental.
                       TTSM_WHEEL_BUILD_DIR=os.path.join(cls.tmp, "cmake-build"),
                       CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def venv(self, name):
        d = os.path.join(self.tmp, name)
        subprocess.run(["/usr/bin/python3", "-m", "venv", d], check=True, capture_output=True)
        return os.path.join(d, "bin", "python")

    def install_and_check(self, name, target):
        py = self.venv(name)
        before = git_state()
        r = subprocess.run([py, "-m", "pip", "install", "--no-index", target], cwd=SRC,
                           env=self.env, capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        if before is not None:
            self.assertEqual(git_state(), before, "the build wrote into the source tree")
        r = subprocess.run([py, "-c", CHECK, os.path.join(SRC, "examples", "models")],
                           cwd=self.tmp, env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        lib, pkg, model, key = r.stdout.splitlines()
        site = os.path.join(self.tmp, name, "lib")
        self.assertTrue(lib.startswith(site) and lib.endswith("ttsm/libttsm.so"), lib)
        self.assertTrue(pkg.startswith(site), pkg)
        self.assertEqual(model.split()[:2], ["English", "6"])
        self.assertEqual(key, ttsm.cache_key("chatterbox", device="cpu"))
        r = subprocess.run([py, "-m", "pip", "show", "-f", "ttsm"], env=self.env,
                           capture_output=True, text=True)
        self.assertIn("ttsm/libttsm.so", r.stdout)
        self.assertIn("ttsm/registry.py", r.stdout)
        self.assertIn("Version: %s" % ttsm.__version__, r.stdout)

    def test_pip_install_dot_at_the_root(self):
        self.install_and_check("root", ".")

    def test_pip_install_python(self):
        self.install_and_check("python", "./python")

    def test_platform_wheel(self):
        out = os.path.join(self.tmp, "dist")
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-index", "--no-deps",
                            "-w", out, "."], cwd=SRC, env=self.env, capture_output=True,
                           text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        [whl] = os.listdir(out)
        self.assertRegex(whl, r"^ttsm-%s-py3-none-linux_\w+\.whl$" % ttsm.__version__)
        with zipfile.ZipFile(os.path.join(out, whl)) as z:
            names = z.namelist()
            self.assertIn("ttsm/libttsm.so", names)
            wheel = z.read("ttsm-%s.dist-info/WHEEL" % ttsm.__version__).decode()
            self.assertIn("Root-Is-Purelib: false", wheel)
            mode = z.getinfo("ttsm/libttsm.so").external_attr >> 16
            self.assertTrue(mode & 0o111)

    def test_sdist_builds_the_wheel(self):
        out = os.path.join(self.tmp, "sdist")
        os.makedirs(out)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import _ttsm_build; "
                "print(_ttsm_build.build_sdist(sys.argv[2]))")
        r = subprocess.run([sys.executable, "-c", code, os.path.join(SRC, "python"), out],
                           env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        sdist = os.path.join(out, r.stdout.strip())
        env = dict(self.env)
        env.pop("TTSM_WHEEL_BUILD_DIR")  # another source tree: a build of its own
        wheels = os.path.join(self.tmp, "from-sdist")
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-index", "--no-deps",
                            "--no-cache-dir", "-w", wheels, sdist], cwd=self.tmp, env=env,
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        [whl] = os.listdir(wheels)
        with zipfile.ZipFile(os.path.join(wheels, whl)) as z:
            names = z.namelist()
        self.assertIn("ttsm/libttsm.so", names)
        self.assertIn("ttsm/registry.py", names)


if __name__ == "__main__":
    unittest.main()
