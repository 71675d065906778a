"""The environment record of a run (renet_core.base.environment, issue 32): every field present,
its key stable and sensitive to what changes the arithmetic, its file written and read back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from renet_core.base import environment as env

FIELDS = {"schema", "recorded", "python", "torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn",
          "opencv", "onednn", "mkl", "torch_cuda", "cudnn", "cpu_capability", "device", "device_name", "processor",
          "cpu_id", "isa_flags", "machine", "os", "threads", "precision", "commit", "dirty"}


def test_record_has_every_field_with_this_process_values():
    record = env.environment_record(device="cpu", precision="float32")
    assert FIELDS <= set(record), FIELDS - set(record)
    assert record["torch"] == torch.__version__.split("+")[0] or record["torch"] == torch.__version__
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    for lib in ("torchvision", "numpy", "scipy", "pandas", "scikit-learn", "opencv"):
        assert record[lib], lib   # all installed with the project
    assert record["device"] == "cpu" and record["device_name"] == record["processor"]
    assert record["threads"] == torch.get_num_threads() and record["precision"] == "float32"
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["commit"] is None or len(record["commit"]) == 40
    json.dumps(record)   # serialisable as it stands


def test_threads_and_precision_are_recorded_as_given():
    record = env.environment_record(device="cpu", threads=7, precision="bf16 autocast")
    assert record["threads"] == 7 and record["precision"] == "bf16 autocast"


def test_key_is_stable_and_ignores_commit_and_time():
    record = env.environment_record(device="cpu", precision="float32")
    key = env.environment_key(record)
    assert key.startswith("env-") and len(key) == 14
    assert env.environment_key(dict(record)) == key
    later = dict(record, commit="0" * 40, dirty=True, recorded="2099-01-01 00:00:00", os="another kernel")
    assert env.environment_key(later) == key
    # stable across processes (no salted hash)
    code = ("import json,sys; from renet_core.base.environment import environment_key as k; "
            "print(k(json.loads(sys.stdin.read())))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(record), capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == key


@pytest.mark.parametrize("change", [{"isa_flags": "avx2 fma"}, {"threads": 64}, {"precision": "bf16 autocast"},
                                    {"torch": "2.1.0"}, {"processor": "AMD EPYC 7763"}, {"device": "cuda"}])
def test_key_changes_with_what_changes_the_arithmetic(change):
    record = env.environment_record(device="cpu", precision="float32")
    assert env.environment_key(dict(record, **change)) != env.environment_key(record)


def test_amx_flag_alone_changes_the_key():
    record = env.environment_record(device="cpu", precision="float32")
    flags = set(record["isa_flags"].split())
    toggled = " ".join(sorted(flags ^ {"amx_bf16"}))
    assert env.environment_key(dict(record, isa_flags=toggled)) != env.environment_key(record)


def test_write_and_read_back(tmp_path):
    record = env.environment_record(device="cpu", precision="float32")
    path = env.write_environment(tmp_path / "runs" / "abc", record)
    assert path == tmp_path / "runs" / "abc" / "environment.json"
    back = env.read_environment(path.parent)
    assert back["key"] == env.environment_key(record)
    assert {k: back[k] for k in record} == json.loads(json.dumps(record))
    assert not [p for p in path.parent.iterdir() if p.name != "environment.json"]   # no temporary left


def test_missing_record_is_none_and_damaged_one_names_its_file(tmp_path):
    assert env.read_environment(tmp_path) is None
    (tmp_path / "environment.json").write_text("{not json")
    with pytest.raises(ValueError, match="environment.json"):
        env.read_environment(tmp_path)
    (tmp_path / "environment.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        env.read_environment(tmp_path)


def test_cpu_info_reads_model_identity_and_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                       "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\n"
                       "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: something else\n")
    model, cpu_id, flags = env.cpu_info(cpuinfo)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_id == "GenuineIntel family 6 model 143 stepping 8"
    assert {"avx512_bf16", "amx_bf16", "amx_tile"} <= flags and "fpu" in flags
    model, cpu_id, flags = env.cpu_info(tmp_path / "absent")
    assert model and cpu_id is None and flags == set()


def test_git_state_outside_a_checkout_is_none_not_an_error(tmp_path):
    assert env.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_description_names_the_processor_and_says_when_not_recorded():
    record = env.environment_record(device="cpu", precision="float32")
    line = env.describe_environment(record)
    assert env.environment_key(record) in line and record["processor"] in line and "torch" in line
    assert env.describe_environment(None) == "environment not recorded"
