#!/usr/bin/env python3
"""hub_server.py - a stand-in Hugging Face Hub for ttsm's download tests.

Serves repositories from a folder tree over loopback HTTP with the Hub's resolve
headers, an LFS redirect to a second "CDN" port, Range, the revision and tree
APIs and the Hub's error codes; records every request; and injects faults that
tests switch on per path and count. Standard library only; README.md next to
this file describes the layout, the switches and the request log."""
import argparse
import base64
import copy
import fnmatch
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_repos import (DEFAULT_LFS_PATTERNS, git_blob_sha1, lfs_pointer,  # noqa: E402,F401
                       load_repo, write_repo)

__all__ = ["HubServer", "HubProcess", "Switch", "control_request", "fetch_log", "main",
           "DEFAULT_LFS_PATTERNS", "DEFAULT_OPTIONS", "DEFAULT_ESCAPES", "KIND_PARAMS",
           "git_blob_sha1", "lfs_pointer", "load_repo", "write_repo"]
HOST = "127.0.0.1"
KINDS = ("models", "datasets", "spaces")
CHUNK = 256 * 1024
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
DEFAULT_OPTIONS = {
    "lfs_threshold": 10 * 1024 * 1024,  # bytes; at or above this a file is LFS
    "lfs_patterns": DEFAULT_LFS_PATTERNS,
    "tokens": [],           # accepted bearer tokens; empty: any token is accepted
    "require_token": False,  # every Hub request needs an accepted token
    "tree_page_size": 1000,  # entries per tree page (the Hub's page size)
    "resolve_cache": False,  # small files on a branch: 307 to /api/resolve-cache/...
    "stall_cap": 30.0,       # no stall lasts longer than this many seconds
}
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
LOG_CAP = 100000


class BadRequest(Exception):
    """A request target that cannot name anything: answered with 400."""


# ---------------------------------------------------------------- fault switches

COMMON_KEYS = {"kind", "name", "port", "method", "path", "file", "repo", "range",
               "count", "skip"}
KIND_PARAMS = {
    "drop": {"after_bytes", "reset"},
    "stall": {"seconds", "after_bytes", "then"},
    "corrupt": {"offset"},
    "lie_size": {"delta", "target"},
    "status": {"status", "retry_after", "error_code", "error_message"},
    "ignore_range": set(),
    "redirect_loop": {"absolute"},
    "tree_escape": {"paths"},
    "gated": set(),
    "strip_headers": {"headers"},
    "weak_etag": set(),
}
DEFAULT_ESCAPES = ["../escape.bin", "sub/../../escape.bin"]


class Switch:
    """One fault switch: what it matches, how many more times it fires."""

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError(f"a switch is a JSON object, not {spec!r}")
        kind = spec.get("kind")
        if kind not in KIND_PARAMS:
            raise ValueError(f"unknown switch kind {kind!r}; kinds: {sorted(KIND_PARAMS)}")
        unknown = set(spec) - COMMON_KEYS - KIND_PARAMS[kind]
        if unknown:
            raise ValueError(f"switch {kind!r}: unknown keys {sorted(unknown)}")
        port = spec.get("port", "any")
        if port not in ("hub", "cdn", "any"):
            raise ValueError(f"switch {kind!r}: port is hub, cdn or any, not {port!r}")
        if kind == "status" and not isinstance(spec.get("status"), int):
            raise ValueError("switch 'status' needs an integer 'status'")
        if kind == "lie_size" and spec.get("target", "metadata") not in ("metadata", "body"):
            raise ValueError("switch 'lie_size': target is metadata or body")
        if kind == "stall" and spec.get("then", "continue") not in ("continue", "close"):
            raise ValueError("switch 'stall': then is continue or close")
        count = spec.get("count", 1)
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError(f"switch {kind!r}: count is a number >= 0 or null (always)")
        methods = spec.get("method", "any")
        self.methods = None if methods == "any" else (
            {methods.upper()} if isinstance(methods, str) else {m.upper() for m in methods})
        self.spec = dict(spec)
        self.kind = kind
        self.remaining = count
        self.skip_left = int(spec.get("skip", 0))
        self.seen = 0
        self.fired = 0

    def get(self, key, default=None):
        v = self.spec.get(key)
        return default if v is None else v

    def matches(self, ctx):
        s = self.spec
        if s.get("port", "any") not in ("any", ctx.role):
            return False
        if self.methods is not None and ctx.method not in self.methods:
            return False
        if "path" in s and not fnmatch.fnmatchcase(ctx.url_path, s["path"]):
            return False
        if "file" in s and (ctx.file is None or not fnmatch.fnmatchcase(ctx.file, s["file"])):
            return False
        if "repo" in s and (ctx.repo_key is None or not fnmatch.fnmatchcase(ctx.repo_key, s["repo"])):
            return False
        if "range" in s and s["range"] is not None and bool(s["range"]) != ctx.has_range:
            return False
        return True

    def state(self):
        out = dict(self.spec)
        out.update(seen=self.seen, fired=self.fired, remaining=self.remaining)
        return out


# ---------------------------------------------------------------- the server

