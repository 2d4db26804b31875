"""Train and cross-validate the gray-zone pair verifier (bench/semcache_verifier.py) on pairs.

Protocol as `manage.py eval_cache`: every text_a stored in one namespace, every text_b queried;
the decision sees each query's 4 nearest stored prompts (exact search). For every candidate with
cosine >= --floor that no hard guard refuses, the verifier (a small decomposable-attention head
over the frozen MiniLM token vectors, plus cosine, the lexical and the alignment features) gives
a penalty >= 0 on the cosine scale: score = cosine - penalty. The best score of the 4 wins if it
reaches the threshold.

Honesty: 5 folds split by connected component of ALL labelled pairs (no text on both sides of a
split). For fold k the verifier is trained on candidate rows whose query and stored prompt both
lie outside fold k and scores fold k's queries against the full store (every text_a: as many
distractors as eval_cache); fold k's threshold is the highest-hit-rate one with precision >=
--target on the other folds' out-of-fold scores. Pooled held-out numbers are the headline, printed
beside cosine + hard guards and the configured linear alignment model on the same folds.

  python bench/semcache_fit_verifier.py ../shared/data/qqp_pairs_dev.jsonl --train-floor 0.90 \
      --proj 32 --hidden 32 --epochs 10 --drop 0.2       # CV (the best run: 0.353 @ 0.951)
  python bench/semcache_fit_verifier.py ../shared/data/qqp_pairs_dev.jsonl --epochs 0  # baselines
  python bench/semcache_fit_verifier.py - --ood tests/unit/semcache/data/ood_pairs.jsonl
Not adopted (docs/semantic-cache.md "Pair-trained verifier"): --write puts the full-data weights
in bench/.cache, not semcache/. Token vectors (torch, hidden layer --layer) are cached in
bench/.cache (git-ignored). Training: torch on CPU, 2 threads; scoring: bench/semcache_verifier.py
(numpy, as the gateway would run it).
"""

import argparse
import hashlib
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

TOP_K = 4
FOLDS = 5
MAX_TOKENS = 64


def _key(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]


def token_table(texts: list[str], layer: int, cache_dir: Path):
    """Return (offsets, fp16 token matrix) of `texts`' token vectors at hidden layer `layer`
    (6 = the last, what the gateway computes), without [CLS]/[SEP], at most MAX_TOKENS each."""
    path = cache_dir / f"verifier-tokens-{_key(len(texts), texts[0], texts[-1], layer)}.npz"
    if path.exists():
        data = np.load(path)
        return data["offsets"], data["tokens"]
    import torch
    from transformers import AutoModel, AutoTokenizer

    from semcache.embedder import model_path

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path()))
    model = AutoModel.from_pretrained(str(model_path())).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks: list[np.ndarray | None] = [None] * len(texts)
    started = time.perf_counter()
    for n, start in enumerate(range(0, len(order), 128)):
        idx = order[start:start + 128]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                          max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch, output_hidden_states=True).hidden_states[layer].numpy()
        lengths = batch["attention_mask"].sum(1).tolist()
        for row, i in enumerate(idx):
            chunks[i] = hidden[row, 1:lengths[row] - 1][:MAX_TOKENS].astype(np.float16)
        if n % 50 == 0:
            done = start + len(idx)
            print(f"  tokens {done}/{len(texts)} {done / (time.perf_counter() - started):.0f}/s",
                  flush=True)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    tokens = np.concatenate(chunks)
    np.savez(path, offsets=offsets, tokens=tokens)
    return offsets, tokens


