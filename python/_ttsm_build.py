"""_ttsm_build.py - the PEP 517/660 build backend of the ttsm binding, with
nothing but the standard library. Why not setuptools: pip builds in an
isolated environment and would download setuptools into it, so
`pip install ./python` would need the network; the package is a folder of
.py files, and writing its wheel takes the few lines below."""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

NAME = "ttsm"
SUMMARY = ("Model-loading core of a multi-engine TTS system: one cache, device budgets, "
           "zero-copy tensors for PyTorch (DLPack)")
HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "py3-none-any"


def _version():
    with open(os.path.join(HERE, NAME, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if not m:
        raise RuntimeError("ttsm/__init__.py has no __version__")
    return m.group(1)


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
    def __init__(self, directory, tag=TAG):
        self.name = "%s-%s-%s.whl" % (NAME, _version(), tag)
        self.zip = zipfile.ZipFile(os.path.join(directory, self.name), "w", zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.zip.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), data,
                          zipfile.ZIP_DEFLATED)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))

    def finish(self):
        di = _dist_info()
        self.add(di + "/METADATA", _metadata())
        self.add(di + "/WHEEL", "Wheel-Version: 1.0\nGenerator: _ttsm_build\n"
                               "Root-Is-Purelib: true\nTag: %s\n" % TAG)
        self.records.append(di + "/RECORD,,")
        self.zip.writestr(zipfile.ZipInfo(di + "/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                          "\n".join(self.records) + "\n")
        self.zip.close()
        return self.name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    w = _Wheel(wheel_directory)
    for rel in _sources():
        with open(os.path.join(HERE, rel), "rb") as f:
            w.add(rel.replace(os.sep, "/"), f.read())
    return w.finish()


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install: a .pth file that puts this folder on sys.path."""
    w = _Wheel(wheel_directory)
    w.add("__editable__.%s.pth" % NAME, HERE + "\n")
    return w.finish()


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for rel in ["pyproject.toml", "README.md", "_ttsm_build.py"] + _sources():
            t.add(os.path.join(HERE, rel), arcname=base + "/" + rel.replace(os.sep, "/"))
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode("utf-8")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
