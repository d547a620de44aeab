"""Subnormals are flushed while onnxruntime runs for us on the CPU, on the calling thread too,
and no user thread is left flushing (onnxruntime would set the flags for good on the thread
creating the process's first session)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.runtime import denormals, sessions
from clipclap_integrations.runtime.sessions import SessionConfig, get_session, run, session_options

needs_support = pytest.mark.skipif(
    not denormals.supported(), reason="flush flags are set only on 64-bit x86 Linux"
)
SUBNORMAL = np.float32(1e-40)
ENTRY = "session.set_denormal_as_zero"


def keeps_subnormals() -> bool:
    return bool((np.array([SUBNORMAL]) * np.float32(1.5))[0] != 0)


def test_supported_where_expected() -> None:
    # the suite must not go quietly green by skipping everything on the platform it targets
    if denormals.platform_expected() and platform.libc_ver()[0] == "glibc":
        assert denormals.supported()


@needs_support
def test_flushing_inside_the_block_only() -> None:
    assert keeps_subnormals()
    with denormals.flushing():
        assert not keeps_subnormals()
    assert keeps_subnormals()
    with pytest.raises(RuntimeError), denormals.flushing():
        raise RuntimeError("boom")
    assert keeps_subnormals()  # restored on the way out of an error too


@needs_support
def test_preserving_puts_back_what_the_block_set() -> None:
    with denormals.preserving():
        with denormals.flushing():
            pass
        denormals._libm.fesetenv(  # what onnxruntime's first session does to its thread
            denormals._with_bits(
                denormals._get(denormals._libm),
                denormals._mxcsr(denormals._get(denormals._libm)) | denormals._FTZ_DAZ,
            )
        )
        assert not keeps_subnormals()
    assert keeps_subnormals()


def _entry(options: object) -> str | None:
    try:
        return options.get_session_config_entry(ENTRY)  # type: ignore[attr-defined]
    except RuntimeError:  # onnxruntime: no such entry
        return None


def test_session_options_ask_pool_threads_to_flush_on_the_cpu_only() -> None:
    cpu = _entry(session_options(SessionConfig()))
    assert cpu == ("1" if denormals.supported() else None)
    cuda = SessionConfig(providers=("CUDAExecutionProvider",))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert _entry(session_options(cuda)) is None
    else:  # decided by the providers sessions get here, not the ones asked for
        assert _entry(session_options(cuda)) == cpu


GPU_THEN_CPU = ("CUDAExecutionProvider", "CPUExecutionProvider")


@needs_support
def test_a_session_falling_back_to_the_cpu_flushes_on_its_pool_threads(
    tiny_model_dir: Path,
) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: the session does not fall back")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        e = ClipClapEmbedder(tiny_model_dir, providers=list(GPU_THEN_CPU), threads=2)
        session = e.encoders.session("audio_model.onnx")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert _entry(session.get_session_options()) == "1"
    plain = ClipClapEmbedder(tiny_model_dir, threads=2).encoders.session("audio_model.onnx")
    assert _entry(plain.get_session_options()) == "1"


@needs_support
def test_a_provider_onnxruntime_drops_at_creation_still_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # onnxruntime lists CUDA, yet cannot load it (no driver, say): the session runs on the CPU
    path = _mul_graph(tmp_path / "mul.onnx")
    listed = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    config = SessionConfig(providers=GPU_THEN_CPU, threads=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = get_session(path, (str(path), "dropped"), config)
    assert any("dropped the requested provider" in str(w.message) for w in caught)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert _entry(session.get_session_options()) == "1"
    x = np.array([SUBNORMAL, 2.0], dtype=np.float32)  # and the calling thread flushes too
    assert run(session, ["y"], {"x": x})[0][0] == 0.0
    assert keeps_subnormals()
    # The session that fell back is let go before the CPU one is made (peak memory).
    alive: list[bool] = []
    real_new = sessions._new

    def watched_new(*args):  # type: ignore[no-untyped-def]
        made = real_new(*args)
        if len(alive) == 0:
            import weakref

            first = weakref.ref(made)
            alive.append(True)
            watched_new.first = first  # type: ignore[attr-defined]
        else:
            alive.append(watched_new.first() is not None)  # type: ignore[attr-defined]
        return made

    monkeypatch.setattr(sessions, "_new", watched_new)
    second = _mul_graph(tmp_path / "mul2.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped provider, said above
        get_session(second, (str(second), "dropped"), config)
    assert alive == [True, False]  # two creations; the first gone before the second


def _mul_graph(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [helper.make_tensor("k", TensorProto.FLOAT, [1], [1.5])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return path


@needs_support
def test_run_flushes_on_the_calling_thread(tmp_path: Path) -> None:
    path = _mul_graph(tmp_path / "mul.onnx")
    # one intra-op thread: the caller computes it all
    session = get_session(path, (str(path), "mul1"), SessionConfig(threads=1))
    x = np.array([SUBNORMAL, 2.0], dtype=np.float32)
    assert keeps_subnormals()  # creating the session left this thread as it was
    plain = session.run(["y"], {"x": x})[0]
    ours = run(session, ["y"], {"x": x})[0]
    assert plain[0] == SUBNORMAL * np.float32(1.5)  # onnxruntime alone keeps it here
    assert ours[0] == 0.0 and ours[1] == 3.0
    assert keeps_subnormals()


@needs_support
def test_pool_threads_flush(tmp_path: Path) -> None:
    path = _mul_graph(tmp_path / "mul.onnx")
    session = get_session(path, (str(path), "mul2"), SessionConfig(threads=2))
    x = np.full(4_000_000, SUBNORMAL, dtype=np.float32)  # large enough to be split
    assert not run(session, ["y"], {"x": x})[0].any()


@needs_support
def test_first_session_of_a_process_leaves_the_thread_as_it_was(tiny_model_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import numpy as np
        from clipclap_integrations import ClipClapEmbedder
        def keeps():
            return bool((np.array([np.float32(1e-40)]) * np.float32(1.0))[0] != 0)
        assert keeps()
        embedder = ClipClapEmbedder({str(tiny_model_dir)!r})
        embedder.embed_text(["a dog barking"])
        print("keeps" if keeps() else "flushes")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "keeps", out.stderr
