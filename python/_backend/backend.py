"""A minimal PEP 517 build backend for the pure-Python `mobilellm` package, so that `pip install ./python` needs
nothing from the network. It writes a wheel holding python/mobilellm/*.py plus `_build_info.py`, which records the
repository root (where `.build/release/libmobilellm.so` is looked for). With MOBILELLM_BUNDLE_LIBRARY=/path/to/
libmobilellm.so in the environment, that library is copied into the package as well."""
import base64
import hashlib
import os
import pathlib
import zipfile

NAME = "mobilellm"
VERSION = "0.1.0"
HERE = pathlib.Path(__file__).resolve().parent.parent  # python/
TAG = "py3-none-any"


def _metadata():
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
            "Summary: Python bindings (ctypes) for mobilellm\nRequires-Python: >=3.8\n")


def _files():
    package = HERE / NAME
    files = {f"{NAME}/{p.name}": p.read_bytes() for p in sorted(package.glob("*.py")) if p.name != "_build_info.py"}
    files[f"{NAME}/_build_info.py"] = (
        '"""Written by the build backend: where the package was built from."""\n'
        f"REPO_ROOT = {str(HERE.parent)!r}\n").encode()
    bundled = os.environ.get("MOBILELLM_BUNDLE_LIBRARY")
    if bundled:
        files[f"{NAME}/libmobilellm.so"] = pathlib.Path(bundled).read_bytes()
    return files


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(directory, files):
    dist_info = f"{NAME}-{VERSION}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata().encode()
    files[f"{dist_info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: mobilellm-backend\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode()
    record_name = f"{dist_info}/RECORD"
    record = "\n".join(_record_line(n, d) for n, d in files.items()) + f"\n{record_name},,\n"
    wheel_name = f"{NAME}-{VERSION}-{TAG}.whl"
    with zipfile.ZipFile(os.path.join(directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(record_name, record)
    return wheel_name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = pathlib.Path(metadata_directory) / f"{NAME}-{VERSION}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(_metadata())
    return dist_info.name


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file pointing at python/ makes the source tree importable.
    return _write_wheel(wheel_directory, {f"{NAME}.pth": (str(HERE) + "\n").encode()})
