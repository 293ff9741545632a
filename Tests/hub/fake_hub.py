#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub's download interface, for testing `mobilellm pull` offline (stdlib only).

    python3 Tests/hub/fake_hub.py --repo test/model=DIR [--gated test/gated=DIR --token hf_x]
                                  [--corrupt test/corrupt=DIR] [--file NAME=PATH] [--log FILE]

Binds 127.0.0.1 on a free port and prints the port on the first line of stdout. It serves each repository from a
directory of files the way huggingface.co does (the behaviour huggingface_hub relies on):

  GET  /api/models/{repo}/revision/{rev}   {"id", "sha": commit, "siblings": [{"rfilename": ...}]}
                                           (404 X-Error-Code: RevisionNotFound / RepoNotFound)
  HEAD|GET /{repo}/resolve/{rev}/{path}    small files: 200, ETag = git blob SHA-1, X-Repo-Commit;
                                           LFS files (*.safetensors): 302 to the CDN with X-Linked-Etag = SHA-256
                                           (hashlib), X-Linked-Size, X-Repo-Commit; 404 EntryNotFound
  GET  /cdn/{repo}/{sha256}                the LFS blob, on host "localhost" (the hub itself is "127.0.0.1", so the
                                           redirect leaves the hub's host, as a real CDN redirect does)
  GET  /files/{name}                       a plain file (for the default-model archive)

Gated repositories answer 401 (X-Error-Code: GatedRepo) without `Authorization: Bearer <--token>` and 403 with
another token; their model info stays public, as on the real hub. A --corrupt repository advertises the right
SHA-256 but serves blobs with one byte changed. Every download honours `Range: bytes=A-` / `bytes=A-B` (206 with
Content-Range; 416 with `Content-Range: bytes */SIZE` past the end). Each request is appended to --log as one JSON
line: method, path, host, range, authorization, status, bytes (body bytes sent).
"""
import argparse
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Repo:
    def __init__(self, repo_id, directory, gated=False, corrupt=False):
        self.id = repo_id
        self.directory = directory
        self.gated = gated
        self.corrupt = corrupt
        self.files = sorted(name for name in os.listdir(directory) if os.path.isfile(os.path.join(directory, name)))
        self.sha256 = {name: hashlib.sha256(self.read(name)).hexdigest() for name in self.files}
        listing = "".join(f"{name}:{self.sha256[name]}\n" for name in self.files)
        self.commit = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()

    def read(self, name):
        with open(os.path.join(self.directory, name), "rb") as handle:
            return handle.read()

    @staticmethod
    def is_lfs(name):
        return name.endswith(".safetensors")

    def git_blob_sha1(self, name):
        data = self.read(name)
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def blob(self, sha256):
        for name in self.files:
            if self.sha256[name] == sha256:
                data = self.read(name)
                if self.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                return data
        return None


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    repos = {}
    files = {}
    token = None
    log_path = None
    log_lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    # -- plumbing ----------------------------------------------------------------------------------------------

    def record(self, status, sent):
        if not self.log_path:
            return
        entry = {"method": self.command, "path": urlsplit(self.path).path, "host": (self.headers.get("Host") or "").split(":")[0],
                 "range": self.headers.get("Range"), "authorization": self.headers.get("Authorization"),
                 "status": status, "bytes": sent}
        with self.log_lock, open(self.log_path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.record(status, 0 if head else len(body))

    def error(self, status, code, message, head):
        body = json.dumps({"error": message}).encode()
        self.reply(status, body, {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}, head)

    def content(self, data, head, headers=None):
        """Serves `data`, honouring a Range header."""
        headers = dict(headers or {})
        headers["Accept-Ranges"] = "bytes"
        requested = self.headers.get("Range")
        if requested:
            spec = requested.strip()
            if not spec.startswith("bytes=") or "," in spec:
                return self.reply(400, b"unsupported range", head=head)
            first, _, last = spec[len("bytes="):].partition("-")
            start = int(first)
            end = int(last) if last else len(data) - 1
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self.reply(416, b"", headers, head)
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self.reply(206, data[start:end + 1], headers, head)
        return self.reply(200, data, headers, head)

    def authorized(self, repo, head):
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization")
        if auth is None:
            self.error(401, "GatedRepo", f"Access to model {repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.", head)
            return False
        if auth != f"Bearer {self.token}":
            self.error(403, "GatedRepo", f"Access to model {repo.id} is restricted and you are not in the authorized list.", head)
            return False
        return True

    # -- routes --------------------------------------------------------------------------------------------------

    def route(self, head):
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        host = (self.headers.get("Host") or "").split(":")[0]
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            return self.model_info("/".join(parts[2:4]), "/".join(parts[5:]), head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        if parts[0] == "cdn" and len(parts) == 4 and host == "localhost":
            repo = self.repos.get("/".join(parts[1:3]))
            data = repo.blob(parts[3]) if repo else None
            if data is None:
                return self.reply(404, b"no such blob", head=head)
            return self.content(data, head, {"Content-Type": "application/octet-stream"})
        if parts[0] == "files" and len(parts) == 2 and parts[1] in self.files:
            with open(self.files[parts[1]], "rb") as handle:
                return self.content(handle.read(), head, {"Content-Type": "application/zip"})
        return self.reply(404, b"not found", head=head)

    def model_info(self, repo_id, revision, head):
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(404, "RepoNotFound", "Repository not found", head)
        if revision not in ("main", repo.commit):
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        info = {"id": repo.id, "modelId": repo.id, "sha": repo.commit, "gated": "manual" if repo.gated else False,
                "siblings": [{"rfilename": name} for name in repo.files]}
        self.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head)

    def resolve(self, repo_id, revision, name, head):
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(404, "RepoNotFound", "Repository not found", head)
        if not self.authorized(repo, head):
            return None
        if revision not in ("main", repo.commit):
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        if name not in repo.files:
            return self.error(404, "EntryNotFound", f"{name} does not exist on \"{revision}\"", head)
        headers = {"X-Repo-Commit": repo.commit}
        if repo.is_lfs(name):
            size = len(repo.read(name))
            port = self.server.server_address[1]
            headers.update({"X-Linked-Etag": f"\"{repo.sha256[name]}\"", "X-Linked-Size": str(size),
                            "ETag": f"\"{repo.git_blob_sha1(name)}\"",
                            "Location": f"http://localhost:{port}/cdn/{repo.id}/{repo.sha256[name]}"})
            return self.reply(302, b"", headers, head)
        headers["ETag"] = f"\"{repo.git_blob_sha1(name)}\""
        return self.content(repo.read(name), head, headers)


def pairs(values):
    for value in values or []:
        key, _, path = value.partition("=")
        if not key or not path:
            sys.exit(f"fake_hub: expected NAME=PATH, found {value!r}")
        yield key, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", action="append", help="ID=DIR: a public repository")
    parser.add_argument("--gated", action="append", help="ID=DIR: a repository that needs --token")
    parser.add_argument("--corrupt", action="append", help="ID=DIR: a repository whose blobs do not match their SHA-256")
    parser.add_argument("--file", action="append", help="NAME=PATH: served at /files/NAME")
    parser.add_argument("--token", default="hf_fake_token")
    parser.add_argument("--log")
    args = parser.parse_args()
    for option, flags in [(args.repo, {}), (args.gated, {"gated": True}), (args.corrupt, {"corrupt": True})]:
        for repo_id, directory in pairs(option):
            Hub.repos[repo_id] = Repo(repo_id, directory, **flags)
    Hub.files = dict(pairs(args.file))
    Hub.token = args.token
    Hub.log_path = args.log
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