class _Ctx:
    """What one request is about, for routing, switches and the log."""

    def __init__(self, role, method, url_path, headers):
        self.role, self.method, self.url_path = role, method, url_path
        self.headers = headers
        self.has_range = "range" in headers
        self.repo_key = None
        self.file = None
        self.faults = []
        self.entry = None
        self._picked = {}


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, hub, role, port):
        self.hub, self.role = hub, role
        super().__init__((HOST, port), _Handler)

    def process_request(self, request, client_address):
        t = threading.Thread(target=self._run, args=(request, client_address),
                             name=f"hub-{self.role}-conn", daemon=True)
        with self.hub._lock:
            self.hub._conns[request] = t
        t.start()

    def _run(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.hub._lock:
                self.hub._conns.pop(request, None)


class HubServer:
    """The Hub and CDN listeners, their shared state and the control API. Use as
    a context manager (`with HubServer(root) as hub:`), or start()/stop()."""

    def __init__(self, root, switches=None, verbose=False, log_file=None, **options):
        unknown = set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        self.root = os.path.abspath(root)
        self.verbose = verbose
        self._lock = threading.RLock()      # switches, log, options, repos, conns
        self._idle = threading.Condition(self._lock)  # no request in flight
        self._in_flight = 0
        self._load_lock = threading.Lock()  # one repository hashed at a time
        self._options = copy.deepcopy(DEFAULT_OPTIONS)
        self._options.update(copy.deepcopy(options))
        self._switches = [Switch(s) for s in (switches or [])]
        self._log = []
        self._seq = 0
        self._errors = []
        self._repos = {}
        self._blobs = {}          # sha256 -> Blob, for the CDN
        self._conns = {}
        self._secret = os.urandom(16)
        self._stopping = threading.Event()
        self._log_file = open(log_file, "a", encoding="utf-8") if log_file else None
        self._listeners = []
        self._threads = []
        self.hub_port = self.cdn_port = None

    # -- life

    def start(self, hub_port=0, cdn_port=0):
        try:
            self._listeners = [_Listener(self, "hub", hub_port), _Listener(self, "cdn", cdn_port)]
        except OSError:
            for lst in self._listeners:
                lst.server_close()
            raise
        self.hub_port = self._listeners[0].server_address[1]
        self.cdn_port = self._listeners[1].server_address[1]
        for lst in self._listeners:
            t = threading.Thread(target=lst.serve_forever, kwargs={"poll_interval": 0.05},
                                 name=f"hub-{lst.role}-accept", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        """Stops both listeners, wakes stalled requests, closes open connections
        and waits (bounded) for their threads."""
        self._stopping.set()
        closers = [threading.Thread(target=lst.shutdown, name="hub-stop")
                   for lst in self._listeners]
        for t in closers:
            t.start()
        for t in closers:
            t.join(10)
        for lst in self._listeners:
            lst.server_close()
        for t in self._threads:
            t.join(5)
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, t in conns:
            t.join(5)
        self._listeners, self._threads = [], []
        with self._lock:
            if self._log_file:
                self._log_file.close()
                self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"http://{HOST}:{self.hub_port}"

    @property
    def cdn_url(self):
        return f"http://{HOST}:{self.cdn_port}"

    def ready_info(self):
        return {"hub": self.url, "cdn": self.cdn_url, "pid": os.getpid(),
                "control": self.url + "/_control"}

    # -- switches, options, log (also reachable over /_control)

    def set_switches(self, specs):
        new = [Switch(s) for s in specs]
        with self._lock:
            self._switches = new

    def add_switches(self, specs):
        new = [Switch(s) for s in specs]
        with self._lock:
            self._switches.extend(new)

    def add_switch(self, kind, **spec):
        self.add_switches([dict(spec, kind=kind)])

    def clear_switches(self):
        self.set_switches([])

    def switches(self):
        with self._lock:
            return [s.state() for s in self._switches]

    def set_options(self, **options):
        unknown = set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        with self._lock:
            self._options.update(copy.deepcopy(options))
            if {"lfs_threshold", "lfs_patterns"} & set(options):
                self._repos.clear()

    def options(self):
        with self._lock:
            return copy.deepcopy(self._options)

    def rescan(self):
        """Forget what was read from disk (call after changing repository files)."""
        with self._lock:
            self._repos.clear()

    def requests(self, role=None, since=0, wait=5.0):
        """Copies of the logged requests (all, or those of one port), oldest
        first. A client has the last byte of a response before the server has
        finished its entry, so this first waits, up to `wait` seconds, until no
        request is in flight (a stalled one keeps it waiting that long)."""
        with self._lock:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=max(0.0, wait))
            return [copy.deepcopy(e) for e in self._log
                    if e["seq"] > since and (role is None or e["port"] == role)]

    def clear_log(self):
        with self._lock:
            self._log = []

    def errors(self):
        """Tracebacks of requests the server itself failed on (none expected)."""
        with self._lock:
            return list(self._errors)

    def state(self):
        with self._lock:
            return {"switches": [s.state() for s in self._switches],
                    "options": copy.deepcopy(self._options),
                    "requests": self._seq, "errors": len(self._errors),
                    "hub": self.url, "cdn": self.cdn_url}

    def control(self, body):
        """Applies a control document: keys clear_switches, switches (replace),
        add_switches, options, clear_log, rescan, stop, in that order."""
        if not isinstance(body, dict):
            raise ValueError("the control body is a JSON object")
        known = ["clear_switches", "switches", "add_switches", "options", "clear_log",
                 "rescan", "stop"]
        unknown = set(body) - set(known)
        if unknown:
            raise ValueError(f"unknown control keys {sorted(unknown)}")
        if body.get("clear_switches"):
            self.clear_switches()
        if "switches" in body:
            self.set_switches(body["switches"])
        if "add_switches" in body:
            self.add_switches(body["add_switches"])
        if "options" in body:
            self.set_options(**body["options"])
        if body.get("clear_log"):
            self.clear_log()
        if body.get("rescan"):
            self.rescan()
        state = self.state()
        if body.get("stop"):
            self._stopping.set()
        return state

    def repo_info(self, repo_id, kind="models", revision="main"):
        """The commit and file ids the server gives a revision (for assertions)."""
        repo = self._repo(kind, repo_id)
        tree = repo.lookup(revision) if repo else None
        if tree is None:
            raise KeyError(f"{kind}/{repo_id}@{revision}")
        return {"commit": tree.commit, "files": {
            p: {"size": b.size, "lfs": b.lfs, "etag": b.etag, "oid": b.oid,
                "sha256": b.sha256} for p, b in tree.files.items()}}

    # -- internals used by the handler

    def _repo(self, kind, repo_id):
        key = f"{kind}/{repo_id}"
        with self._lock:
            if key in self._repos:
                return self._repos[key]
            options = copy.deepcopy(self._options)
        with self._load_lock:
            with self._lock:
                if key in self._repos:
                    return self._repos[key]
            repo = load_repo(self.root, kind, repo_id, options)
            with self._lock:
                self._repos[key] = repo
                if repo:
                    for tree in repo.trees.values():
                        for p, b in tree.files.items():
                            if b.lfs:
                                self._blobs[b.sha256] = (b, key, p)
            return repo

    def _cdn_blob(self, sha):
        with self._lock:
            return self._blobs.get(sha)

    def _sign(self, sha, expires):
        return hmac.new(self._secret, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _pick(self, ctx, kind, applies=None):
        """The switch of this kind that takes this request, consuming one count;
        None when none does. Each kind is asked at most once per request."""
        if kind in ctx._picked:
            return ctx._picked[kind]
        chosen = None
        with self._lock:
            for sw in self._switches:
                if sw.kind != kind or sw.remaining == 0 or not sw.matches(ctx):
                    continue
                if applies is not None and not applies(sw):
                    continue
                sw.seen += 1
                if sw.skip_left > 0:
                    sw.skip_left -= 1
                    continue
                sw.fired += 1
                if sw.remaining is not None:
                    sw.remaining -= 1
                chosen = sw
                break
            if chosen is not None:
                label = kind if "name" not in chosen.spec else f"{kind}:{chosen.spec['name']}"
                ctx.faults.append(label)
                if ctx.entry is not None:
                    ctx.entry["faults"] = list(ctx.faults)
        ctx._picked[kind] = chosen
        return chosen

    def _log_start(self, ctx, raw_target, client_port):
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "time": time.time(), "port": ctx.role,
                     "server_port": self.hub_port if ctx.role == "hub" else self.cdn_port,
                     "client_port": client_port, "method": ctx.method, "target": raw_target,
                     "path": ctx.url_path, "query": {}, "headers": dict(ctx.headers),
                     "repo": None, "file": None, "revision": None, "status": None,
                     "bytes": 0, "complete": False, "done": False, "faults": []}
            self._in_flight += 1
            self._log.append(entry)
            if len(self._log) > LOG_CAP:
                del self._log[:len(self._log) - LOG_CAP]
            ctx.entry = entry

    def _log_update(self, ctx, **fields):
        if ctx.entry is None:
            return
        with self._lock:
            ctx.entry.update(fields)

    def _log_end(self, ctx):
        if ctx.entry is None:
            return
        with self._lock:
            ctx.entry["done"] = True
            self._in_flight -= 1
            self._idle.notify_all()
            if self._log_file:
                self._log_file.write(json.dumps(ctx.entry, ensure_ascii=False) + "\n")
                self._log_file.flush()

    def _error(self, text):
        with self._lock:
            self._errors.append(text)


def _json_bytes(obj):
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _qpath(path):
    return "/".join(urllib.parse.quote(s, safe="") for s in path.split("/"))


def _parse_range(value, size):
    """(start, end) inclusive, "unsatisfiable", or None (ignore the header)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1) if size else "unsatisfiable"
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, end)


class _Closed(Exception):
    """The response ended the connection on purpose (a fault)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ttsm-test-hub/1"
    timeout = 20  # an idle keep-alive connection is closed after this

    def log_message(self, fmt, *args):
        if self.server.hub.verbose:
            sys.stderr.write("hub %s: %s\n" % (self.server.role, fmt % args))

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # -- dispatch

    def _dispatch(self):
        hub = self.server.hub
        role = self.server.role
        split = urllib.parse.urlsplit(self.path)
        raw_path = split.path or "/"
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        try:
            url_path = urllib.parse.unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            url_path = raw_path
        if role == "hub" and raw_path.rstrip("/").split("/")[:2] == ["", "_control"]:
            return self._control(raw_path, split.query)
        ctx = _Ctx(role, self.command, url_path, headers)
        hub._log_start(ctx, self.path, self.client_address[1])
        hub._log_update(ctx, query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)))
        self._body_sent = 0
        self._headers_sent = False
        try:
            try:
                self._route(ctx, raw_path, split.query)
            except BadRequest as e:
                self._answer_error(ctx, 400, str(e))
            hub._log_update(ctx, complete=True)
        except _Closed:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ConnectionAbortedError):
            self.close_connection = True
        except Exception:  # the server's own bug: recorded, the test sees it
            import traceback
            hub._error(traceback.format_exc())
            self.close_connection = True
            if not self._headers_sent:
                try:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass
        finally:
            hub._log_update(ctx, bytes=self._body_sent)
            hub._log_end(ctx)

    def _route(self, ctx, raw_path, query):
        hub = self.server.hub
        # http.server reads the request line as Latin-1: anything outside
        # printable ASCII arrived unquoted, which the Hub's clients never send.
        if any(not 33 <= ord(c) <= 126 for c in self.path):
            raise BadRequest("the request target is not URL-quoted")
        if self.command not in ("GET", "HEAD"):
            return self._answer(ctx, 405, [("Allow", "GET, HEAD")], b"Method not allowed")
        call = self._parse_route(ctx, raw_path, query)
        # Switches may be scoped to the file or repository, so the route is
        # parsed (not yet answered) before the first switch is asked.
        sw = hub._pick(ctx, "status")
        if sw is not None:
            return self._fault_status(ctx, sw)
        if call is None:
            return self._answer(ctx, 404, [("Content-Type", "text/plain")], b"Not Found")
        return call()

    def _parse_route(self, ctx, raw_path, query):
        """A callable that answers the request, or None for no such route; sets
        ctx.file and ctx.repo_key where the target names them."""
        hub = self.server.hub
        segs = raw_path.split("/")[1:]
        if self.server.role == "cdn":
            q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
            ctx.file, ctx.repo_key = q.get("file"), q.get("repo")
            hub._log_update(ctx, file=ctx.file, repo=ctx.repo_key)
            return lambda: self._cdn(ctx, segs, q, query)

        def dec(seg):
            try:
                return urllib.parse.unquote(seg, errors="strict")
            except UnicodeDecodeError:
                raise BadRequest("the path is not UTF-8")

        def repo(kind, org, name):
            org, name = dec(org), dec(name)
            for part in (org, name):
                if not REPO_NAME.match(part) or ".." in part:
                    raise BadRequest(f"invalid repository name {org}/{name}")
            if kind not in KINDS:
                raise BadRequest(f"unknown repository type {kind}")
            ctx.repo_key = f"{kind}/{org}/{name}"
            hub._log_update(ctx, repo=ctx.repo_key)
            return kind, org, name

        def file_path(segs_):
            path = [dec(x) for x in segs_]
            for x in path:
                if x in ("", ".", "..") or "/" in x or "\0" in x:
                    raise BadRequest("invalid path in repository")
            ctx.file = "/".join(path)
            hub._log_update(ctx, file=ctx.file)
            return ctx.file

        def resolve(kind, org, name, rev, rest, via_cache):
            kind, org, name = repo(kind, org, name)
            rev = dec(rev)
            if not rev:
                raise BadRequest("empty revision")
            path = file_path(rest)
            hub._log_update(ctx, revision=rev)
            return lambda: self._resolve(ctx, kind, org, name, rev, path, via_cache, query)

        if len(segs) >= 2 and segs[0] == "api":
            if segs[1] == "resolve-cache" and len(segs) >= 7:
                return resolve(segs[2], segs[3], segs[4], segs[5], segs[6:], True)
            if segs[1] in KINDS and len(segs) >= 4:
                kind, org, name = repo(segs[1], segs[2], segs[3])
                rest = segs[4:]
                if rest in ([], [""]):
                    return lambda: self._info(ctx, kind, org, name, "main", query)
                if rest[0] == "revision" and len(rest) == 2:
                    rev = dec(rest[1])
                    return lambda: self._info(ctx, kind, org, name, rev, query)
                if rest[0] == "tree" and len(rest) >= 2:
                    rev, sub = dec(rest[1]), rest[2:]
                    while sub and sub[-1] == "":
                        sub = sub[:-1]
                    prefix = file_path(sub) if sub else ""
                    ctx.file = None
                    return lambda: self._tree(ctx, kind, org, name, rev, prefix, query)
        elif len(segs) >= 5 and segs[0] in ("datasets", "spaces") and segs[3] == "resolve":
            return resolve(segs[0], segs[1], segs[2], segs[4], segs[5:], False)
        elif len(segs) >= 4 and segs[2] == "resolve":
            return resolve("models", segs[0], segs[1], segs[3], segs[4:], False)
        return None

    # -- answers

    def _answer(self, ctx, status, headers, body=b"", file=None, length=None, content_length=None):
        """Sends a response, applying the response-level switches. body is bytes;
        or file=(Blob, start) with length bytes of it."""
        hub = self.server.hub
        headers = list(headers)
        is_get = self.command != "HEAD"  # everything but HEAD carries its body
        n = len(body) if file is None else length
        declared = n
        is_file = file is not None
        if any(k.lower() == "etag" or k.lower() == "x-linked-etag" for k, _ in headers):
            if hub._pick(ctx, "weak_etag"):
                headers = [(k, "W/" + v) if k.lower() in ("etag", "x-linked-etag") else (k, v)
                           for k, v in headers]
        has_linked = any(k.lower() == "x-linked-size" for k, _ in headers)
        lie_body = None

        def lie_applies(sw):
            if sw.get("target", "metadata") == "metadata":
                return has_linked or (is_file and not is_get)
            return is_file and is_get
        lie = hub._pick(ctx, "lie_size", lie_applies) if (has_linked or is_file) else None
        if lie is not None:
            delta = int(lie.get("delta", 1))
            if lie.get("target", "metadata") == "metadata" and has_linked:
                headers = [(k, str(max(0, int(v) + delta))) if k.lower() == "x-linked-size"
                           else (k, v) for k, v in headers]
            else:
                declared = max(0, n + delta)
                lie_body = delta
        headers.append(("Content-Length", str(declared if content_length is None else content_length)))
        sw = hub._pick(ctx, "strip_headers")
        if sw is not None:
            drop = {h.lower() for h in sw.get("headers", ["X-Repo-Commit"])}
            headers = [(k, v) for k, v in headers if k.lower() not in drop]
        # Without a Content-Length only closing the connection ends the body.
        framed = any(k.lower() == "content-length" for k, _ in headers)
        has_body = is_get and n > 0
        stall = hub._pick(ctx, "stall", lambda s: s.spec.get("after_bytes") is None or has_body)
        if stall is not None and stall.spec.get("after_bytes") is None:
            self._stall(stall)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self._headers_sent = True
        hub._log_update(ctx, status=status)
        if not is_get:
            return
        send = n if lie_body is None or lie_body > 0 else declared
        drop = hub._pick(ctx, "drop") if send > 0 else None
        corrupt = hub._pick(ctx, "corrupt") if (is_file and send > 0) else None
        cut = None
        if drop is not None:
            cut = min(send, int(drop.get("after_bytes", send // 2)))
        stall_at = None
        if stall is not None and stall.spec.get("after_bytes") is not None:
            stall_at = min(send, int(stall.spec["after_bytes"]))
        bad = None
        if corrupt is not None:
            blob, start = file
            bad = int(corrupt.get("offset", blob.size // 2)) - start
        if file is None:
            self._write_bytes(body[:send], cut, stall_at, stall)
        else:
            self._write_file(file[0], file[1], send, cut, stall_at, stall, bad)
        if cut is not None:
            if drop.get("reset", False):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            raise _Closed()
        if (lie_body is not None and lie_body > 0) or not framed:
            raise _Closed()  # fewer bytes than announced: the connection cannot go on

    def _stall(self, sw):
        hub = self.server.hub
        seconds = min(float(sw.get("seconds", 5)), float(hub.options()["stall_cap"]))
        hub._stopping.wait(max(0.0, seconds))
        if sw.get("then", "continue") == "close" or hub._stopping.is_set():
            self.wfile.flush()
            raise _Closed()

    def _write_bytes(self, data, cut, stall_at, stall):
        limit = len(data) if cut is None else cut
        if stall_at == 0:
            stall_at = None
            self._stall(stall)
        pos = 0
        while pos < limit:
            end = limit
            if stall_at is not None and pos < stall_at:
                end = min(end, stall_at)
            self.wfile.write(data[pos:end])
            self._body_sent += end - pos
            pos = end
            if stall_at is not None and pos == stall_at:
                self.wfile.flush()
                stall_at = None
                self._stall(stall)

    def _write_file(self, blob, start, length, cut, stall_at, stall, bad):
        limit = length if cut is None else cut
        with open(blob.fs_path, "rb") as f:
            if stall_at == 0:
                stall_at = None
                self._stall(stall)
            f.seek(start)
            pos = 0
            while pos < limit:
                end = min(limit, pos + CHUNK)
                if stall_at is not None and pos < stall_at:
                    end = min(end, stall_at)
                chunk = f.read(end - pos)
                if len(chunk) != end - pos:
                    raise RuntimeError(f"{blob.fs_path} changed on disk; call rescan()")
                if bad is not None and pos <= bad < end:
                    chunk = bytearray(chunk)
                    chunk[bad - pos] ^= 0xFF
                    chunk = bytes(chunk)
                self.wfile.write(chunk)
                self._body_sent += len(chunk)
                pos = end
                if stall_at is not None and pos == stall_at:
                    self.wfile.flush()
                    stall_at = None
                    self._stall(stall)

    def _answer_json(self, ctx, status, obj, extra=()):
        return self._answer(ctx, status, [("Content-Type", "application/json; charset=utf-8"),
                                          *extra], _json_bytes(obj))

    def _answer_error(self, ctx, status, message, code=None, commit=None, extra=()):
        headers = [("Content-Type", "application/json; charset=utf-8"), *extra]
        if code:
            headers.append(("X-Error-Code", code))
        headers.append(("X-Error-Message", message.encode("ascii", "replace").decode()))
        if commit:
            headers.append(("X-Repo-Commit", commit))
        return self._answer(ctx, status, headers, _json_bytes({"error": message}))

    def _fault_status(self, ctx, sw):
        extra = []
        if sw.get("retry_after") is not None:
            extra.append(("Retry-After", str(sw.get("retry_after"))))
        status = int(sw.get("status"))
        msg = sw.get("error_message", {429: "Too Many Requests", 503: "Service Unavailable"}
                     .get(status, f"HTTP {status}"))
        return self._answer_error(ctx, status, msg, sw.get("error_code"), extra=extra)

    # -- repository lookups shared by the routes

    def _token(self, ctx):
        auth = ctx.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None

    def _open_repo(self, ctx, kind, org, name):
        """(repo, token) or None after answering the error. Applies the token
        rules: a token the server does not accept is 401 everywhere; an unknown
        or private repository is 401 without an accepted token, else 404."""
        hub = self.server.hub
        opts = hub.options()
        token = self._token(ctx)
        accepted = token is not None and (not opts["tokens"] or token in opts["tokens"])
        if token is not None and not accepted:
            self._answer_error(ctx, 401, "Invalid credentials in Authorization header")
            return None
        if opts["require_token"] and not accepted:
            self._answer_error(ctx, 401, "Invalid credentials in Authorization header")
            return None
        repo = hub._repo(kind, f"{org}/{name}")
        if repo is None or (repo.private and not accepted):
            self._answer_error(ctx, 404 if accepted else 401, "Repository not found",
                               "RepoNotFound")
            return None
        return repo, token

    def _check_gate(self, ctx, repo, token):
        """True when the request may read files of a gated repository."""
        hub = self.server.hub
        gated = bool(repo.gated) or hub._pick(ctx, "gated") is not None
        if not gated:
            return True
        opts = hub.options()
        accepted = token is not None and (not opts["tokens"] or token in opts["tokens"])
        msg = (f"Access to model {repo.repo_id} is restricted. You must have access to it "
               "and be authenticated to access it. Please log in.")
        if not accepted:
            self._answer_error(ctx, 401, msg, "GatedRepo")
            return False
        if repo.gated_tokens is not None and token not in repo.gated_tokens:
            self._answer_error(ctx, 403, msg.replace("Please log in.",
                               "Please accept the conditions on the repository page."),
                               "GatedRepo")
            return False
        return True

    def _loop_redirect(self, ctx, query, absolute_default):
        hub = self.server.hub
        sw = hub._pick(ctx, "redirect_loop")
        if sw is None:
            return False
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        hops = q.get("loop", "0")
        q["loop"] = str(int(hops) + 1 if hops.isdigit() else 1)
        target = urllib.parse.urlsplit(self.path).path + "?" + urllib.parse.urlencode(q)
        if sw.get("absolute", absolute_default):
            base = hub.url if self.server.role == "hub" else hub.cdn_url
            target = base + target
        self._answer(ctx, 302, [("Location", target), ("Content-Type", "text/plain")],
                     b"Found. Redirecting to " + target.encode("utf-8"))
        return True

    # -- routes

    def _resolve(self, ctx, kind, org, name, rev, path, via_cache, query):
        hub = self.server.hub
        if self._loop_redirect(ctx, query, False):
            return
        opened = self._open_repo(ctx, kind, org, name)
        if opened is None:
            return
        repo, token = opened
        if not self._check_gate(ctx, repo, token):
            return
        tree = repo.lookup(rev)
        if tree is None:
            return self._answer_error(ctx, 404, f"Invalid rev id: {rev}", "RevisionNotFound")
        blob = tree.files.get(path)
        if blob is None:
            return self._answer_error(ctx, 404, "Entry not found", "EntryNotFound",
                                      commit=tree.commit)
        commit = [("X-Repo-Commit", tree.commit)]
        if blob.lfs:
            expires = int(time.time()) + 3600
            q = urllib.parse.urlencode({"repo": ctx.repo_key, "file": path,
                                        "expires": expires,
                                        "signature": hub._sign(blob.sha256, expires)})
            loc = f"{hub.cdn_url}/lfs/{blob.sha256}?{q}"
            return self._answer(ctx, 302, [
                ("Content-Type", "text/plain; charset=utf-8"), ("Location", loc),
                ("ETag", f'"{blob.oid}"'), ("X-Linked-Etag", f'"{blob.sha256}"'),
                ("X-Linked-Size", str(blob.size)), *commit, ("Accept-Ranges", "bytes")],
                b"Found. Redirecting to " + loc.encode("utf-8"))
        if hub.options()["resolve_cache"] and not via_cache and rev != tree.commit:
            loc = (f"/api/resolve-cache/{kind}/{org}/{name}/{tree.commit}/{_qpath(path)}?"
                   + urllib.parse.urlencode({"etag": f'"{blob.oid}"'}))
            return self._answer(ctx, 307, [("Location", loc), *commit,
                                           ("Content-Type", "text/plain; charset=utf-8")],
                                b"Temporary Redirect. Redirecting to " + loc.encode("utf-8"))
        return self._serve_blob(ctx, blob, [("ETag", f'"{blob.oid}"'), *commit])

    def _serve_blob(self, ctx, blob, headers):
        hub = self.server.hub
        size = blob.size
        headers = [("Content-Type", "application/octet-stream"), *headers,
                   ("Accept-Ranges", "bytes")]
        rng = None
        if ctx.has_range and hub._pick(ctx, "ignore_range") is None:
            rng = _parse_range(ctx.headers["range"], size)
        if rng == "unsatisfiable":
            return self._answer(ctx, 416, [("Content-Range", f"bytes */{size}")], b"")
        if rng is None:
            return self._answer(ctx, 200, headers, file=(blob, 0), length=size)
        start, end = rng
        return self._answer(ctx, 206, headers + [("Content-Range", f"bytes {start}-{end}/{size}")],
                            file=(blob, start), length=end - start + 1)

    def _cdn(self, ctx, segs, q, query):
        hub = self.server.hub
        if self._loop_redirect(ctx, query, True):
            return
        if len(segs) != 2 or segs[0] != "lfs" or not re.fullmatch(r"[0-9a-f]{64}", segs[1]):
            return self._answer(ctx, 404, [("Content-Type", "text/plain")], b"Not Found")
        sha = segs[1]
        expires = q.get("expires", "")
        good = hub._sign(sha, expires) if expires.isdigit() else None
        if (good is None or not hmac.compare_digest(good, q.get("signature", ""))
                or int(expires) < time.time()):
            return self._answer(ctx, 403, [("Content-Type", "text/plain")], b"Access Denied")
        found = hub._cdn_blob(sha)
        if found is None:
            return self._answer(ctx, 404, [("Content-Type", "text/plain")], b"Not Found")
        blob = found[0]
        fname = (ctx.file or sha).rsplit("/", 1)[-1]
        disp = (f"attachment; filename*=UTF-8''{urllib.parse.quote(fname, safe='')}; "
                f"filename=\"{fname.encode('ascii', 'replace').decode().replace(chr(34), '_')}\"")
        return self._serve_blob(ctx, blob, [("ETag", f'"{sha}"'), ("Content-Disposition", disp)])

    def _tree_entries(self, ctx, tree, prefix, recursive):
        out = []
        base = prefix + "/" if prefix else ""
        paths = sorted(set(tree.files) | tree.dirs)
        for p in paths:
            if not p.startswith(base) or p == prefix:
                continue
            if not recursive and "/" in p[len(base):]:
                continue
            if p in tree.dirs:
                out.append({"type": "directory", "oid": tree.dir_oid(p), "size": 0, "path": p})
                continue
            b = tree.files[p]
            e = {"type": "file", "oid": b.oid, "size": b.size, "path": p}
            if b.lfs:
                e["lfs"] = {"oid": b.sha256, "size": b.size, "pointerSize": b.pointer_size}
            out.append(e)
        return out

    def _escapes(self, ctx):
        sw = self.server.hub._pick(ctx, "tree_escape")
        if sw is None:
            return []
        return list(sw.get("paths", DEFAULT_ESCAPES))

    def _tree(self, ctx, kind, org, name, rev, prefix, query):
        hub = self.server.hub
        opened = self._open_repo(ctx, kind, org, name)
        if opened is None:
            return
        repo, _ = opened
        hub._log_update(ctx, revision=rev)
        tree = repo.lookup(rev)
        if tree is None:
            return self._answer_error(ctx, 404, f"Invalid rev id: {rev}", "RevisionNotFound")
        if prefix and prefix not in tree.dirs:
            return self._answer_error(ctx, 404, f"{prefix} does not exist on \"{rev}\"",
                                      "EntryNotFound")
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        recursive = q.get("recursive", "false").lower() in ("1", "true")
        entries = self._tree_entries(ctx, tree, prefix, recursive)
        for p in self._escapes(ctx):
            data = b"evil"
            entries.append({"type": "file", "oid": git_blob_sha1(data), "size": len(data),
                            "path": p})
        page = max(1, int(hub.options()["tree_page_size"]))
        cursor = q.get("cursor", "")
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("invalid cursor")
        extra = []
        if offset + page < len(entries):
            nq = {k: v for k, v in q.items() if k != "cursor"}
            nq["cursor"] = base64.urlsafe_b64encode(str(offset + page).encode()).decode()
            tail = "/" + _qpath(prefix) if prefix else ""
            nxt = (f"{hub.url}/api/{kind}/{org}/{name}/tree/"
                   f"{urllib.parse.quote(rev, safe='')}{tail}?{urllib.parse.urlencode(nq)}")
            extra.append(("Link", f'<{nxt}>; rel="next"'))
        return self._answer_json(ctx, 200, entries[offset:offset + page], extra)

    def _info(self, ctx, kind, org, name, rev, query):
        hub = self.server.hub
        opened = self._open_repo(ctx, kind, org, name)
        if opened is None:
            return
        repo, _ = opened
        hub._log_update(ctx, revision=rev)
        tree = repo.lookup(rev)
        if tree is None:
            return self._answer_error(ctx, 404, f"Invalid rev id: {rev}", "RevisionNotFound")
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        blobs = q.get("blobs", "false").lower() in ("1", "true")
        siblings = []
        for p in sorted(tree.files):
            b = tree.files[p]
            s = {"rfilename": p}
            if blobs:
                s.update(blobId=b.oid, size=b.size)
                if b.lfs:
                    s["lfs"] = {"sha256": b.sha256, "size": b.size, "pointerSize": b.pointer_size}
            siblings.append(s)
        for p in self._escapes(ctx):
            siblings.append({"rfilename": p})
        repo_id = f"{org}/{name}"
        gated = repo.gated if repo.gated in ("auto", "manual") else ("auto" if repo.gated else False)
        info = {"_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id,
                "author": org, "sha": tree.commit, "lastModified": LAST_MODIFIED,
                "private": repo.private, "gated": gated, "disabled": False, "tags": [],
                "siblings": siblings}
        if kind == "models":
            info["modelId"] = repo_id
        return self._answer_json(ctx, 200, info)

    # -- control API (hub port, not logged)

    def _control(self, raw_path, query):
        hub = self.server.hub
        sub = raw_path.rstrip("/")[len("/_control"):]
        try:
            if self.command == "GET" and sub == "":
                obj, status = hub.state(), 200
            elif self.command == "GET" and sub == "/log":
                q = dict(urllib.parse.parse_qsl(query))
                obj = {"requests": hub.requests(q.get("port"), int(q.get("since", "0")),
                                                float(q.get("wait", "5")))}
                status = 200
            elif self.command == "POST" and sub == "":
                n = int(self.headers.get("Content-Length", "0"))
                if n < 0 or n > 1 << 20:
                    raise ValueError("control body too large")
                raw = self.rfile.read(n)
                obj, status = hub.control(json.loads(raw.decode("utf-8") or "{}")), 200
            else:
                obj, status = {"error": "no such control request"}, 404
        except (ValueError, TypeError, KeyError) as e:
            obj, status = {"error": str(e)}, 400
        data = _json_bytes(obj)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# ---------------------------------------------------------------- as a process

def control_request(hub_url, body=None, timeout=10):
    """GET (body None) or POST a control document to a running server."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(hub_url.rstrip("/") + "/_control", data=data,
                                 method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise ValueError(json.loads(e.read().decode("utf-8") or "{}").get("error", str(e)))


def fetch_log(hub_url, port=None, since=0, wait=5.0, timeout=30):
    """The request log of a running server (see HubServer.requests)."""
    q = urllib.parse.urlencode({k: v for k, v in (("port", port), ("since", since),
                                                  ("wait", wait)) if v is not None})
    with urllib.request.urlopen(f"{hub_url.rstrip('/')}/_control/log?{q}", timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))["requests"]


class HubProcess:
    """The server in a child process (for tests that need it separate): a context
    manager with .hub, .cdn, .pid, control(), requests() and stop()."""

    def __init__(self, root, args=(), ready_timeout=30, max_seconds=300):
        self.root, self.args = root, list(args)
        self.ready_timeout, self.max_seconds = ready_timeout, max_seconds
        self.proc = None
        self.info = None

    def start(self):
        fd, ready = tempfile.mkstemp(prefix="hub-ready-", suffix=".json")
        os.close(fd)
        os.unlink(ready)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--root", self.root,
                 "--ready-file", ready, "--max-seconds", str(self.max_seconds), *self.args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + self.ready_timeout
            while not os.path.exists(ready):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hub server exited with {self.proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("hub server did not get ready")
                time.sleep(0.02)
            with open(ready, encoding="utf-8") as f:
                self.info = json.load(f)
        except BaseException:
            self.stop()
            raise
        finally:
            if os.path.exists(ready):
                os.unlink(ready)
        return self

    @property
    def hub(self):
        return self.info["hub"]

    @property
    def cdn(self):
        return self.info["cdn"]

    @property
    def pid(self):
        return self.proc.pid

    def control(self, body=None):
        return control_request(self.hub, body)

    def requests(self, port=None, since=0, wait=5.0):
        return fetch_log(self.hub, port, since, wait)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _write_ready(path, info):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def main(argv=None):
    parent = os.getppid()  # before the ready file, so a parent that exits after it is seen
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:
        if len(argv) not in (2, 3):
            sys.stderr.write("usage: hub_server.py ctl HUB_URL [JSON]\n")
            return 2
        try:
            out = control_request(argv[1], json.loads(argv[2]) if len(argv) == 3 else None)
        except ValueError as e:
            sys.stderr.write(f"hub_server.py ctl: {e}\n")
            return 1
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if argv[:1] == ["log"]:
        if len(argv) != 2:
            sys.stderr.write("usage: hub_server.py log HUB_URL\n")
            return 2
        for e in fetch_log(argv[1]):
            print(json.dumps(e, ensure_ascii=False))
        return 0
    ap = argparse.ArgumentParser(description="A test Hugging Face Hub on 127.0.0.1.")
    ap.add_argument("--root", required=True, help="folder holding models/ and datasets/")
    ap.add_argument("--ready-file", help="written (atomically) with the URLs when ready")
    ap.add_argument("--max-seconds", type=float, default=300,
                    help="stop after this long, whatever happens (default 300)")
    ap.add_argument("--no-exit-with-parent", action="store_true",
                    help="keep running when the parent process goes away")
    ap.add_argument("--control", help="JSON file: {\"switches\": [...], \"options\": {...}}")
    ap.add_argument("--switch", action="append", default=[], metavar="JSON",
                    help="one fault switch as a JSON object (repeatable)")
    ap.add_argument("--token", action="append", default=[], help="an accepted token (repeatable)")
    ap.add_argument("--require-token", action="store_true")
    ap.add_argument("--lfs-threshold", type=int)
    ap.add_argument("--tree-page-size", type=int)
    ap.add_argument("--resolve-cache", action="store_true")
    ap.add_argument("--stall-cap", type=float)
    ap.add_argument("--hub-port", type=int, default=0)
    ap.add_argument("--cdn-port", type=int, default=0)
    ap.add_argument("--log-file", help="append each request as a JSON line")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    options, switches = {}, []
    if a.control:
        with open(a.control, encoding="utf-8") as f:
            doc = json.load(f)
        unknown = set(doc) - {"switches", "options"}
        if unknown:
            ap.error(f"{a.control}: unknown keys {sorted(unknown)}")
        options.update(doc.get("options", {}))
        switches.extend(doc.get("switches", []))
    for s in a.switch:
        switches.append(json.loads(s))
    if a.token:
        options["tokens"] = a.token
    if a.require_token:
        options["require_token"] = True
    if a.lfs_threshold is not None:
        options["lfs_threshold"] = a.lfs_threshold
    if a.tree_page_size is not None:
        options["tree_page_size"] = a.tree_page_size
    if a.resolve_cache:
        options["resolve_cache"] = True
    if a.stall_cap is not None:
        options["stall_cap"] = a.stall_cap
    try:
        hub = HubServer(a.root, switches=switches, verbose=a.verbose, log_file=a.log_file,
                        **options)
    except ValueError as e:
        ap.error(str(e))
    hub.start(a.hub_port, a.cdn_port)

    def on_signal(signum, frame):
        hub._stopping.set()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    info = hub.ready_info()
    if a.ready_file:
        _write_ready(a.ready_file, info)
    print(json.dumps(info), flush=True)
    deadline = time.monotonic() + a.max_seconds
    reason = "signal"
    while not hub._stopping.wait(0.2):
        if time.monotonic() > deadline:
            reason = "max-seconds"
            break
        if not a.no_exit_with_parent and os.getppid() != parent:
            reason = "parent gone"
            break
    hub.stop()
    if a.verbose:
        sys.stderr.write(f"hub server stopped ({reason})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
