"""Subnormals are flushed while onnxruntime runs for us, on the calling thread too, and no
user thread is left flushing (onnxruntime would set the flags for good on the thread creating
the process's first session)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import denormals
from clipclap_integrations.sessions import SessionConfig, get_session, run

needs_support = pytest.mark.skipif(
    not denormals.supported(), reason="flush flags are set only on x86-64 Linux"
)
SUBNORMAL = np.float32(1e-40)


def keeps_subnormals() -> bool:
    return bool((np.array([SUBNORMAL]) * np.float32(1.0))[0] != 0)


@needs_support
def test_flushing_inside_the_block_only() -> None:
    assert keeps_subnormals()
    with denormals.flushing_denormals():
        assert not keeps_subnormals()
    assert keeps_subnormals()
    with pytest.raises(RuntimeError), denormals.flushing_denormals():
        raise RuntimeError("boom")
    assert keeps_subnormals()  # restored on the way out of an error too


@needs_support
def test_other_threads_are_not_touched() -> None:
    seen: list[bool] = []
    inside = threading.Event()
    done = threading.Event()

    def other() -> None:
        inside.wait(5)
        seen.append(keeps_subnormals())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with denormals.flushing_denormals():
        inside.set()
        done.wait(5)
    thread.join()
    assert seen == [True]


@needs_support
def test_run_flushes_on_the_calling_thread(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # y = x * 1 on one thread: with one intra-op thread the caller computes it
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "one"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    path = tmp_path / "mul.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    session = get_session(path, (str(path), "mul"), SessionConfig(threads=1))
    x = np.array([SUBNORMAL, 2.0], dtype=np.float32)
    assert keeps_subnormals()  # creating the session left this thread as it was
    plain = session.run(["y"], {"x": x})[0]
    ours = run(session, ["y"], {"x": x})[0]
    assert plain[0] == SUBNORMAL  # onnxruntime alone keeps it on the calling thread
    assert ours[0] == 0.0 and ours[1] == 2.0
    assert keeps_subnormals()


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
