"""The fast paths compute what the plain model computes (issue: fast cells).

The channel self-attention runs as torch's fused attention kernel (eager) or in a features x
tokens layout under torch.compile; both must give the scores, losses and gradients of the plain
computation (the code before the change, `_reference_channel_attention`) within 1e-5 relative
at fp32 for the same weights, and the same ranks. The compiled layout is checked through
inductor for KDA+LRD (C++ compilation: ~50 s on a cold cache) and through the "aot_eager"
backend (the same traced graph, eager kernels) for the rest. SASRec's code is unchanged and
never compiled (lrd.experiment.prepare).
"""

import pytest
import torch

from lrd.config.train import ModelConfig
from lrd.evaluate import ranks_from_scores
from lrd.graph import RelationGraph
from lrd.models import Catalog, build_model
from lrd.models.batch import Batch
from lrd.models import native
from lrd.models.blocks import ChannelSelfAttention
from lrd.train.device import compile_model, compiles

# The plain computation: the layer as it was computed before the fast paths (matmul, softmax, matmul per head).
from tests.test_models import _reference_channel_attention, tiny_graph

pytestmark = pytest.mark.skipif(not compiles("auto", torch.device("cpu")), reason="torch.compile needs a C++ compiler")


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return bool((a - b).abs().max() <= rel * b.abs().max().clamp(min=1e-30))


