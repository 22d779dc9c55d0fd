"""The per-pair strengths considered for issue 27 (README "Relation strength"), on discover's stored
checkpoint and latent.parquet: for each, in how many used types the strongest decile of pairs
shares the type's signature attribute (highest lift over random pairs in metrics/<ds>/discover.json)
more often than the weakest decile, 95% Wilson CIs apart. Reads only; writes nothing.

    python scripts/strength_candidates.py Office [name ...]   # names: print those candidates' deciles
"""
import sys, json
import numpy as np, torch, pyarrow.parquet as pq
from lrd.paths import Paths
from lrd.data.tables import DatasetTables
from lrd.discover.coherence import ItemAttributes, wilson
from lrd.models.lrd import LatentRelationDiscovery
from lrd.embed.store import EmbeddingStore

ds = sys.argv[1]
import glob
paths = Paths(ds)
tables = DatasetTables.load(paths)
n = tables.n_items
ck = torch.load(f"models/{ds}/discover/checkpoint.pt", weights_only=False)
st = ck["state"]
emb_dir = glob.glob(f"data/embeddings/{ds}/*")[0]
store = EmbeddingStore.open(emb_dir)
text = torch.from_numpy(store.matrix(n))
lrd = LatentRelationDiscovery(text, ck["meta"]["dim"], len(ck["meta"]["relations"]))
lrd.load_state_dict({k[4:]: v for k, v in st.items() if k.startswith("lrd.")})
lat = pq.read_table(f"data/relations/{ds}/latent.parquet")
h = lat.column("head").to_numpy().astype(np.int64); t = lat.column("tail").to_numpy().astype(np.int64)
rel = lat.column("relation").to_numpy().astype(np.int64); prob = lat.column("probability").to_numpy()
types = pq.read_table(f"data/relations/{ds}/relation_types.parquet")
first_latent = [i for i, k in zip(types.column("id").to_pylist(), types.column("kind").to_pylist()) if k == "latent"][0]
model_r = rel - first_latent + 1
with torch.no_grad():
    a, b, c = lrd.pair_tables()
    logits = (a[h] + b[t] + c).double().numpy()
lr = logits[np.arange(len(h)), model_r]
others = logits.copy(); others[np.arange(len(h)), model_r] = -np.inf
from scipy.special import logsumexp
logodds = lr - logsumexp(others, axis=1)
margin = lr - others.max(1)
E = st["entities.weight"].double().numpy(); W = st["relations.weight"].double().numpy()
ebar = E[1:n+1].mean(0)
w = W[model_r]
recon = (((E[h] - ebar) * w) * E[t]).sum(1) + ((E[h] - ebar) * w).sum(1)
raw = ((E[h] * w) * E[t]).sum(1) + (E[h] * w).sum(1) + (E[t] * w).sum(1)
# symmetric: h reconstructs t and t reconstructs h
recon_rev = (((E[t] - ebar) * w) * E[h]).sum(1) + ((E[t] - ebar) * w).sum(1)
X = text.double().numpy(); Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
cos = (Xn[h] * Xn[t]).sum(1)
inter = (((E[h] - ebar) * w) * E[t]).sum(1)
# percentile of h among all items as reconstructor of t under r
pct = np.empty(len(h))
for lo in range(0, len(h), 4096):
    sl = slice(lo, lo + 4096)
    wt = w[sl] * E[t[sl]] + w[sl]  # B x d : s(h',t) = <e_h', w*e_t + w> + const
    all_s = wt @ E[1:n+1].T  # B x n
    mine = (E[h[sl]] * wt).sum(1)
    pct[sl] = (all_s < mine[:, None]).mean(1)
pct_rev = np.empty(len(h))
for lo in range(0, len(h), 4096):
    sl = slice(lo, lo + 4096)
    wt = w[sl] * E[h[sl]] + w[sl]
    all_s = wt @ E[1:n+1].T
    mine = (E[t[sl]] * wt).sum(1)
    pct_rev[sl] = (all_s < mine[:, None]).mean(1)
rng = np.random.default_rng(0)
rh = rng.integers(1, n + 1, 100000); rt = rng.integers(1, n, 100000); rt = rt + (rt >= rh)
rcos = (Xn[rh] * Xn[rt]).sum(1)
zcos = (cos - rcos.mean()) / rcos.std()
rmin = np.minimum(recon, recon_rev); zrec = np.zeros(len(h))
for r in np.unique(model_r):
    wr = W[r]
    f = lambda a, b: (((E[a] - ebar) * wr) * E[b]).sum(1) + ((E[a] - ebar) * wr).sum(1)
    base = np.minimum(f(rh, rt), f(rt, rh))
    sel = model_r == r
    zrec[sel] = (rmin[sel] - base.mean()) / base.std()
zsum = (zrec + zcos) / 2
for name, v in (("zcos", zcos), ("zrec", zrec), ("zsum", zsum)):
    print(name, "quantiles", np.round(np.quantile(v, [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]), 2), "share>=1", round((v >= 1).mean(), 3), "share>=2", round((v >= 2).mean(), 3))
attrs = ItemAttributes.from_tables(tables.relation_types, tables.relations, n)
shared = attrs.shared(h, t, attrs.groups)
m = json.load(open(f"metrics/{ds}/discover.json"))["readout"]
sig = {tt["id"]: max(m["attributes_shown"], key=lambda a: tt["attributes"][a]["lift_random"]) for tt in m["types"] if tt["confident"]}
out = {}
for name, s in [("prob", prob.astype(np.float64)), ("logodds", logodds), ("margin", margin), ("recon", recon), ("recon_min", np.minimum(recon, recon_rev)), ("raw", raw), ("cos", cos), ("inter", inter), ("pct", pct), ("pct_min", np.minimum(pct, pct_rev)), ("cos_x_recon", np.argsort(np.argsort(cos)) + np.argsort(np.argsort(np.minimum(recon, recon_rev)))), ("zsum", zsum), ("cos_x_logodds", np.argsort(np.argsort(cos)) + np.argsort(np.argsort(logodds)))]:
    wins = 0; rows = []
    for rid, a_ in sig.items():
        sel = np.flatnonzero(rel == rid)
        key = h[sel] * (n + 1) + t[sel]
        order = sel[np.lexsort((key, -s[sel]))]  # strongest first
        dec = np.array_split(order, 10)
        k = np.array([shared[a_][d].sum() for d in dec]); nn = np.array([len(d) for d in dec])
        lo, hi = wilson(k, nn)
        win = lo[0] > hi[-1]
        wins += win
        rows.append(f"  {rid} {a_:9s} top {k[0]/nn[0]:.3f} [{lo[0]:.3f},{hi[0]:.3f}] bottom {k[-1]/nn[-1]:.3f} [{lo[-1]:.3f},{hi[-1]:.3f}] {'WIN' if win else ''} deciles " + " ".join(f"{x:.2f}" for x in k / nn))
    print(f"{ds} {name}: {wins}/{len(sig)} types top decile above bottom (CIs apart)")
    if name in sys.argv[2:]:
        print("\n".join(rows))