def build(pairs_path: Path, floor: float, cache_dir: Path) -> dict:
    """Return everything the fit needs: texts, candidate rows with features, folds, labels."""
    from bench.semcache_fit_alignment import nearest, protocol_texts
    from semcache.alignment import align, token_weights
    from semcache.evaluation import _Components, load_pairs
    from semcache.guards import compare
    from semcache.namespaces import normalize_text

    pairs = load_pairs(pairs_path)
    dup = _Components()
    every = _Components()
    for p in pairs:
        every.union(p.text_a, p.text_b)
        if p.label:
            dup.union(p.text_a, p.text_b)
    stored, queries, sv, qv = protocol_texts(pairs, cache_dir)
    stored_norm = {normalize_text(t) for t in stored}
    exact = np.array([normalize_text(q) in stored_norm for q in queries])

    path = cache_dir / f"verifier-rows-{_key(pairs_path.stat().st_mtime_ns, floor, TOP_K)}.npz"
    if path.exists():
        data = dict(np.load(path))
    else:
        top_i, top_s = nearest(qv, sv)
        rows = [(qi, j, int(top_i[qi, j]), float(top_s[qi, j]))
                for qi in range(len(queries)) if not exact[qi]
                for j in range(TOP_K) if top_s[qi, j] >= floor]
        data = {"query": np.array([r[0] for r in rows]), "rank": np.array([r[1] for r in rows]),
                "stored": np.array([r[2] for r in rows]),
                "cosine": np.array([r[3] for r in rows], dtype=np.float32)}
        lexical = np.zeros((len(rows), 6), dtype=np.float32)
        refused = np.zeros(len(rows), dtype=bool)
        for n, (qi, _, si, _) in enumerate(rows):
            features = compare(queries[qi], stored[si])
            refused[n] = features.refused is not None
            lexical[n] = features.vector()
        data.update(lexical=lexical, refused=refused)
        np.savez(path, **data)
    # Texts the verifier sees: every query and stored prompt of a candidate row.
    texts = list(dict.fromkeys([queries[i] for i in data["query"]]
                               + [stored[i] for i in data["stored"]]))
    position = {t: i for i, t in enumerate(texts)}
    data["q_text"] = np.array([position[queries[i]] for i in data["query"]])
    data["s_text"] = np.array([position[stored[i]] for i in data["stored"]])
    weights = [token_weights(t)[:MAX_TOKENS] for t in texts]
    data["correct"] = np.array([
        normalize_text(queries[a]) == normalize_text(stored[b]) or dup.find(queries[a])
        == dup.find(stored[b]) for a, b in zip(data["query"], data["stored"], strict=True)])
    fold = lambda text: zlib.crc32(every.find(text).encode()) % FOLDS  # noqa: E731
    return {
        "rows": data, "texts": texts, "weights": weights, "queries": queries, "stored": stored,
        "labels": np.array([p.label for p in pairs]), "exact": exact,
        "query_fold": np.array([fold(q) for q in queries]),
        "stored_fold": np.array([fold(s) for s in stored]),
        "align": align,
    }


def alignment_features(offsets, tokens, weights, q_text, s_text, align) -> np.ndarray:
    """Return the 6 alignment features (semcache/alignment.py) of every candidate row."""
    out = np.zeros((len(q_text), 6), dtype=np.float32)
    for n, (a, b) in enumerate(zip(q_text, s_text, strict=True)):
        ta = tokens[offsets[a]:offsets[a + 1]].astype(np.float32)
        tb = tokens[offsets[b]:offsets[b + 1]].astype(np.float32)
        out[n] = align(ta, weights[a], tb, weights[b]).vector()
    return out


class Head:
    """The torch twin of bench.semcache_verifier.Verifier (same parameter names and maths)."""

    def __init__(self, dim: int, proj: int, hidden: int, n_scalar: int, seed: int):
        import torch

        torch.manual_seed(seed)
        nn = torch.nn
        self.torch = torch
        self.proj = nn.Linear(dim, proj, bias=False)
        self.compare = nn.Linear(4 * proj, hidden)
        self.mix = nn.Linear(3 * hidden + n_scalar, hidden)
        self.out = nn.Linear(hidden, 1)
        # Start as "penalty ~ 0.02 everywhere" (softplus(-4)): plain cosine, then learn.
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, -4.0)
        self.scale = nn.Parameter(torch.tensor(30.0))
        self.offset = nn.Parameter(torch.tensor(0.9))
        self.modules = nn.ModuleList([self.proj, self.compare, self.mix, self.out])

    def parameters(self):
        return [*self.modules.parameters(), self.scale, self.offset]

    def side(self, h, hm, other, om, w, drop):
        torch = self.torch
        e = h @ other.transpose(1, 2) / h.shape[-1] ** 0.5
        e = e.masked_fill(~om[:, None, :], -1e4)
        aligned = torch.softmax(e, dim=-1) @ other
        c = torch.relu(self.compare(torch.cat([h, aligned, h - aligned, h * aligned], -1)))
        c = torch.nn.functional.dropout(c, drop, self.training)
        wm = (w * hm).unsqueeze(-1)
        mean = (c * wm).sum(1) / wm.sum(1).clamp_min(1e-6)
        mx = c.masked_fill(~hm.unsqueeze(-1), 0.0).max(1).values
        return mean, mx

    def penalty(self, a, am, wa, b, bm, wb, scalars, drop=0.0):
        torch = self.torch
        a = torch.nn.functional.normalize(a, dim=-1)
        b = torch.nn.functional.normalize(b, dim=-1)
        ha, hb = self.proj(a), self.proj(b)
        mean_a, max_a = self.side(ha, am, hb, bm, wa, drop)
        mean_b, max_b = self.side(hb, bm, ha, am, wb, drop)
        pooled = torch.cat([mean_a + mean_b, (mean_a - mean_b).abs(), max_a + max_b], -1)
        x = torch.relu(self.mix(torch.cat([pooled, scalars], -1)))
        x = torch.nn.functional.dropout(x, drop, self.training)
        return torch.nn.functional.softplus(self.out(x).squeeze(-1))

    def state(self) -> dict:
        return {
            "proj": self.proj.weight.detach().numpy().T.copy(),
            "compare_w": self.compare.weight.detach().numpy().T.copy(),
            "compare_b": self.compare.bias.detach().numpy().copy(),
            "mix_w": self.mix.weight.detach().numpy().T.copy(),
            "mix_b": self.mix.bias.detach().numpy().copy(),
            "out_w": self.out.weight.detach().numpy()[0].copy(),
            "out_b": self.out.bias.detach().numpy().copy(),
        }