def _build(arch: str, lrd: bool, graph: RelationGraph, text: torch.Tensor, seed: int = 0, dim: int = 16):
    cfg = ModelConfig(name="m", arch=arch, dim=dim, layers=3, heads=4, lrd=lrd, kg_weight=0.5)
    torch.manual_seed(seed)
    model = build_model(cfg, Catalog(6, graph.n_items, 100, graph, text if lrd else None))
    with torch.no_grad():  # weights far from the N(0, 0.01²) start, so that every term matters
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def _batch(graph: RelationGraph, b: int, c: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    n, h = graph.n_items, 7
    hist = torch.randint(1, n + 1, (b, h), generator=g)
    hist[0, :4] = 0  # left padding
    hist[1, :6] = 0
    kg = {k: torch.randint(1, n + 1, (b,), generator=g) for k in ("h", "t", "neg_h", "neg_t")}
    kg.update(r=torch.randint(1, 3, (b,), generator=g), v=torch.zeros(b, dtype=torch.int64))
    return Batch(users=torch.randint(1, 6, (b,), generator=g), history=hist, gaps=torch.rand(b, h, generator=g) * 12,
                 candidates=torch.randint(1, n + 1, (b, c), generator=g), lrd_negatives=torch.randint(1, n + 1, (b, h), generator=g),
                 kg=kg)


@pytest.mark.parametrize("r", [5, 13])
def test_channel_attention_fast_paths_equal_the_plain_computation(r):
    torch.manual_seed(r)
    block = ChannelSelfAttention(64, 4, 5)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(41, r, 64, requires_grad=True)  # not a whole number of 16-token groups
    reference = _reference_channel_attention(block, x)
    grads = torch.autograd.grad(reference.square().sum(), [x, *block.parameters()])
    for forward in (block, torch.compile(block, backend="aot_eager")):
        out = forward(x)
        assert _close(out, reference)
        for got, want in zip(torch.autograd.grad(out.square().sum(), [x, *block.parameters()]), grads):
            assert _close(got, want)


@pytest.mark.parametrize("arch,lrd,backend", [("kda", True, "inductor"), ("kda", False, "aot_eager"), ("rcf", False, "aot_eager")])
def test_compiled_models_score_and_train_as_the_plain_ones(arch, lrd, backend, monkeypatch):
    graph = tiny_graph()
    text = torch.randn(graph.n_items + 1, 12)
    text[0] = 0
    plain, eager, compiled = (_build(arch, lrd, graph, text) for _ in range(3))
    monkeypatch.setattr(plain.channels, "forward", lambda x: _reference_channel_attention(plain.channels, x))
    compile_model(compiled, backend)
    train = _batch(graph, 9, 2, seed=1)
    losses = {}
    for name, model in (("plain", plain), ("eager", eager), ("compiled", compiled)):
        out = model.train().losses(train)
        grads = torch.autograd.grad(out["loss"], list(model.parameters()), allow_unused=True)
        losses[name] = (out, grads)
    want, want_grads = losses["plain"]
    for name in ("eager", "compiled"):
        got, got_grads = losses[name]
        assert set(got) == set(want)
        for k in want:
            assert _close(got[k], want[k]), (name, k)
        for g, w in zip(got_grads, want_grads):
            assert (g is None) == (w is None) and (w is None or _close(g, w)), name
    # Ranking: 4 users x 30 candidates, twice with different histories; ranks identical.
    with torch.inference_mode():
        for seed in (2, 3):
            batch = _batch(graph, 4, 30, seed)
            scores = {name: m.eval().scores(batch) for name, m in (("plain", plain), ("eager", eager), ("compiled", compiled))}
            for name in ("eager", "compiled"):
                assert _close(scores[name], scores["plain"])
                assert torch.equal(ranks_from_scores(scores[name]), ranks_from_scores(scores["plain"]))


@pytest.mark.parametrize("r,d,heads", [(1, 64, 4), (5, 64, 4), (13, 64, 4), (29, 64, 4), (64, 64, 4), (13, 32, 2)])
def test_the_native_scoring_kernel_equals_the_plain_computation(r, d, heads, monkeypatch):
    assert native.available(), "the native channel kernel did not build (see the warning above)"
    torch.manual_seed(r)
    block = ChannelSelfAttention(d, heads, 5)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
        x = torch.randn(2 * 768 // r + 3, r, d)  # several chunks of the kernel, the last one partial
        reference = _reference_channel_attention(block, x)
        block.native = True
        calls = _count_calls(monkeypatch)
        got = block(x)
    assert calls == [1]
    assert _close(got, reference)
    with torch.enable_grad():  # training: the autograd path, not the kernel
        block(x.requires_grad_())
    assert calls == [1]


def _count_calls(monkeypatch) -> list:
    calls, kernel = [], native.channel_block
    monkeypatch.setattr(native, "channel_block", lambda *a: calls.append(1) or kernel(*a))
    return calls


def test_the_native_kernel_scores_compiled_kda_lrd_with_the_plain_ranks(monkeypatch):
    """d = 64, 4 heads: the shapes the kernel takes; inside the compiled scores, no gradients."""
    graph = tiny_graph()
    text = torch.randn(graph.n_items + 1, 12)
    text[0] = 0
    plain, compiled = (_build("kda", True, graph, text, dim=64) for _ in range(2))
    monkeypatch.setattr(plain.channels, "forward", lambda x: _reference_channel_attention(plain.channels, x))
    compile_model(compiled)
    assert compiled.channels.native
    calls = _count_calls(monkeypatch)
    with torch.inference_mode():
        for seed in (2, 3):
            batch = _batch(graph, 4, 30, seed)
            got, want = compiled.eval().scores(batch), plain.eval().scores(batch)
            assert _close(got, want)
            assert torch.equal(ranks_from_scores(got), ranks_from_scores(want))
    assert calls, "the compiled scores did not call the native kernel"


def test_compile_setting():
    cpu = torch.device("cpu")
    assert compiles("inductor", cpu) and not compiles("none", cpu)
    assert compiles("auto", cpu)  # this module runs only where a C++ compiler is found
    assert not compiles("auto", torch.device("meta"))



def test_a_killed_kernel_build_does_not_block_the_next_one(tmp_path):
    """torch waits forever on the lock file a killed build leaves; one older than a build's time is cleared."""
    import os
    import time

    lock = tmp_path / "lock"
    lock.write_text("")
    native._clear_stale_lock(tmp_path)
    assert lock.exists()  # a build may be running
    os.utime(lock, (time.time() - 700, time.time() - 700))
    native._clear_stale_lock(tmp_path)
    assert not lock.exists()
    native._clear_stale_lock(tmp_path)  # nothing to clear
