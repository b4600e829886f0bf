"""profiling/benchmarks/model_ops.py: the per-op breakdown adds up to the whole inference, op for op."""
from __future__ import annotations

import pytest

from tests.conftest import require_tool


@pytest.fixture(scope="module")
def tools():
    for t in ("arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(t)


def test_model_ops_covers_every_op_of_the_graph(tools, capsys):
    from ondevice.profiling.benchmarks.model_ops import main
    from ondevice.profiling.benchmarks.mcu_vs_tflm import _test_graph
    from ondevice.mcu.reader import read_graph

    res = main(["inplace-chain"])
    graph = read_graph(_test_graph("inplace-chain"), "inplace-chain")
    # reshapes and pads fold into their neighbours; every op that computes is there, in graph order
    compute = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    assert [o["op"] for o in res["ops"] if o["op"] in compute] == [op.opcode for op in graph.ops if op.opcode in compute]
    assert {o["op"] for o in res["ops"]} <= {op.opcode for op in graph.ops}
    assert all(o["instructions"] > 0 for o in res["ops"])
    # the per-op counters cover the inference: together no more than the whole, and most of it
    per_op = sum(o["instructions"] for o in res["ops"])
    assert 0.8 * res["instructions"] <= per_op <= res["instructions"]
    assert res["macs"] == sum(o["macs"] for o in res["ops"])
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith('{"model": "inplace-chain"')
