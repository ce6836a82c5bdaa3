"""_ttsm_build.py - the PEP 517/660 build backend of the ttsm binding, with
nothing but the standard library, used by `pip install .` at the repository
root and `pip install ./python` alike. It builds libttsm with CMake (the
repository's own build, Release, library target only) in a temporary
folder and writes a platform wheel holding the package and that library,
so `import ttsm` needs no TTSM_LIBRARY. Why not setuptools: pip builds in an
isolated environment and would download setuptools into it, so the install
would need the network; the wheel is a zip of a few files.

Options: `--config-settings build-dir=DIR` (or $TTSM_WHEEL_BUILD_DIR) keeps
the CMake build there, so a second wheel builds incrementally; `cmake=PATH`
(or $CMAKE) picks cmake; CMAKE_BUILD_PARALLEL_LEVEL the jobs (default: the
machine's cores)."""
import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

NAME = "ttsm"
SUMMARY = ("Model-loading core of a multi-engine TTS system: one cache, device budgets, "
           "zero-copy tensors for PyTorch (DLPack), Python engines held by the cache")
HERE = os.path.dirname(os.path.abspath(__file__))  # python/
REPO = os.path.dirname(HERE)
# What a build of libttsm needs from the repository (the sdist carries it).
SOURCES = ["CMakeLists.txt", "cmake", "include", "src", "engines", "tools", "ttsm.pc.in",
           "docs/ttsm.1", "README.md", "pyproject.toml", "python/pyproject.toml",
           "python/README.md", "python/_ttsm_build.py", "python/ttsm"]


def _version():
    with open(os.path.join(HERE, NAME, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if not m:
        raise RuntimeError("ttsm/__init__.py has no __version__")
    return m.group(1)


def _tag():
    # Pure Python calling a C library through ctypes: any Python 3, no ABI,
    # one platform (the library's).
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-" + plat


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n"
            "Requires-Python: >=3.8\nProvides-Extra: torch\n"
            "Requires-Dist: torch>=1.10; extra == \"torch\"\n"
            "Requires-Dist: numpy; extra == \"torch\"\n"
            "Description-Content-Type: text/markdown\n\n%s" % (NAME, _version(), SUMMARY, readme))


def _sources():
    pkg = os.path.join(HERE, NAME)
    return sorted(os.path.join(NAME, f) for f in os.listdir(pkg) if f.endswith(".py"))


def _dist_info():
    return "%s-%s.dist-info" % (NAME, _version())


class _Wheel:
    def __init__(self, directory, tag, purelib):
        self.tag, self.purelib = tag, purelib
        self.name = "%s-%s-%s.whl" % (NAME, _version(), tag)
        self.zip = zipfile.ZipFile(os.path.join(directory, self.name), "w", zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname, data, mode=0o644):
        if isinstance(data, str):
            data = data.encode("utf-8")
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))

    def finish(self):
        di = _dist_info()
        self.add(di + "/METADATA", _metadata())
        self.add(di + "/WHEEL", "Wheel-Version: 1.0\nGenerator: _ttsm_build\n"
                               "Root-Is-Purelib: %s\nTag: %s\n" %
                 ("true" if self.purelib else "false", self.tag))
        self.records.append(di + "/RECORD,,")
        self.zip.writestr(zipfile.ZipInfo(di + "/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                          "\n".join(self.records) + "\n")
        self.zip.close()
        return self.name


def _setting(config_settings, key, env):
    v = (config_settings or {}).get(key)
    return v if v else os.environ.get(env) or None


def _build_library(config_settings):
    """Builds libttsm with the repository's CMake; @return its path and the
    temporary folder to remove (None when the caller chose the folder)."""
    if not os.path.exists(os.path.join(REPO, "CMakeLists.txt")):
        raise RuntimeError(
            "ttsm: no CMakeLists.txt in %s: the wheel builds libttsm from the ttsm repository "
            "(pip install . at its root, or pip install ./python)" % REPO)
    cmake = _setting(config_settings, "cmake", "CMAKE") or shutil.which("cmake")
    if not cmake:
        raise RuntimeError("ttsm: cmake not found (scripts/install-deps installs it)")
    build = _setting(config_settings, "build-dir", "TTSM_WHEEL_BUILD_DIR")
    tmp = None
    if not build:
        tmp = build = tempfile.mkdtemp(prefix="ttsm-wheel-")
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
    try:
        for cmd in ([cmake, "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                     "-DTTSM_BUILD_TESTS=OFF", "-DTTSM_WERROR=OFF"],
                    [cmake, "--build", build, "--target", "ttsm", "-j", jobs]):
            print("ttsm wheel: " + " ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=sys.stderr)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, True)
        raise
    lib = os.path.realpath(os.path.join(build, "libttsm.so"))
    if not os.path.exists(lib):
        raise RuntimeError("ttsm: the CMake build made no libttsm.so in %s" % build)
    return lib, tmp


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    lib, tmp = _build_library(config_settings)
    try:
        w = _Wheel(wheel_directory, _tag(), purelib=False)
        for rel in _sources():
            with open(os.path.join(HERE, rel), "rb") as f:
                w.add(rel.replace(os.sep, "/"), f.read())
        with open(lib, "rb") as f:
            w.add(NAME + "/libttsm.so", f.read(), 0o755)
        return w.finish()
    finally:
        if tmp:
            shutil.rmtree(tmp, True)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install: a .pth file that puts python/ on sys.path; the
    library comes from $TTSM_LIBRARY or the repository's build tree."""
    w = _Wheel(wheel_directory, "py3-none-any", purelib=True)
    w.add("__editable__.%s.pth" % NAME, HERE + "\n")
    return w.finish()


def build_sdist(sdist_directory, config_settings=None):
    """The repository's sources a wheel build needs, rooted like the
    repository (its pyproject.toml at the top)."""
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"

    def keep(info):
        return None if "__pycache__" in info.name else info
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for rel in SOURCES:
            t.add(os.path.join(REPO, rel), arcname=base + "/" + rel, filter=keep)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode("utf-8")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
