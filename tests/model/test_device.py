"""Where bfloat16 autocast runs: CUDA, and CPUs that multiply bfloat16 in hardware, read from the kernel's flags."""

from __future__ import annotations

from pathlib import Path

import torch

from phonetune.model.device import (
    CPU_BF16_MIN_BATCH,
    CPU_BF16_MIN_PARAMS,
    autocast_context,
    bf16_is_native,
    bf16_pays,
    cpu_has_native_bf16,
)


def _cpuinfo(tmp_path: Path, name: str, flags: str) -> Path:
    path = tmp_path / name
    path.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return path


def test_the_cpu_flags_decide_native_bf16(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "zen4", "fpu sse avx2 avx512f avx512_bf16 avx512_vnni"))
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "sapphire", "fpu avx512f amx_tile amx_bf16 amx_int8"))
    # AVX-512 alone (Skylake) only emulates bfloat16, slower than float32; avx512_bf16 is a whole flag, not a prefix.
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path, "skylake", "fpu avx2 avx512f avx512bw avx512_bf16x"))
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path, "noflags", "").with_name("missing"))
    assert not cpu_has_native_bf16(tmp_path / "absent")


def test_autocast_runs_bf16_on_this_cpu_exactly_when_its_flags_have_it():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    cpu = torch.device("cpu")
    with autocast_context(cpu, True):
        asked = layer(x)
    with autocast_context(cpu, False):
        refused = layer(x)
    native = "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    assert bf16_is_native(cpu) == native
    assert asked.dtype == (torch.bfloat16 if native else torch.float32)
    assert refused.dtype == torch.float32


def test_a_cpu_autocasts_only_models_whose_matmuls_outweigh_the_casts():
    cpu = torch.device("cpu")
    native = bf16_is_native(cpu)
    assert bf16_pays(cpu, 3_609_640, 1024) == native  # the expert recipe
    assert bf16_pays(cpu, CPU_BF16_MIN_PARAMS, CPU_BF16_MIN_BATCH) == native
    assert not bf16_pays(cpu, 12_392, 1024)  # a tiny model: the casts cost more than its matmuls save
    assert not bf16_pays(cpu, 529_448, 32)  # a small batch: too little to save per cast
    assert bf16_pays(torch.device("cuda"), 1_000, 8)  # CUDA: always (its launches, not casts, bound a tiny step)
