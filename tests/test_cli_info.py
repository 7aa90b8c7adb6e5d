"""`rnncli info`: versions, platform, CPU, dependencies, data home and bundled model, for
bug reports; package versions are read from metadata, nothing heavy is imported."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import pytest
from conftest import bundled_accuracy, invoke, modules_loaded

import rnncli
from rnncli import system
from rnncli.cli import info as info_cli

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512bw avx512vl \
avx512_vnni amx_tile

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp \
sha512 sve i8mm bf16
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize("text, features", [
    (X86, ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
           "avx512_vnni", "amx_tile"]),
    (ARM, ["neon", "asimdhp", "asimddp", "i8mm", "bf16", "sve"]),
    ("", []),
])
def test_cpu_features_from_proc_cpuinfo(tmp_path, text, features):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    cpu = info_cli.cpu_info(path)
    assert cpu["features"] == features
    assert cpu["cores"] == os.cpu_count() and cpu["architecture"] == platform.machine()
    if text == X86:
        assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8488C"
    assert info_cli.cpu_info(tmp_path / "none")["features"] == []


def test_usable_cores_follow_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(system.os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(system, "cgroup_quota", lambda: None)
    assert system.usable_cores() == 4
    monkeypatch.setattr(system, "cgroup_quota", lambda: 2.5)  # a container of 2.5 CPUs
    assert system.usable_cores() == 3
    monkeypatch.setattr(system.os, "sched_getaffinity", lambda _: {5}, raising=False)
    assert system.usable_cores() == 1  # taskset -c 5


def test_container_quota(tmp_path):
    path = tmp_path / "cpu.max"
    path.write_text("150000 100000\n")
    assert system.cgroup_quota(path) == 1.5
    path.write_text("max 100000\n")
    assert system.cgroup_quota(path) is None


def test_info_json_says_what_a_bug_report_needs(prepared, tmp_path):
    res = invoke("info", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["rnncli"]["version"] == rnncli.__version__
    assert info["python"]["version"] == platform.python_version()
    assert info["python"]["executable"] == sys.executable
    assert info["platform"] == platform.platform()
    base = info["packages"]["base"]
    for name in ("typer", "rich", "numpy", "onnxruntime"):
        assert base[name] == metadata.version(name)
    assert "tensorflow" in info["packages"]["train"]  # installed or None: always listed
    assert info["data_home"] == str(tmp_path / "home")
    by_source = {d["source"]: d for d in info["datasets"]}
    assert by_source["aclimdb"]["prepared"] and by_source["aclimdb"]["current"]
    assert by_source["aclimdb"]["reviews"] == {"train": 24, "test": 24}
    assert not by_source["keras"]["prepared"]
    bundled = info["bundled_model"]
    assert bundled["present"] and f"{bundled['test_accuracy']:.4f}" == bundled_accuracy()
    assert bundled["test_reviews"] == 25_000 and bundled["size_bytes"] > 6_000_000


def test_info_table_fits_80_columns(tmp_path):
    res = invoke("info", "--data-dir", "elsewhere")  # a long path would not fit, whole
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    flat = " ".join(text.split())
    assert f"rnncli {rnncli.__version__}" in flat
    assert f"python {platform.python_version()}" in flat
    assert f"typer {metadata.version('typer')}" in flat
    assert "data home elsewhere" in flat
    assert "aclimdb not prepared (`rnncli data fetch`)" in flat
    assert f"test accuracy {bundled_accuracy()} on 25,000 reviews" in flat
    # A long list (CPU features, packages) wraps under its column, not under the labels.
    wrapped = [line for line in text.splitlines() if line.startswith(" " * info_cli.LABEL)]
    assert all(line[info_cli.LABEL] != " " for line in wrapped)


def test_an_extra_that_is_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(info_cli, "packages", lambda: {
        "base": {"typer": "0.29.2"}, "train": {"tensorflow": None, "keras": None}})
    res = invoke("info")
    assert '[train]     not installed (pip install "rnncli[train]")' in res.stdout


def test_info_imports_none_of_the_packages_it_reports(tmp_path):
    mods, out, err = modules_loaded(["info"], cwd=tmp_path)
    assert "bundled" in out, err
    loaded = {m.split(".")[0] for m in mods}
    assert not loaded & {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "sklearn",
                         "matplotlib", "pytest", "pydantic"}
