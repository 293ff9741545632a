"""The memory estimate against measured memory, per-session threads and the system report.

Memory: each measurement runs scripts/measure_memory.py in its own process (so pytest's memory is not measured),
which reads VmRSS after the library is loaded and before the model is, estimates, loads, creates one session of
n_ctx positions, fills it (every KV cache page allocated and written, attention over all positions) and reads
VmHWM. measured = VmHWM - VmRSS before the load; the estimate's total_bytes must be within 5% of it. Models: the
real SmolLM2-135M Q4_1 GGUF (asset; filled by a real prefill) and a synthetic model with SmolLM2's shapes written
by `mobilellm quantize --synthetic smollm2-135m --type f16` and quantized to q8_0 as it loads (so converted,
anonymous weights are measured too). Both are filled by a real prefill of n_ctx tokens.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import mobilellm

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = pathlib.Path(os.environ.get("MOBILELLM_CLI") or REPO / ".build" / "release" / "mobilellm")
ASSETS = pathlib.Path(os.environ.get("MOBILELLM_ASSETS") or REPO / ".cache" / "assets")
SMOLLM2 = ASSETS / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURE = REPO / "Tests" / "Fixtures" / "llama4-r1like-bf16-sharded"


def measure(model, n_ctx, fill="prefill", **options):
    command = [sys.executable, str(REPO / "scripts" / "measure_memory.py"), str(model), "--n-ctx", str(n_ctx),
               "--fill", fill]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def check_within(result, tolerance=0.05):
    assert abs(result["ratio"] - 1) <= tolerance, (
        f"estimate {result['total_bytes']} bytes vs measured {result['measured']} "
        f"(peak {result['peak']} - before {result['rss_before']}): ratio {result['ratio']:.3f}; {result}")


def test_estimate_matches_peak_rss_smollm2():
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `python3 scripts/fetch_assets.py` (or set MOBILELLM_ASSETS)")
    result = measure(SMOLLM2, 1024, fill="prefill")
    assert result["kv_cache_type"] == "f16"
    assert result["weights_anonymous_bytes"] < 1 << 20  # norms only: the Q4_1 matrices stay mapped
    check_within(result)


def test_estimate_matches_peak_rss_smollm2_int8_interleaved():
    """int8 activations interleave the Q4_1/Q8_0 matrices at load where the CPU has an r8 kernel (the report's int8
    kernel ends in "-r8"): they move from the mapped file to anonymous memory, and the estimate must follow."""
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `python3 scripts/fetch_assets.py` (or set MOBILELLM_ASSETS)")
    lines = dict(line.split(": ", 1) for line in mobilellm.system_info().strip().splitlines())
    interleaved = lines["q4_1"].endswith("-r8")
    result = measure(SMOLLM2, 1024, fill="prefill", activations="int8")
    if interleaved:
        assert result["weights_anonymous_bytes"] > 90 << 20  # every Q4_1 matrix and the Q8_0 output
    else:
        assert result["weights_anonymous_bytes"] < 1 << 20
    check_within(result)


def test_estimate_matches_peak_rss_synthetic_quantized_on_load(tmp_path):
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `swift build -c release` (or set MOBILELLM_CLI)")
    path = tmp_path / "smollm2-shapes.f16.gguf"
    command = [str(CLI), "quantize", "--synthetic", "smollm2-135m", "--type", "f16", "--out", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    result = measure(path, 1024, fill="prefill", quantize="q8_0")
    assert result["kv_cache_type"] == "f16"
    assert result["weights_anonymous_bytes"] > 100 << 20  # the q8_0 copies of every matrix
    check_within(result)


def test_estimate_reads_headers_only_and_fails_like_load(tmp_path):
    estimate = mobilellm.estimate_memory(FIXTURE, n_ctx=64)
    assert estimate.n_ctx == 64 and estimate.kv_cache_type == "f32"
    assert estimate.total_bytes == (estimate.weights_mapped_bytes + estimate.weights_anonymous_bytes +
                                    estimate.kv_bytes + estimate.scratch_bytes)
    quantized = mobilellm.estimate_memory(FIXTURE, n_ctx=64, quantize="q4_0")
    assert quantized.kv_cache_type == "f16" and quantized.weights_anonymous_bytes > estimate.weights_anonymous_bytes
    missing = tmp_path / "missing.gguf"
    with pytest.raises(mobilellm.MobileLLMError) as load_error:
        mobilellm.Model(missing)
    with pytest.raises(mobilellm.MobileLLMError) as estimate_error:
        mobilellm.estimate_memory(missing)
    assert estimate_error.value.status == load_error.value.status
    # The same message after the function's name ("mobilellm_model_load: ...: no such file or directory").
    assert str(estimate_error.value).split(":", 1)[1] == str(load_error.value).split(":", 1)[1]
    with pytest.raises(mobilellm.MobileLLMError, match="n_ctx"):
        mobilellm.estimate_memory(FIXTURE, n_ctx=-1)


def test_estimate_takes_activations():
    with pytest.raises(mobilellm.MobileLLMError, match=r"params->activations") as info:
        mobilellm.estimate_memory(FIXTURE, n_ctx=64, quantize="q8_0", activations="int4")
    assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
    default = mobilellm.estimate_memory(FIXTURE, n_ctx=64, quantize="q8_0")
    by_name = [mobilellm.estimate_memory(FIXTURE, n_ctx=64, quantize="q8_0", activations=name)
               for name in ("exact", "int8", "")]
    # Rearranging matrices for the int8 kernels moves bytes between mapped and anonymous memory; it adds none.
    assert {estimate.total_bytes for estimate in by_name} == {default.total_bytes}


def test_session_threads_give_identical_tokens():
    with mobilellm.Model(FIXTURE, n_threads=2) as model:
        runs = []
        for threads in (1, 0, 2):
            with model.session(n_ctx=64) as session:
                session.set_threads(threads)
                runs.append(session.generate([0, 169, 380], max_tokens=10, temperature=0).tokens)
        assert runs[0] == runs[1] == runs[2]
        with model.session(n_ctx=64) as session:
            with pytest.raises(mobilellm.MobileLLMError, match="n_threads"):
                session.set_threads(3)
            with pytest.raises(mobilellm.MobileLLMError, match="n_threads"):
                session.set_threads(-1)


def cpuinfo_flags():
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    return set()


def test_system_info_agrees_with_proc_cpuinfo():
    info = mobilellm.system_info()
    lines = dict(line.split(": ", 1) for line in info.strip().splitlines())
    assert {"arch", "features", "isa", "f32", "q4_0", "q8_0", "q6_k"} <= set(lines)
    reported = set(lines["features"].split())
    flags = cpuinfo_flags()
    if lines["arch"] == "x86_64":
        # The report spells /proc/cpuinfo's avx512_vnni and avx512_bf16 with a hyphen.
        known = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vbmi", "avx512-vnni",
                 "avx512-bf16"]
        for feature in known:
            assert (feature in reported) == (feature.replace("-", "_") in flags), (feature, info)
        if "avx2" not in flags:
            assert lines["isa"].startswith("scalar")
    elif lines["arch"] == "arm64":
        assert ("dotprod" in reported) == ("asimddp" in flags), info
        assert ("i8mm" in reported) == ("i8mm" in flags), info
    for name in ("q4_0", "q8_0", "q6_k"):
        assert lines[name].startswith("exact-decode ") and ", int8 " in lines[name]


def test_use_mlock_locks_or_names_the_limit():
    """use_mlock locks the mapped files (VmLck grows) or, where RLIMIT_MEMLOCK is too low, fails naming the field
    and the limit. With setpriv and prlimit at hand (and root), the refusal is forced in a child process."""
    code = ("import sys, mobilellm\n"
            "try:\n"
            f"    model = mobilellm.Model({str(FIXTURE)!r}, use_mlock=True)\n"
            "    locked = [l for l in open('/proc/self/status') if l.startswith('VmLck')][0].split()[1]\n"
            "    print('locked', locked)\n"
            "except mobilellm.MobileLLMError as error:\n"
            "    print('error', error)\n")
    environment = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr
    kind, detail = result.stdout.strip().split(" ", 1)
    if kind == "locked":
        assert int(detail) > 0
    else:
        assert "params->use_mlock" in detail and "RLIMIT_MEMLOCK" in detail, detail
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if os.geteuid() == 0 and setpriv and prlimit:
        limited = subprocess.run([setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", prlimit,
                                  "--memlock=4096:4096", sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=120, env=environment)
        if limited.returncode == 0:  # setpriv may be refused in some containers; then there is nothing to force
            assert "params->use_mlock" in limited.stdout and "RLIMIT_MEMLOCK is 4096 bytes" in limited.stdout, limited.stdout


def test_cli_inspect_system_prints_the_report_without_a_model():
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `swift build -c release` (or set MOBILELLM_CLI)")
    result = subprocess.run([str(CLI), "inspect", "--system"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == mobilellm.system_info()
    refused = subprocess.run([str(CLI), "inspect", "--system", "--json"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--system" in refused.stderr


def test_batch_threads_give_identical_tokens():
    with mobilellm.Model(FIXTURE, n_threads=2) as model:
        runs = [model.generate_batch([[0, 169, 380], [5, 6]], max_tokens=8, temperature=0, n_threads=threads)
                for threads in (1, 0)]
        assert [g.tokens for g in runs[0]] == [g.tokens for g in runs[1]]
        with pytest.raises(mobilellm.MobileLLMError, match="n_threads"):
            model.generate_batch([[0, 169, 380]], max_tokens=2, n_threads=3)