def _batch(ids_a, ids_b, offsets, tokens, weights):
    """Return padded (tokens, mask, weights) of both sides of a batch of rows."""
    def pad(ids):
        n = max(offsets[i + 1] - offsets[i] for i in ids)
        n = max(int(n), 1)
        x = np.zeros((len(ids), n, tokens.shape[1]), dtype=np.float32)
        m = np.zeros((len(ids), n), dtype=bool)
        w = np.zeros((len(ids), n), dtype=np.float32)
        for r, i in enumerate(ids):
            t = tokens[offsets[i]:offsets[i + 1]]
            x[r, :len(t)] = t
            m[r, :len(t)] = True
            w[r, :len(t)] = weights[i][:len(t)]
        return x, m, w
    return pad(ids_a), pad(ids_b)


def train(data, rows_idx, *, epochs, batch, lr, wd, drop, proj, hidden, seed=0) -> "Head":
    import torch

    torch.set_num_threads(2)
    r = data["rows"]
    head = Head(data["tokens"].shape[1], proj, hidden, data["scalars"].shape[1], seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    rng = np.random.default_rng(seed)
    y_all = torch.from_numpy(r["correct"].astype(np.float32))
    cos_all = torch.from_numpy(r["cosine"].astype(np.float32))
    sc_all = torch.from_numpy(data["scalars"])
    steps = epochs * ((len(rows_idx) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    head.training = True
    for epoch in range(epochs):
        perm = rng.permutation(rows_idx)
        total, started = 0.0, time.perf_counter()
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            qa, qb = r["q_text"][idx], r["s_text"][idx]
            if rng.random() < 0.5:  # the verifier is symmetric; swap sides as augmentation
                qa, qb = qb, qa
            (a, am, wa), (b, bm, wb) = _batch(qa, qb, data["offsets"], data["tokens"],
                                              data["weights"])
            pen = head.penalty(torch.from_numpy(a), torch.from_numpy(am), torch.from_numpy(wa),
                               torch.from_numpy(b), torch.from_numpy(bm), torch.from_numpy(wb),
                               sc_all[idx], drop)
            t = torch.from_numpy(idx)
            logit = head.scale * (cos_all[t] - pen - head.offset)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y_all[t])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"    epoch {epoch} loss {total / len(perm):.4f} "
              f"({time.perf_counter() - started:.0f}s)", flush=True)
    head.training = False
    return head


def predict(head, data, rows_idx, batch=512) -> np.ndarray:
    """Return the penalty of each row in rows_idx (numpy inference, as the gateway runs it)."""
    from bench.semcache_verifier import Verifier

    verifier = Verifier(head.state())
    r = data["rows"]
    out = np.zeros(len(rows_idx), dtype=np.float32)
    for start in range(0, len(rows_idx), batch):
        idx = rows_idx[start:start + batch]
        (a, am, wa), (b, bm, wb) = _batch(r["q_text"][idx], r["s_text"][idx], data["offsets"],
                                          data["tokens"], data["weights"])
        out[start:start + len(idx)] = verifier.penalty_batch(a, am, wa, b, bm, wb,
                                                             data["scalars"][idx])
    return out


def scores(data, penalty_rows, penalty) -> np.ndarray:
    """Return the score (cosine - penalty) of every row; -inf where not computed."""
    out = np.full(len(data["rows"]["cosine"]), -np.inf)
    out[penalty_rows] = data["rows"]["cosine"][penalty_rows] - penalty
    return out


def sweep(data, score, thresholds, query_mask):
    from bench.semcache_fit_alignment import simulate

    r = data["rows"]
    return simulate(r, score, r["correct"], len(data["queries"]), data["exact"],
                    data["labels"], thresholds, query_mask=query_mask)


def held_out(data, score, k, thresholds, target, pooled, name) -> float:
    """Choose the threshold on the other folds' queries, score fold k, add to `pooled`."""
    chosen = max((row for row in sweep(data, score, thresholds, data["query_fold"] != k)
                  if row[2] >= target), key=lambda row: row[1], default=None)
    t = chosen[0] if chosen else 0.99
    test_q = data["query_fold"] == k
    ((_, hr, prec, fh, hits),) = sweep(data, score, [t], test_q)
    dups = int(data["labels"][test_q].sum())
    pooled["hits"] += hits
    pooled["good"] += round(prec * hits)
    pooled["dup_good"] += round(hr * dups)
    pooled["dups"] += dups
    pooled["queries"] += int(test_q.sum())
    print(f"  fold {k} {name}: threshold {t} (other folds) -> held-out hit rate {hr:.3f} "
          f"precision {prec:.3f} false/1k {fh:.1f}", flush=True)
    return t


def ood_check(path: Path) -> None:
    """Print the configured decision's verdicts on hand-written pairs from other domains (each
    pair a lone candidate at the default threshold) beside plain cosine and cosine + guards."""
    import json

    from django.conf import settings

    from semcache.decision import decide
    from semcache.embedder import get_embedder
    from semcache.guards import compare
    from semcache.index import Candidate

    embedder = get_embedder()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tally = {"configured": [0, 0], "cosine>=0.95": [0, 0], "cosine>=0.968+guards": [0, 0]}
    for row in rows:
        a, b = embedder.embed_sync([row["text_a"], row["text_b"]])
        cosine = float(a @ b)
        verdict = decide(row["text_b"], [Candidate("x", cosine, row["text_a"])],
                         threshold=settings.CACHE_SIMILARITY_THRESHOLD, token_embedder=embedder)
        hits = {"configured": verdict is not None, "cosine>=0.95": cosine >= 0.95,
                "cosine>=0.968+guards": cosine >= 0.968
                and not compare(row["text_b"], row["text_a"]).refused}
        for name, hit in hits.items():
            tally[name][0] += hit and row["label"]
            tally[name][1] += hit and not row["label"]
        print(f"{row['label']} cos={cosine:.3f} "
              f"{' '.join(f'{n}={int(h)}' for n, h in hits.items())}  "
              f"{row['text_a']} | {row['text_b']}")
    positives = sum(r["label"] for r in rows)
    for name, (good, false) in tally.items():
        print(f"{name}: {good}/{positives} paraphrases hit, {false}/{len(rows) - positives} "
              f"non-paraphrases hit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--floor", type=float, default=0.80, help="Gray-zone floor (cosine).")
    parser.add_argument("--target", type=float, default=0.95, help="Precision target.")
    parser.add_argument("--layer", type=int, default=6, help="Hidden layer (6 = last).")
    parser.add_argument("--cv", type=int, default=FOLDS, help="Held-out folds to run (0: none).")
    parser.add_argument("--train-floor", type=float, default=0.80,
                        help="Train on candidate rows with at least this cosine.")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--wd", type=float, default=1e-2)
    parser.add_argument("--drop", type=float, default=0.1)
    parser.add_argument("--proj", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--no-tokens", action="store_true",
                        help="Ablation: zero the token vectors (scalar features only).")
    parser.add_argument("--write", action="store_true",
                        help="Train on all rows; write bench/.cache/verifier.npz.")
    parser.add_argument("--ood", type=Path,
                        help="Only print the shipped decision's verdicts on these pairs.")
    args = parser.parse_args()
    import django

    django.setup()
    if args.ood:
        ood_check(args.ood)
        return
    cache_dir = ROOT / "bench" / ".cache"
    t0 = time.perf_counter()
    data = build(args.pairs, args.floor, cache_dir)
    r = data["rows"]
    print(f"{len(r['cosine'])} candidate rows, {len(data['texts'])} texts "
          f"({time.perf_counter() - t0:.0f}s)", flush=True)
    data["offsets"], data["tokens"] = token_table(data["texts"], args.layer, cache_dir)
    if args.layer == 6:
        last = (data["offsets"], data["tokens"])
    else:
        last = token_table(data["texts"], 6, cache_dir)
    akey = cache_dir / f"verifier-align-{_key(len(r['cosine']), len(data['texts']))}.npy"
    if akey.exists():
        alignment = np.load(akey)
    else:
        alignment = alignment_features(*last, data["weights"], r["q_text"], r["s_text"],
                                       data["align"])
        np.save(akey, alignment)
    from bench.semcache_verifier import scalar_inputs

    data["scalars"] = scalar_inputs(r["cosine"], r["lexical"], alignment)
    if args.no_tokens:
        data["tokens"] = np.zeros_like(data["tokens"][:, :8])
    usable = ~r["refused"]
    qf, sf = data["query_fold"][r["query"]], data["stored_fold"][r["stored"]]
    print(f"{usable.sum()} rows pass the guards, {r['correct'][usable].mean():.3f} correct; "
          f"tokens ready ({time.perf_counter() - t0:.0f}s)", flush=True)
    thresholds = np.round(np.arange(args.floor, 0.995, 0.0025), 4)
    hp = dict(epochs=args.epochs, batch=args.batch, lr=args.lr, wd=args.wd, drop=args.drop,
              proj=args.proj, hidden=args.hidden)
    baseline = scores(data, np.flatnonzero(usable), np.zeros(int(usable.sum())))
    oof = np.full(len(r["cosine"]), -np.inf)  # out-of-fold verifier scores
    took = []
    for k in range(args.cv if args.epochs else 0):  # --epochs 0: the baselines only
        # Trained on rows whose query and stored prompt both lie outside fold k; scores the
        # rows of fold k's queries (against the whole store).
        train_rows = np.flatnonzero(usable & (qf != k) & (sf != k)
                                    & (r["cosine"] >= args.train_floor))
        started = time.perf_counter()
        head = train(data, train_rows, seed=k, **hp)
        took.append(time.perf_counter() - started)
        score_rows = np.flatnonzero(usable & (qf == k))
        oof[score_rows] = scores(data, score_rows, predict(head, data, score_rows))[score_rows]
        print(f"  fold {k}: trained on {len(train_rows)} rows in {took[-1]:.0f}s", flush=True)
    if args.cv == FOLDS:
        chosen_all = []
        from semcache.alignment import IDENTICAL
        from semcache.decision import load_params

        params = load_params()
        linear_penalty = (r["lexical"] @ np.asarray(params.full_lexical)
                          + np.abs(alignment - np.asarray(IDENTICAL)) @ np.asarray(
                              params.full_alignment))
        linear = np.where(usable, r["cosine"] - linear_penalty, -np.inf)
        runs = [("cosine + hard guards", baseline), ("shipped linear alignment model", linear)]
        if args.epochs:  # --epochs 0: the baselines only
            runs.append(("verifier", oof))
        for name, score in runs:
            pooled = {"hits": 0, "good": 0, "dup_good": 0, "dups": 0, "queries": 0}
            chosen = [held_out(data, score, k, thresholds, args.target, pooled, name)
                      for k in range(FOLDS)]
            print(f"CROSS-VALIDATED {name} (pooled held-out): hit rate "
                  f"{pooled['dup_good'] / pooled['dups']:.3f} precision "
                  f"{pooled['good'] / pooled['hits']:.3f} false/1k "
                  f"{1000 * (pooled['hits'] - pooled['good']) / pooled['queries']:.1f}; "
                  f"thresholds {chosen}", flush=True)
            chosen_all = chosen
        if not args.epochs:
            return
        print(f"training time per fold: {np.mean(took):.0f}s")
        all_q = np.ones(len(data["queries"]), dtype=bool)
        print("out-of-fold sweep (threshold, hit rate, precision, false/1k):")
        for t, hr, prec, fh, _ in sweep(data, oof, thresholds, all_q)[40::2]:
            print(f"    {t:.4f}  {hr:.3f}  {prec:.3f}  {fh:.1f}")
    if args.write:
        rows = np.flatnonzero(usable & (r["cosine"] >= args.train_floor))
        started = time.perf_counter()
        head = train(data, rows, seed=0, **hp)
        print(f"full fit: {len(rows)} rows in {time.perf_counter() - started:.0f}s")
        score = scores(data, rows, predict(head, data, rows))
        all_q = np.ones(len(data["queries"]), dtype=bool)
        threshold = float(np.median(chosen_all)) if args.cv == FOLDS else None
        for t, hr, prec, fh, _ in sweep(data, score, thresholds, all_q)[::4]:
            print(f"    {t:.4f}  {hr:.3f}  {prec:.3f}  {fh:.1f}")
        # Not adopted (docs/semantic-cache.md): the weights stay out of semcache/.
        out = cache_dir / "verifier.npz"
        np.savez(out, **head.state(), fitted_threshold=np.float32(threshold or np.nan))
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB), CV threshold {threshold}")


if __name__ == "__main__":
    main()
