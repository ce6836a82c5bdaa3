"""The third-party files in tests/data/third_party/ are the bytes their
PROVENANCE.md says they are: every file in the folder is listed there, its
SHA-256 is the one in the list, its size and git blob id are the ones in its
own section (so it is still the blob committed upstream), and nothing is
listed that is not there. Standard library only; reads nothing outside the
repository."""
import hashlib
import os
import re
import unittest

SRC = os.path.abspath(os.environ.get("TTSM_SRC",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
DATA = os.path.join(SRC, "tests", "data", "third_party")
PROVENANCE = os.path.join(DATA, "PROVENANCE.md")


def files_on_disk():
    out = set()
    for d, _, names in os.walk(DATA):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), DATA)
            if rel != "PROVENANCE.md":
                out.add(rel)
    return out


def checksum_list(text):
    """The `sha256  path` lines of the fenced block under "SHA-256 of each file"."""
    m = re.search(r"^## SHA-256 of each file\n(.*?)^```\n(.*?)^```", text, re.M | re.S)
    if not m:
        raise AssertionError("PROVENANCE.md has no fenced checksum list under "
                             "'## SHA-256 of each file'")
    sums = {}
    for line in m.group(2).splitlines():
        lm = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not lm:
            raise AssertionError("bad checksum line in PROVENANCE.md: %r" % line)
        if lm.group(2) in sums:
            raise AssertionError("listed twice in PROVENANCE.md: " + lm.group(2))
        sums[lm.group(2)] = lm.group(1)
    return sums


def sections(text):
    """{path: section text} for each '### `path`' section."""
    parts = re.split(r"^### `([^`]+)`.*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class ThirdPartyData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(PROVENANCE, encoding="utf-8") as f:
            cls.text = f.read()
        cls.sums = checksum_list(cls.text)
        cls.sections = sections(cls.text)

    def test_every_file_is_listed_and_every_listed_file_is_there(self):
        disk = files_on_disk()
        self.assertGreaterEqual(len(disk), 17)
        self.assertEqual(sorted(disk - set(self.sums)), [], "files missing from PROVENANCE.md")
        self.assertEqual(sorted(set(self.sums) - disk), [], "listed but not in the folder")

    def test_bytes_match_the_listed_sha256(self):
        for rel, want in sorted(self.sums.items()):
            with self.subTest(file=rel):
                with open(os.path.join(DATA, rel), "rb") as f:
                    self.assertEqual(hashlib.sha256(f.read()).hexdigest(), want)

    def test_each_file_has_its_origin_licence_and_the_same_facts(self):
        self.assertEqual(sorted(self.sections), sorted(self.sums),
                         "one '### `path`' section per listed file")
        for rel, body in sorted(self.sections.items()):
            with self.subTest(file=rel):
                with open(os.path.join(DATA, rel), "rb") as f:
                    data = f.read()
                self.assertRegex(body, r"- Source: https://github\.com/\S+ — `[^`]+` at commit "
                                       r"`[0-9a-f]{40}`")
                self.assertRegex(body, r"- License: \S")
                m = re.search(r"Git blob: `([0-9a-f]{40})`; sha256: `([0-9a-f]{64})`; "
                              r"size: (\d+) bytes", body)
                self.assertIsNotNone(m, "no 'Git blob ...; sha256 ...; size ...' line")
                self.assertEqual(m.group(2), self.sums[rel], "section and list disagree")
                self.assertEqual(int(m.group(3)), len(data))
                self.assertEqual(git_blob_id(data), m.group(1),
                                 "not the upstream git blob any more")

    def test_the_totals_in_the_introduction(self):
        disk = files_on_disk()
        total = sum(os.path.getsize(os.path.join(DATA, r)) for r in disk)
        want = "%d files, %d bytes in total" % (len(disk), total)
        self.assertTrue(want in self.text, "PROVENANCE.md should say: " + want)


if __name__ == "__main__":
    unittest.main()
