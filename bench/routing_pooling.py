"""How the intermediate MiniLM layers are pooled for the router's neighbour members (issue #5).

    OMP_NUM_THREADS=1 DEBUG=1 .venv/bin/python bench/routing_pooling.py \
        [OUTCOMES.jsonl] [--folds 5] [--seed 0] [--repeats 3] [--jobs 2]

Production pools each hidden state as sentence-transformers pools the last one: the mean over
all tokens (special tokens included). A mean lets the many function words and the answer
options' letters dilute what a question is about, so this measures other poolings of the same
forward pass, computed together:

* `max`: the per-dimension maximum over the tokens;
* `idf`: the mean weighted by each word piece's inverse document frequency over the prompts
  (unlabelled text: a deployment has its examples' text), special tokens left out;
* `cls`: the first token's state alone.

Each replaces the mean in production's layer members (words + layers 3, 5 at T = 1.5), and each
is also added beside production's members; every variant is paired with production on the same
splits. Every fit sees its training rows only. Numbers are printed, not asserted. The pooled
states are cached under bench/.cache/ (git-ignored); the first run encodes every prompt once
through the torch model (minutes on 2 cores).
"""

import argparse
import hashlib
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import add_cv_arguments, offline_django_env  # noqa: E402  (needs ROOT on sys.path)

offline_django_env()

POOLINGS = ("mean", "max", "idf", "cls")
LAYERS = (3, 5)
_DATA: dict = {}


def pooled_states(texts: list[str], cache_dir: Path):
    """Return {pooling: (7, n, 384) float32}, every row L2-normalised, for the hidden states 0-6
    of each text (256-token truncation, as the embedder). Cached on disk by content."""
    import numpy as np

    digest = hashlib.sha256("\x1e".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    path = cache_dir / f"router-poolings-{digest}.npz"
    if path.exists():
        with np.load(path) as saved:
            return {name: saved[name] for name in POOLINGS}
    import torch
    from transformers import AutoModel, AutoTokenizer

    from semcache.embedder import model_path

    tokenizer = AutoTokenizer.from_pretrained(str(model_path()))
    model = AutoModel.from_pretrained(str(model_path())).eval()
    encoded = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    df = np.zeros(tokenizer.vocab_size, dtype=np.float64)
    for ids in encoded:
        df[np.unique(ids)] += 1
    idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    idf_t = torch.tensor(idf, dtype=torch.float32)
    out = {name: None for name in POOLINGS}
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # little padding per batch
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            rows = order[start:start + 64]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                              max_length=256, return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"][:, :, None].float()
            ids = batch["input_ids"]
            weights = idf_t[ids] * (~torch.isin(ids, special)).float()
            weights = (weights * batch["attention_mask"].float())[:, :, None]
            for layer, hidden in enumerate(states):
                pooled = {
                    "mean": (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9),
                    "max": hidden.masked_fill(mask == 0, -1e9).max(1).values,
                    "idf": (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9),
                    "cls": hidden[:, 0],
                }
                for name, values in pooled.items():
                    if out[name] is None:
                        out[name] = np.zeros((len(states), len(texts), hidden.shape[-1]),
                                             np.float32)
                    out[name][layer, rows] = values.numpy()
    for values in out.values():
        values /= np.linalg.norm(values, axis=2, keepdims=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def _load(path: str) -> None:
    import django

    django.setup()
    import numpy as np

    from routing.evaluation import load_outcomes

    rows = load_outcomes(path)
    texts = [o.prompt for o in rows]
    prompts = sorted(set(texts))
    row_of = {p: i for i, p in enumerate(prompts)}
    at = [row_of[t] for t in texts]
    states = pooled_states(prompts, ROOT / "bench" / ".cache")
    _DATA.update(texts=texts,
                 states={name: {x: values[x][at] for x in LAYERS}
                         for name, values in states.items()},
                 targets={"w": np.array([o.weak_correct for o in rows], dtype=float),
                          "s": np.array([o.strong_correct for o in rows], dtype=float)})


def _split(task: tuple) -> dict[str, tuple[float, float, float]]:
    """Score every variant on one (train, test) split."""
    import numpy as np
    from django.conf import settings

    from routing.evaluation import curve
    from routing.features import feature_matrix
    from routing.learned import OutcomeModel, _NeighbourMember, neighbour_ladder

    train, test = task
    texts, targets, states = _DATA["texts"], _DATA["targets"], _DATA["states"]
    train_texts, test_texts = [texts[i] for i in train], [texts[i] for i in test]
    train_features, test_features = feature_matrix(train_texts), feature_matrix(test_texts)
    ks = neighbour_ladder(settings.ROUTING_LEARNED_K)
    t = settings.ROUTING_LEARNED_TEMPERATURE
    words, members = {}, {}
    for key, scores in targets.items():
        # One model for every format: the neighbour members here are fitted on all rows too.
        model = OutcomeModel(k=settings.ROUTING_LEARNED_K, formats=False).fit(
            train_texts, states["mean"][LAYERS[0]][train], scores[train])
        words[key] = model.member_logits(test_texts, states["mean"][LAYERS[0]][test],
                                         features=test_features)[0]
        for name in POOLINGS:
            for layer in LAYERS:
                member = _NeighbourMember(states[name][layer][train], scores[train],
                                          train_features, ks=ks, c=0.1)
                members[name, layer, key] = member.logits(states[name][layer][test],
                                                          test_features)

    def score(names: list[tuple[str, int]]) -> np.ndarray:
        total = 1 / (1 + np.exp(-t * words["s"])) - 1 / (1 + np.exp(-t * words["w"]))
        for name, layer in names:
            total = total + (1 / (1 + np.exp(-t * members[name, layer, "s"]))
                             - 1 / (1 + np.exp(-t * members[name, layer, "w"])))
        return total

    production = [("mean", x) for x in LAYERS]
    variants = {"production (mean)": score(production)}
    for name in POOLINGS[1:]:
        variants[f"{name} instead of mean"] = score([(name, x) for x in LAYERS])
        variants[f"{name} beside mean"] = score(production + [(name, x) for x in LAYERS])
    variants["max + idf beside mean"] = score(production + [("max", x) for x in LAYERS]
                                              + [("idf", x) for x in LAYERS])
    out = {}
    for name, values in variants.items():
        c = curve(values, targets["w"][test], targets["s"][test])
        out[name] = (c.apgr, c.cpt50, c.cpt80)
    return out


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cv_arguments(parser, repeats=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    _load(args.file)
    from routing.evaluation import kfold_indices

    tasks = [split for seed in range(args.seed, args.seed + args.repeats)
             for split in kfold_indices(len(_DATA["texts"]), args.folds, seed)]
    with ProcessPoolExecutor(args.jobs) as pool:
        splits = list(pool.map(_split, tasks))
    base = np.array([s["production (mean)"] for s in splits])
    print(f"{len(splits)} splits ({args.folds} folds, seeds {args.seed}..."
          f"{args.seed + args.repeats - 1}); layers {LAYERS}")
    for name in splits[0]:
        values = np.array([s[name] for s in splits])
        diff = values[:, 0] - base[:, 0]
        print(f"{name:<24} APGR {values[:, 0].mean():.4f}  CPT(50%) {values[:, 1].mean():.1%}  "
              f"CPT(80%) {values[:, 2].mean():.1%}  ΔAPGR {diff.mean():+.4f} ± "
              f"{diff.std(ddof=1) / np.sqrt(len(diff)):.4f} (wins {int(np.sum(diff > 0))}"
              f"/{len(diff)})")


if __name__ == "__main__":
    main()
