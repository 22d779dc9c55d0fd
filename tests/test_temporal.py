"""KDA's time gaps: the normalised gap and the gap spectra that initialise its temporal kernel."""

import numpy as np
import pyarrow as pa

from lrd import schemas
from lrd.graph import RelationGraph
from lrd.models.blocks import TemporalKernel
from lrd.sequences import Sequences
from lrd.temporal import TIME_SCALE, gap_spectra, log_time_gaps

MIN = 60


def _graph(n_items=4) -> RelationGraph:
    types = pa.table({"id": pa.array([0, 1, 2], pa.int16()), "name": ["any", "complement", "brand"],
                      "kind": ["virtual", "item-item", "attribute"]}, schema=schemas.RELATION_TYPES)
    # complement 1 -> 3; items 1 and 2 share brand "a", 3 has brand "b", 4 none.
    rel = pa.table({"head": pa.array([1, 1, 2, 3], pa.int32()), "relation": pa.array([1, 2, 2, 2], pa.int16()),
                    "tail": pa.array([3, None, None, None], pa.int32()), "value": pa.array([None, "a", "a", "b"])},
                   schema=schemas.RELATIONS)
    return RelationGraph.from_tables(types, rel, n_items, kinds=("item-item", "attribute"), latent=["latent_1"])


def _seqs(rows) -> Sequences:
    users, items, times = map(np.array, zip(*rows))
    table = pa.table({"user": pa.array(users, pa.int32()), "item": pa.array(items, pa.int32()),
                      "timestamp": pa.array(times, pa.int64()), "split": ["train"] * len(rows)}, schema=schemas.INTERACTIONS)
    return Sequences.from_table(table, int(users.max()), 4)


def _spectrum(gaps_minutes, n_dft=8):
    tau = np.maximum(np.log2(np.array(gaps_minutes, float) + 1e-6), 0).astype(int)
    hist = np.bincount(tau).astype(float)
    return 2 * np.fft.fft(hist / hist.max(), n_dft)[: n_dft // 2 + 1]


def test_gap_spectra_follow_the_reference_rules():
    # user 1: item 1 at 0, item 4 at 2 min, item 2 at 6 min, item 3 at 20 min (twice at 20: a zero gap)
    seqs = _seqs([(1, 1, 0), (1, 4, 2 * MIN), (1, 2, 6 * MIN), (1, 3, 20 * MIN), (1, 3, 20 * MIN)])
    sp = gap_spectra(seqs, _graph(), n_dft=8)
    assert np.allclose(sp[0], _spectrum([2, 4, 14]))  # virtual: consecutive positive gaps
    assert np.allclose(sp[1], _spectrum([20, 20]))  # complement 1 -> 3: each 3 back to item 1 (nearest related, positive gap)
    # brand: a (items 1, 2): 6 min; b (item 3): 0 (dropped); no brand (item 4): alone
    assert np.allclose(sp[2], _spectrum([6]))
    assert not sp[3].any()  # latent: left to the random initialisation


def test_kernel_starts_from_the_spectra_where_given():
    spectra = np.zeros((3, 5), complex)
    spectra[1] = np.arange(5) + 1j
    kernel = TemporalKernel(3, n_dft=8, spectra=spectra)
    assert np.allclose(kernel.real[1].detach().numpy(), np.arange(5)) and np.allclose(kernel.imag[1].detach().numpy(), 1)
    assert kernel.real[0].abs().max() < 0.1  # no spectrum: N(0, 0.01²)


def test_log_time_gaps():
    gaps = log_time_gaps(np.array([100 * TIME_SCALE]), np.array([[0, 99 * TIME_SCALE, 100 * TIME_SCALE, 200 * TIME_SCALE]]))
    assert np.allclose(gaps, [[np.log2(100), 0, 0, 0]], atol=1e-5)
