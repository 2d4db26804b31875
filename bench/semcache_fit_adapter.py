"""Fit a linear adapter W for the cache's embeddings and check it on held-out folds.

Experiment only (not adopted, docs/semantic-cache.md "Evaluation"): cosine(normalize(u @ W),
normalize(v @ W)) in place of cosine(u, v). W starts at the identity and is trained (torch, CPU)
with an in-batch contrastive loss on duplicate pairs (the labelled non-duplicates as extra hard
negatives) plus a logistic loss on every labelled pair's cosine. Folds split by connected
component of *all* pairs (no text on both sides). The held-out fold is scored with the eval
protocol (store text_a, query text_b, top-4 neighbours through the real decision and guards)
over a threshold sweep; --full-store stores every text_a of the file, so held-out queries face
as many distractors as `manage.py eval_cache` (without it the numbers are optimistic).

  python bench/semcache_fit_adapter.py ../shared/data/qqp_pairs_dev.jsonl --cv 5 --full-store
  python bench/semcache_fit_adapter.py PAIRS.jsonl --cv 0 --save bench/.cache/adapter.npy
Embeddings are read from bench/.cache/qqp_vecs.npy + qqp_texts.json (git-ignored).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")


class UF:
    def __init__(self, n):
        self.p = list(range(n))

    def find(self, x):
        while self.p[x] != x:
            self.p[x] = self.p[self.p[x]]
            x = self.p[x]
        return x

    def union(self, a, b):
        self.p[self.find(a)] = self.find(b)


def train(vecs, a, b, y, *, epochs, batch, lr, reg, dim, hidden=0, seed=0):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    X = torch.from_numpy(vecs)
    d = X.shape[1]
    W = torch.nn.Parameter(torch.eye(d, dim) + 0.0)
    params = [W]
    if hidden:
        mlp = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(),
                                  torch.nn.Linear(hidden, dim))
        torch.nn.init.zeros_(mlp[2].weight)
        torch.nn.init.zeros_(mlp[2].bias)
        params += list(mlp.parameters())

    def fwd(x):
        out = x @ W
        return out + mlp(x) if hidden else out
    scale = torch.nn.Parameter(torch.tensor(20.0))
    bias = torch.nn.Parameter(torch.tensor(0.85))
    opt = torch.optim.Adam(params + [scale, bias], lr=lr)
    a, b, y = (torch.from_numpy(np.asarray(x)) for x in (a, b, y))
    n = len(a)
    eye = torch.eye(d, dim)
    for epoch in range(epochs):
        perm = torch.randperm(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            ua = torch.nn.functional.normalize(fwd(X[a[idx]]), dim=1)
            ub = torch.nn.functional.normalize(fwd(X[b[idx]]), dim=1)
            yy = y[idx].float()
            cos = (ua * ub).sum(1)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(scale * (cos - bias), yy)
            pos = yy > 0
            if pos.sum() > 1:
                logits = (ua[pos] @ ub.T) / 0.05  # positives vs every text_b (hard negs incl.)
                target = torch.nonzero(pos).squeeze(1)
                nce = torch.nn.functional.cross_entropy(logits, target)
                logits2 = (ub[pos] @ ua.T) / 0.05
                nce = 0.5 * (nce + torch.nn.functional.cross_entropy(logits2, target))
            else:
                nce = torch.zeros(())
            loss = nce + bce + reg * ((W - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"  epoch {epoch} loss {total / n:.4f}", flush=True)
    if hidden:
        with torch.no_grad():
            return fwd(X).numpy().astype(np.float32)  # adapted vectors of every text
    return W.detach().numpy().astype(np.float32)


def adapt(vecs, W):
    out = vecs @ W
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def held_out(pairs_idx, texts, vecs, comp, thresholds, k=4, weights=None, store_idx=None):
    """Eval protocol on the given pairs: store text_a's, query text_b's, decide with guards.

    `store_idx`: the stored texts (default: the pairs' text_a); the whole file's text_a makes
    the held-out queries face as many distractors as `manage.py eval_cache` does.
    """
    from semcache.decision import adjusted_similarity
    from semcache.index import Candidate
    from semcache.namespaces import normalize_text

    a_idx = [p[0] for p in pairs_idx] if store_idx is None else store_idx
    stored = list(dict.fromkeys(a_idx))
    S = vecs[stored]
    by_norm = {normalize_text(texts[i]): i for i in stored}
    dup = sum(p[2] for p in pairs_idx)
    res = {t: [0, 0, 0] for t in thresholds}  # hits, correct, correct on duplicates
    plain = {t: [0, 0, 0] for t in thresholds}
    for start in range(0, len(pairs_idx), 2048):
        chunk = pairs_idx[start:start + 2048]
        Q = vecs[[p[1] for p in chunk]]
        sims = Q @ S.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for row, (_, qi, lab) in enumerate(chunk):
            qtext = texts[qi]
            ex = by_norm.get(normalize_text(qtext))
            if ex is not None:
                ok = True  # same text: always a correct hit
                for t in thresholds:
                    for r in (res[t], plain[t]):
                        r[0] += 1
                        r[1] += ok
                        r[2] += ok and lab
                continue
            order = top[row][np.argsort(-sims[row, top[row]])]
            scored = []
            for j in order:
                si = stored[j]
                c = Candidate(str(si), float(sims[row, j]), texts[si])
                extra = {} if weights is None else {"weights": weights}
                s = adjusted_similarity(qtext, c, **extra) \
                    if c.similarity >= min(thresholds) else None
                scored.append((si, c.similarity, s))
            top_si, top_sim = scored[0][0], scored[0][1]
            for t in thresholds:
                best = None
                for si, sim, s in scored:
                    if sim < t:
                        break
                    if s is not None and s >= t and (best is None or s > best[1]):
                        best = (si, s)
                if best is not None:
                    ok = comp[best[0]] == comp[qi]
                    res[t][0] += 1
                    res[t][1] += ok
                    res[t][2] += ok and lab
                if top_sim >= t:
                    ok = comp[top_si] == comp[qi]
                    plain[t][0] += 1
                    plain[t][1] += ok
                    plain[t][2] += ok and lab
    n = len(pairs_idx)

    def rep(r):
        return (r[2] / dup, r[1] / max(1, r[0]), 1000 * (r[0] - r[1]) / n)

    return {t: (rep(res[t]), rep(plain[t])) for t in thresholds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cv", type=int, default=2, help="Held-out folds to score (0: none).")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--reg", type=float, default=0.0)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--hidden", type=int, default=0, help="Residual MLP width (0: linear).")
    parser.add_argument("--full-store", action="store_true",
                        help="Store every text_a of the file, query the held-out fold's text_b.")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()

    import django

    django.setup()
    cache = ROOT / "bench" / ".cache"
    texts = json.load(open(cache / "qqp_texts.json"))
    vecs = np.load(cache / "qqp_vecs.npy").astype(np.float32)
    pos = {t: i for i, t in enumerate(texts)}
    rows = [json.loads(line) for line in open(args.pairs) if line.strip()]
    pairs = [(pos[r["text_a"]], pos[r["text_b"]], int(r["label"])) for r in rows]
    dup_uf, all_uf = UF(len(texts)), UF(len(texts))
    for a, b, lab in pairs:
        all_uf.union(a, b)
        if lab:
            dup_uf.union(a, b)
    comp = [dup_uf.find(i) for i in range(len(texts))]
    groups = np.array([all_uf.find(a) for a, _, _ in pairs])
    uniq, inv = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(0)
    fold_of = rng.integers(0, args.folds, len(uniq))[inv]
    print(f"{len(pairs)} pairs, {len(uniq)} groups, largest {np.bincount(inv).max()} pairs",
          flush=True)
    thresholds = [round(0.86 + 0.005 * i, 3) for i in range(27)]
    for f in range(args.cv):
        tr = [p for p, g in zip(pairs, fold_of, strict=True) if g != f]
        te = [p for p, g in zip(pairs, fold_of, strict=True) if g == f]
        t0 = time.time()
        W = train(vecs, *zip(*tr, strict=True), epochs=args.epochs, batch=args.batch,
                  lr=args.lr, reg=args.reg, dim=args.dim, hidden=args.hidden)
        print(f"fold {f}: train {len(tr)} test {len(te)} ({time.time() - t0:.0f}s)", flush=True)
        store = [p[0] for p in pairs] if args.full_store else None
        base = held_out(te, texts, vecs, comp, thresholds, store_idx=store)
        if args.hidden:
            new = held_out(te, texts, W / np.linalg.norm(W, axis=1, keepdims=True), comp,
                           thresholds, store_idx=store)
        else:
            new = held_out(te, texts, adapt(vecs, W), comp, thresholds, store_idx=store)
        hard = held_out(te, texts, W / np.linalg.norm(W, axis=1, keepdims=True) if args.hidden
                        else adapt(vecs, W), comp, thresholds, weights=(0.0,) * 6,
                        store_idx=store)
        for name, src, col in (("raw decision", base, 0), ("raw plain", base, 1),
                               ("adapted + hard guards only", hard, 0),
                               ("adapted decision", new, 0), ("adapted plain", new, 1)):
            ok = [(src[t][col][0], src[t][col][1], t) for t in thresholds
                  if src[t][col][1] >= 0.95]
            h, p, t = max(ok) if ok else (0, 0, 0)
            print(f"  best at precision >= 0.95, {name}: hit {h:.3f} prec {p:.3f} thr {t}")
        print("  thr    | raw decision hit prec fh/1k | adapted+hard guards | adapted plain")
        for t in thresholds:
            (bh, bp, bf), _ = base[t]
            (ah, ap, af), (ph, pp, pf) = hard[t][0], new[t][1]
            print(f"  {t:.3f} | {bh:.3f} {bp:.3f} {bf:5.1f} | {ah:.3f} {ap:.3f} {af:5.1f} | "
                  f"{ph:.3f} {pp:.3f} {pf:5.1f}", flush=True)
    if args.save:
        W = train(vecs, *zip(*pairs, strict=True), epochs=args.epochs, batch=args.batch,
                  lr=args.lr, reg=args.reg, dim=args.dim, hidden=args.hidden)
        np.save(args.save, W.astype(np.float32))
        print(f"saved {args.save} {W.shape}")


if __name__ == "__main__":
    main()
