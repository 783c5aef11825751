from tao_ray.core import precision


def test_auto_picks_bf16_only_on_cpus_with_native_bf16_matmuls():
    assert precision.resolve("auto", "cpu", "float32", {"avx512f", "avx512_bf16"}) == "bfloat16"
    assert precision.resolve("auto", "cpu", "float32", {"amx_bf16", "amx_tile"}) == "bfloat16"
    assert precision.resolve("auto", "cpu", "float32", {"avx2", "avx512f"}) == "float32"
    # GPUs: the recipe's weights dtype (bf16 recipes train with DeepSpeed's bf16 optimizer)
    assert precision.resolve("auto", "cuda", "bfloat16", set()) == "bfloat16"
    assert precision.resolve("float32", "cpu", "float32", {"avx512_bf16"}) == "float32"


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()
