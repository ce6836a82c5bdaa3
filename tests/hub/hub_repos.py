"""hub_repos.py - the repositories the test Hub server serves: reads the folder
layout (README.md), gives each file the ids the Hub gives it (git blob SHA-1,
or SHA-256 and a git-lfs pointer for LFS files) and each tree a commit; and
write_repo(), which tests use to lay repositories out."""
import fnmatch
import hashlib
import json
import os
import re

# Files that the Hub's default .gitattributes puts in LFS, whatever their size.
DEFAULT_LFS_PATTERNS = [
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.h5",
    "*.msgpack", "*.npy", "*.npz", "*.pkl", "*.pickle", "*.parquet", "*.arrow",
    "*.tar", "*.tar.*", "*.tgz", "*.zip", "*.zst", "*.xz", "*.7z", "*.model",
]
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data):
    """The git object id of a blob with these bytes (what the Hub's ETag is for
    a file kept in git)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def lfs_pointer(sha256, size):
    """The bytes of the git-lfs pointer file that stands in git for an LFS file."""
    return ("version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{sha256}\nsize {size}\n").encode("ascii")


class Blob:
    """One file of one tree: where it lies on disk and the ids the Hub gives it."""
    __slots__ = ("fs_path", "size", "lfs", "oid", "sha256", "pointer_size")

    def __init__(self, fs_path, size, lfs, oid, sha256, pointer_size):
        self.fs_path, self.size, self.lfs = fs_path, size, lfs
        self.oid, self.sha256, self.pointer_size = oid, sha256, pointer_size

    @property
    def etag(self):
        return self.sha256 if self.lfs else self.oid


def _hash_blob(fs_path, size, lfs):
    if lfs:
        h = hashlib.sha256()
        with open(fs_path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        sha = h.hexdigest()
        ptr = lfs_pointer(sha, size)
        return Blob(fs_path, size, True, git_blob_sha1(ptr), sha, len(ptr))
    h = hashlib.sha1(b"blob %d\0" % size)
    with open(fs_path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return Blob(fs_path, size, False, h.hexdigest(), None, None)


class Tree:
    """The files of one commit of a repository."""

    def __init__(self, label, commit, files):
        self.label, self.commit, self.files = label, commit, files
        dirs = set()
        for p in files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        self.dirs = dirs

    def dir_oid(self, d):
        h = hashlib.sha1(b"tree\0" + d.encode("utf-8"))
        for p in sorted(self.files):
            if p.startswith(d + "/"):
                h.update(p.encode("utf-8") + b"\0" + self.files[p].oid.encode("ascii"))
        return h.hexdigest()


class Repo:
    """A repository: its trees by commit, its refs, and its access rules."""

    def __init__(self, kind, repo_id, trees, refs, config):
        self.kind, self.repo_id = kind, repo_id
        self.trees = trees                  # commit -> Tree
        self.refs = refs                    # ref name -> commit
        self.gated = config.get("gated", False)
        self.private = bool(config.get("private", False))
        self.gated_tokens = config.get("gated_tokens")

    def lookup(self, revision):
        if revision in self.refs:
            return self.trees[self.refs[revision]]
        return self.trees.get(revision)


def _match_any(path, patterns):
    base = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(base, p)
               for p in patterns)


def _scan_tree(top, skip_top):
    """{repo path: fs path} of the regular files below top (symlinks to files are
    followed; names that are not UTF-8 are left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        if not rel_dir:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        dirnames.sort()
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                continue
            fs = os.path.join(dirpath, name)
            if os.path.isfile(fs):
                out[rel] = fs
    return out


def load_repo(root, kind, repo_id, options):
    """Reads <root>/<kind>/<org>/<name>: the "main" tree is the folder itself
    (without .hub/), every other tree is .hub/trees/<label>/, and
    .hub/repo.json (optional) names refs, fixed commits and access rules.
    Returns None where there is no such repository."""
    repo_dir = os.path.join(root, kind, *repo_id.split("/"))
    real_root = os.path.realpath(root)
    real = os.path.realpath(repo_dir)
    if not os.path.isdir(real) or not real.startswith(real_root + os.sep):
        return None
    cfg_path = os.path.join(repo_dir, ".hub", "repo.json")
    config = {}
    if os.path.isfile(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    patterns = list(options["lfs_patterns"]) + list(config.get("lfs", []))
    threshold = int(config.get("lfs_threshold", options["lfs_threshold"]))
    tree_dirs = {"main": (repo_dir, {".hub", ".git"})}
    trees_root = os.path.join(repo_dir, ".hub", "trees")
    if os.path.isdir(trees_root):
        for label in sorted(os.listdir(trees_root)):
            if os.path.isdir(os.path.join(trees_root, label)):
                tree_dirs[label] = (os.path.join(trees_root, label), set())
    fixed = config.get("commits", {})
    trees, by_label = {}, {}
    for label, (top, skip) in tree_dirs.items():
        files = {}
        for rel, fs in _scan_tree(top, skip).items():
            size = os.path.getsize(fs)
            lfs = size >= threshold or _match_any(rel, patterns)
            files[rel] = _hash_blob(fs, size, lfs)
        commit = fixed.get(label)
        if commit is None:
            h = hashlib.sha1(f"ttsm test hub\n{kind}/{repo_id}\n{label}\n".encode("utf-8"))
            for rel in sorted(files):
                h.update(rel.encode("utf-8") + b"\0" + files[rel].etag.encode("ascii") + b"\n")
            commit = h.hexdigest()
        if not COMMIT.match(commit):
            raise ValueError(f"{cfg_path}: commit of {label!r} is not 40 hex digits")
        tree = Tree(label, commit, files)
        trees[commit] = tree
        by_label[label] = tree
    refs = {"main": "main"}
    refs.update(config.get("refs", {}))
    ref_commits = {}
    for name, label in refs.items():
        if label is None:
            continue
        if label not in by_label:
            raise ValueError(f"{cfg_path}: ref {name!r} names no tree {label!r}")
        ref_commits[name] = by_label[label].commit
    return Repo(kind, repo_id, trees, ref_commits, config)


def write_repo(root, repo_id, files, kind="models", trees=None, refs=None,
               commits=None, **config):
    """Writes a repository for the server: files ({path: bytes or str}) make the
    main tree, trees ({label: {path: bytes}}) the others; refs ({name: label}),
    commits ({label: 40-hex}) and config keys (gated, private, gated_tokens,
    lfs, lfs_threshold) go to .hub/repo.json. Returns the repository folder."""
    repo_dir = os.path.join(root, kind, *repo_id.split("/"))

    def put(top, content):
        for rel, data in content.items():
            dest = os.path.join(top, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)

    os.makedirs(repo_dir, exist_ok=True)
    put(repo_dir, files)
    for label, content in (trees or {}).items():
        put(os.path.join(repo_dir, ".hub", "trees", label), content)
    cfg = dict(config)
    if refs:
        cfg["refs"] = refs
    if commits:
        cfg["commits"] = commits
    if cfg:
        os.makedirs(os.path.join(repo_dir, ".hub"), exist_ok=True)
        with open(os.path.join(repo_dir, ".hub", "repo.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=1)
    return repo_dir
