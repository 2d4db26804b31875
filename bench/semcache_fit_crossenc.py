"""Train and evaluate a gray-zone cross-encoder (all-MiniLM-L6-v2, top layers fine-tuned) on pairs.

The cross-encoder reads `[CLS] query [SEP] candidate [SEP]` jointly (max 64 tokens). Its lower
layers stay the packaged all-MiniLM-L6-v2 weights (frozen); only the top --top layers and a
linear head are trained, so what would ship is those layers (a delta on the packaged model). The
score of a candidate is a logit:

    logit = scale * (cosine - offset) + head(mean-pooled top-layer output)

with the head started at zero, so training starts from the cosine ranking and learns what the
joint reading adds. A candidate is scored only in the gray zone: cosine >= --gray and no hard
guard refuses it (exact repeats hit as eval_cache does). The best logit of a query's top-4 wins
if it reaches the threshold.

Protocol (as bench/semcache_fit_verifier.py): every text_a stored, every text_b queried, the
top-4 of exact search; folds by connected component of ALL labelled pairs. For the test fold the
model trains on candidate rows whose query and stored prompt both lie outside it, minus an inner
validation slice of those components (--val-share); the threshold is the highest-hit-rate one
with precision >= --target on the validation queries, never on the test fold; the test fold's
queries are then scored against the whole store. Baselines on the same fold through the same
code: cosine + hard guards (threshold from the same validation queries) and the configured
decision (semcache.decision.decide at CACHE_SIMILARITY_THRESHOLD, with the token pass).

Speed: the frozen lower layers run once per row and their output is cached in bench/.cache
(git-ignored), so an epoch costs the top layers' forward and backward only.

  python bench/semcache_fit_crossenc.py --speed                       # pairs/s, full vs top N
  python bench/semcache_fit_crossenc.py ../shared/data/qqp_pairs_dev.jsonl --folds 0 --top 2
Not wired into the gateway (docs/semantic-cache.md "Cross-encoder"): see the numbers there.
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MAX_LEN = 64
LAYERS = 6


def _key(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]


def load_model():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from semcache.embedder import model_path

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path()))
    model = AutoModel.from_pretrained(str(model_path()), attn_implementation="eager")
    return tokenizer, model


def additive_mask(lengths, n):
    import torch

    mask = torch.arange(n)[None, :] < torch.as_tensor(lengths)[:, None]
    return mask, (~mask).float()[:, None, None, :] * -1e4


class Top:
    """The trainable part: the top layers of the encoder and the head."""

    def __init__(self, model, top: int):
        import torch

        self.torch = torch
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.encoder.layer[LAYERS - top:]))
        self.head = torch.nn.Linear(model.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.scale = torch.nn.Parameter(torch.tensor(30.0))
        self.offset = torch.nn.Parameter(torch.tensor(0.95))
        self.modules = torch.nn.ModuleList([self.layers, self.head])

    def train(self, flag: bool):
        self.modules.train(flag)

    def logit(self, hidden, lengths, cosine):
        mask, additive = additive_mask(lengths, hidden.shape[1])
        for layer in self.layers:
            out = layer(hidden, additive)
            hidden = out[0] if isinstance(out, tuple) else out
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1)
        return self.scale * (cosine - self.offset) + self.head(pooled).squeeze(-1)


def lower_states(tokenizer, model, pairs, bottom: int, path: Path):
    """Return (offsets, fp16 states, lengths) of the pairs after the first `bottom` layers."""
    if path.exists():
        data = np.load(path)
        return data["offsets"], data["states"], data["lengths"]
    import torch

    enc = tokenizer([q for q, _ in pairs], [s for _, s in pairs], truncation=True,
                    max_length=MAX_LEN)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    chunks = [None] * len(pairs)
    model.eval()
    started = time.perf_counter()
    for n, start in enumerate(range(0, len(order), 64)):
        idx = order[start:start + 64]
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
        with torch.inference_mode():
            hidden = model.embeddings(input_ids=batch["input_ids"],
                                      token_type_ids=batch["token_type_ids"])
            _, additive = additive_mask(lengths[idx], hidden.shape[1])
            for layer in model.encoder.layer[:bottom]:
                out = layer(hidden, additive)
                hidden = out[0] if isinstance(out, tuple) else out
        for row, i in enumerate(idx):
            chunks[i] = hidden[row, :lengths[i]].numpy().astype(np.float16)
        if n % 20 == 0:
            done = start + len(idx)
            print(f"  lower layers {done}/{len(pairs)} "
                  f"{done / (time.perf_counter() - started):.1f} pairs/s", flush=True)
    offsets = np.zeros(len(pairs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    states = np.concatenate(chunks)
    np.savez(path, offsets=offsets, states=states, lengths=lengths)
    return offsets, states, lengths


def padded(offsets, states, lengths, idx):
    import torch

    n = int(lengths[idx].max())
    x = np.zeros((len(idx), n, states.shape[1]), dtype=np.float32)
    for r, i in enumerate(idx):
        x[r, :lengths[i]] = states[offsets[i]:offsets[i + 1]]
    return torch.from_numpy(x), lengths[idx]


def train(top: Top, cache, idx, y, cosine, *, epochs, batch, lr, head_lr, log_every=20):
    import torch

    params = [{"params": top.layers.parameters(), "lr": lr},
              {"params": [*top.head.parameters(), top.scale, top.offset], "lr": head_lr}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    steps = epochs * ((len(idx) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, head_lr], total_steps=steps,
                                                pct_start=0.1)
    rng = np.random.default_rng(0)
    lengths = cache[2]
    top.train(True)
    for epoch in range(epochs):
        # Batches of similar length (dynamic padding), in random order.
        perm = rng.permutation(idx)
        perm = perm[np.argsort(lengths[perm] // 4, kind="stable")]
        groups = [perm[s:s + batch] for s in range(0, len(perm), batch)]
        rng.shuffle(groups)
        total, seen, started = 0.0, 0, time.perf_counter()
        for n, group in enumerate(groups):
            hidden, lens = padded(*cache, group)
            logit = top.logit(hidden, lens, torch.from_numpy(cosine[group]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, torch.from_numpy(y[group].astype(np.float32)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(group)
            seen += len(group)
            if n % log_every == 0:
                rate = seen / (time.perf_counter() - started)
                print(f"    epoch {epoch} step {n}/{len(groups)} loss {total / seen:.4f} "
                      f"{rate:.1f} pairs/s", flush=True)
        print(f"    epoch {epoch} loss {total / seen:.4f} ({time.perf_counter() - started:.0f}s)",
              flush=True)
    top.train(False)


def predict(top: Top, cache, idx, cosine, batch=128) -> np.ndarray:
    import torch

    out = np.zeros(len(idx), dtype=np.float32)
    order = np.argsort(cache[2][idx], kind="stable")
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            part = order[s:s + batch]
            hidden, lens = padded(*cache, idx[part])
            out[part] = top.logit(hidden, lens, torch.from_numpy(cosine[idx[part]])).numpy()
    return out


def configured_hits(data, query_ids, threshold):
    """Return {query: accepted row} of the configured decision (decide + token pass)."""
    from semcache.decision import decide
    from semcache.embedder import get_embedder
    from semcache.index import Candidate

    r = data["rows"]
    embedder = get_embedder()
    by_query: dict[int, list[int]] = {}
    for row, q in enumerate(r["query"]):
        by_query.setdefault(int(q), []).append(row)
    accepted = {}
    for q in query_ids:
        rows = by_query.get(int(q), [])
        candidates = [Candidate(str(row), float(r["cosine"][row]), data["stored"][r["stored"][row]])
                      for row in rows]
        verdict = decide(data["queries"][q], candidates, threshold=threshold,
                         token_embedder=embedder)
        if verdict is not None:
            accepted[int(q)] = int(verdict.candidate.entry_id)
    return accepted


def tally(data, mask, hit_rows: dict) -> tuple:
    """Return (hit rate, precision, false/1k, hits) of a decision given as {query: row}."""
    r = data["rows"]
    labels, exact = data["labels"], data["exact"]
    hits = good = dup_good = 0
    for q in np.flatnonzero(mask):
        if exact[q]:
            hits, good, dup_good = hits + 1, good + 1, dup_good + int(labels[q])
        elif q in hit_rows:
            ok = bool(r["correct"][hit_rows[q]])
            hits, good, dup_good = hits + 1, good + ok, dup_good + (ok and labels[q] == 1)
    dups = int(labels[mask].sum())
    return dup_good / max(dups, 1), good / max(hits, 1), 1000 * (hits - good) / mask.sum(), hits


def ood_scores(top: Top, tokenizer, model, path: Path, gray: float, threshold: float):
    """Return (paraphrases hit, near misses hit, rows) of hand-written pairs, each pair a lone
    candidate (text_b the query, text_a the stored prompt): guards, gray zone, then the logit."""
    import torch

    from semcache.embedder import get_embedder
    from semcache.guards import compare

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    vectors = get_embedder().embed_sync([t for row in rows for t in (row["text_a"],
                                                                     row["text_b"])])
    pairs = [(row["text_b"], row["text_a"]) for row in rows]
    enc = tokenizer([q for q, _ in pairs], [s for _, s in pairs], truncation=True,
                    max_length=MAX_LEN, padding=True, return_tensors="pt")
    bottom = LAYERS - len(top.layers)
    with torch.inference_mode():
        hidden = model.embeddings(input_ids=enc["input_ids"],
                                  token_type_ids=enc["token_type_ids"])
        lengths = enc["attention_mask"].sum(1).numpy()
        _, additive = additive_mask(lengths, hidden.shape[1])
        for layer in model.encoder.layer[:bottom]:
            out = layer(hidden, additive)
            hidden = out[0] if isinstance(out, tuple) else out
        cosine = np.array([float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(rows))],
                          dtype=np.float32)
        logits = top.logit(hidden, lengths, torch.from_numpy(cosine)).numpy()
    good = bad = 0
    out = []
    for row, c, logit in zip(rows, cosine, logits, strict=True):
        hit = c >= gray and not compare(row["text_b"], row["text_a"]).refused \
            and logit >= threshold
        good += hit and row["label"] == 1
        bad += hit and row["label"] == 0
        out.append({"label": row["label"], "cosine": round(float(c), 3),
                    "logit": round(float(logit), 2), "hit": bool(hit), "text_a": row["text_a"],
                    "text_b": row["text_b"]})
    return good, bad, out


def speed(args):
    """Print training pairs/s (forward + backward, dynamic padding) at the QQP pair lengths."""
    import torch

    from semcache.evaluation import load_pairs

    tokenizer, model = load_model()
    pairs = load_pairs(args.pairs)[: args.speed_pairs]
    enc = tokenizer([p.text_b for p in pairs], [p.text_a for p in pairs], truncation=True,
                    max_length=MAX_LEN)
    lengths = [len(x) for x in enc["input_ids"]]
    print(f"{len(pairs)} pairs, {np.mean(lengths):.1f} tokens on average, max {max(lengths)}")
    for top in (6, 2, 1):
        m = copy.deepcopy(model)
        for p in m.parameters():
            p.requires_grad = False
        trainable = [p for layer in m.encoder.layer[LAYERS - top:] for p in layer.parameters()]
        for p in trainable:
            p.requires_grad = True
        head = torch.nn.Linear(384, 1)
        opt = torch.optim.AdamW([*trainable, *head.parameters()], lr=1e-5)
        m.train()
        started = time.perf_counter()
        for s in range(0, len(pairs), 32):
            batch = tokenizer.pad({k: enc[k][s:s + 32] for k in enc}, return_tensors="pt")
            out = m(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            logit = head((out * mask).sum(1) / mask.sum(1)).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, torch.ones_like(logit))
            opt.zero_grad()
            loss.backward()
            opt.step()
        rate = len(pairs) / (time.perf_counter() - started)
        print(f"train top {top} of 6 layers (lower layers run each step): {rate:.1f} pairs/s",
              flush=True)
    # What a lookup would pay: one query against its (up to) 4 gray-zone candidates.
    model.eval()
    times = []
    with torch.inference_mode():
        for s in range(0, len(pairs) - 4, 4):
            batch = tokenizer.pad({k: enc[k][s:s + 4] for k in enc}, return_tensors="pt")
            started = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - started)
    print(f"inference, 4 pairs per call (torch, all 6 layers): p50 "
          f"{1000 * np.percentile(times, 50):.1f} ms, p99 {1000 * np.percentile(times, 99):.1f} "
          f"ms, {4 * len(times) / sum(times):.0f} pairs/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--speed", action="store_true", help="Only measure training speed.")
    parser.add_argument("--speed-pairs", type=int, default=256)
    parser.add_argument("--floor", type=float, default=0.80, help="Candidate table floor.")
    parser.add_argument("--gray", type=float, default=0.90,
                        help="Score candidates with at least this cosine (the gray zone).")
    parser.add_argument("--top", type=int, default=2, help="Trained top layers.")
    parser.add_argument("--folds", type=str, default="0", help="Test folds, e.g. 0 or 0,1,2.")
    parser.add_argument("--val-share", type=int, default=5,
                        help="1/N of the training components is the validation slice.")
    parser.add_argument("--target", type=float, default=0.95, help="Precision target.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--out", type=Path, help="Write the results (JSON) here.")
    parser.add_argument("--ood", type=Path,
                        default=ROOT / "tests/unit/semcache/data/ood_pairs.jsonl",
                        help="Hand-written pairs from other domains, scored at each fold's "
                        "threshold.")
    args = parser.parse_args()
    import django

    django.setup()
    if args.speed:
        speed(args)
        return
    import torch
    from django.conf import settings

    from bench.semcache_fit_alignment import simulate
    from bench.semcache_fit_verifier import build
    from semcache.evaluation import _Components, load_pairs

    cache_dir = ROOT / "bench" / ".cache"
    t0 = time.perf_counter()
    data = build(args.pairs, args.floor, cache_dir)
    r = data["rows"]
    every = _Components()
    for p in load_pairs(args.pairs):
        every.union(p.text_a, p.text_b)

    def val_of(text):
        return zlib.crc32(("val:" + every.find(text)).encode()) % args.val_share == 0

    q_val = np.array([val_of(q) for q in data["queries"]])
    s_val = np.array([val_of(s) for s in data["stored"]])
    usable = ~r["refused"]
    gray = np.flatnonzero(usable & (r["cosine"] >= args.gray))
    print(f"{len(r['cosine'])} candidate rows, {len(gray)} in the gray zone past the guards "
          f"({r['correct'][gray].mean():.3f} correct) ({time.perf_counter() - t0:.0f}s)",
          flush=True)
    tokenizer, model = load_model()
    bottom = LAYERS - args.top
    pairs = [(data["queries"][r["query"][i]], data["stored"][r["stored"][i]]) for i in gray]
    path = cache_dir / f"crossenc-lower-{_key(len(pairs), pairs[0], pairs[-1], bottom)}.npz"
    started = time.perf_counter()
    cache = lower_states(tokenizer, model, pairs, bottom, path)
    print(f"lower {bottom} layers of {len(pairs)} pairs ready "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    cosine = r["cosine"][gray].astype(np.float32)
    y = r["correct"][gray]
    qf, sf = data["query_fold"][r["query"][gray]], data["stored_fold"][r["stored"][gray]]
    qv, sv = q_val[r["query"][gray]], s_val[r["stored"][gray]]
    thresholds = np.round(np.arange(-8, 8, 0.05), 3)
    cos_thresholds = np.round(np.arange(args.gray, 0.995, 0.001), 4)
    results = []
    for k in [int(x) for x in args.folds.split(",") if x != ""]:
        test_q = data["query_fold"] == k
        val_q = (data["query_fold"] != k) & q_val
        train_rows = np.flatnonzero((qf != k) & (sf != k) & ~qv & ~sv)
        top = Top(model, args.top)
        torch.manual_seed(k)
        started = time.perf_counter()
        print(f"fold {k}: training on {len(train_rows)} rows ({y[train_rows].mean():.3f} "
              f"correct)", flush=True)
        train(top, cache, train_rows, y, cosine, epochs=args.epochs, batch=args.batch,
              lr=args.lr, head_lr=args.head_lr)
        took = time.perf_counter() - started
        score_rows = np.flatnonzero((qf == k) | ((qf != k) & qv))
        logits = predict(top, cache, score_rows, cosine)
        score = np.full(len(r["cosine"]), -np.inf)
        score[gray[score_rows]] = logits
        base = np.where(usable, r["cosine"], -np.inf)
        fold = {"fold": int(k), "train_rows": int(len(train_rows)),
                "train_seconds": round(took), "epochs": args.epochs, "top": args.top}
        for name, s, grid in (("crossenc", score, thresholds),
                              ("cosine+guards", base, cos_thresholds)):
            n_q = len(data["queries"])
            val = simulate(r, s, r["correct"], n_q, data["exact"], data["labels"], grid,
                           query_mask=val_q)
            ok = [row for row in val if row[2] >= args.target]
            chosen = max(ok, key=lambda row: row[1])[0] if ok else float(grid[-1])
            ((t, hr, prec, fh, hits),) = simulate(r, s, r["correct"], n_q, data["exact"],
                                                  data["labels"], [chosen], query_mask=test_q)
            vrow = next(row for row in val if row[0] == round(float(chosen), 3))
            fold[name] = {"threshold": chosen, "hit_rate": round(hr, 4),
                          "precision": round(prec, 4), "false_per_1k": round(fh, 2),
                          "hits": hits, "val_hit_rate": round(vrow[1], 4),
                          "val_precision": round(vrow[2], 4)}
            sweep = simulate(r, s, r["correct"], n_q, data["exact"], data["labels"], grid,
                             query_mask=test_q)
            # The held-out curve (for reading only: the threshold above never saw it).
            fold[name]["test_best_at_target"] = max(
                (row[1] for row in sweep if row[2] >= args.target), default=0.0)
            print(f"fold {k} {name}: {fold[name]}", flush=True)
        threshold = settings.CACHE_SIMILARITY_THRESHOLD
        accepted = configured_hits(data, np.flatnonzero(test_q), threshold)
        hr, prec, fh, hits = tally(data, test_q, accepted)
        fold["configured"] = {"threshold": threshold, "hit_rate": round(hr, 4),
                              "precision": round(prec, 4), "false_per_1k": round(fh, 2),
                              "hits": hits}
        print(f"fold {k} configured: {fold['configured']}", flush=True)
        good, bad, ood = ood_scores(top, tokenizer, model, args.ood, args.gray,
                                    fold["crossenc"]["threshold"])
        fold["ood"] = {"paraphrases_hit": int(good), "near_misses_hit": int(bad), "pairs": ood}
        print(f"fold {k} other domains: {good} paraphrases hit, {bad} near misses hit; "
              f"near misses that hit: {[p['text_b'] for p in ood if p['hit'] and not p['label']]}",
              flush=True)
        results.append(fold)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
