"""What stands between the cache and issue #4's target on QQP: the labels at the top of the ranking.

    DEBUG=1 .venv/bin/python bench/semcache_ceiling.py [PAIRS.jsonl] [--samples 20]

The eval_cache protocol (every text_a stored, every text_b queried; a hit is correct when the
entry is in the query's component of label-1 edges or is the same text), reduced to what any
decision has to work with: the exact path, and the query's nearest stored question by exact
cosine search. Prints, per cosine band of that nearest question, how many duplicate queries it
answers correctly and how many hits would be false, split into the query's own partner
labelled "not duplicate" and another stored question outside the query's component; then the
arithmetic of the target (precision >= 0.95 with hit rate >= 0.45): how many semantic hits it
needs and how few false ones it allows, against what thresholds on the cosine give; and a
sample of false hits from the top bands to read, and samples of the false hits the hard guards
let through at cosine >= 0.95, by kind (how many of them a person would call duplicates is what
bounds any decision that judges whether two questions are the same). Embeddings come from the
gateway's embedder, cached in bench/.cache/ (the same cache as eval_cache).
"""

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import offline_django_env  # noqa: E402  (needs ROOT on sys.path)

offline_django_env()

BANDS = (0.80, 0.85, 0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 1.01)
TARGET_PRECISION, TARGET_HIT_RATE = 0.95, 0.45


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from semcache.embedder import get_embedder, model_path, precision_tag
    from semcache.evaluation import cached_embed, components_of, load_pairs
    from semcache.namespaces import normalize_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="?",
                        default=str(ROOT.parent / "shared/data/qqp_pairs_dev.jsonl"))
    parser.add_argument("--samples", type=int, default=20,
                        help="False hits at cosine >= 0.97 to print.")
    args = parser.parse_args()

    pairs = load_pairs(Path(args.pairs))
    components = components_of(pairs)
    stored = list(dict.fromkeys(p.text_a for p in pairs))
    embedder = get_embedder()
    vectors = cached_embed(lambda texts: np.concatenate(
        [embedder.embed_sync(texts[i:i + 1024]) for i in range(0, len(texts), 1024)]),
        stored + [p.text_b for p in pairs], ROOT / "bench" / ".cache",
        tag=precision_tag(str(model_path())))
    stored_vectors, query_vectors = vectors[:len(stored)], vectors[len(stored):]
    exact_of = {normalize_text(t): t for t in stored}

    label = np.array([p.label for p in pairs])
    exact = np.array([normalize_text(p.text_b) in exact_of for p in pairs])
    nearest = np.empty(len(pairs), dtype=int)
    cosine = np.empty(len(pairs))
    for start in range(0, len(pairs), 2048):
        sims = query_vectors[start:start + 2048] @ stored_vectors.T
        nearest[start:start + 2048] = sims.argmax(1)
        cosine[start:start + 2048] = sims.max(1)
    correct = np.array([components.find(stored[j]) == components.find(p.text_b)
                        or normalize_text(stored[j]) == normalize_text(p.text_b)
                        for j, p in zip(nearest, pairs, strict=True)])
    partner = np.array([stored[j] == p.text_a for j, p in zip(nearest, pairs, strict=True)])
    semantic = ~exact
    duplicates = int(label.sum())

    print(f"{len(pairs)} queries, {duplicates} duplicates, {len(stored)} stored questions")
    print(f"exact path: {exact.sum()} hits, all correct; {int((exact & (label == 1)).sum())} "
          f"duplicates = hit rate {(exact & (label == 1)).sum() / duplicates:.3f} before any "
          f"semantic hit")
    print("\nsemantic lookups, nearest stored question by cosine band:")
    print(f"{'band':>13} {'queries':>8} {'precision':>9} {'dup. hits':>9} {'false':>6} "
          f"{'own partner, label 0':>21} {'other question':>15}")
    for lo, hi in zip(BANDS, BANDS[1:], strict=False):
        band = semantic & (cosine >= lo) & (cosine < hi)
        false = band & ~correct
        print(f"{lo:.3f}-{min(hi, 1):.3f} {band.sum():>8} {correct[band].mean():>9.3f} "
              f"{(band & correct & (label == 1)).sum():>9} {false.sum():>6} "
              f"{(false & partner & (label == 0)).sum():>21} {(false & ~partner).sum():>15}")

    exact_correct_dups = int((exact & (label == 1)).sum())
    need = int(np.ceil(TARGET_HIT_RATE * duplicates)) - exact_correct_dups
    print(f"\nthe target needs {need} semantic duplicate hits beside the exact path's "
          f"{exact_correct_dups}; with precision >= {TARGET_PRECISION} over all hits that allows "
          f"at most about {int((exact.sum() + need) / TARGET_PRECISION - exact.sum() - need)} "
          f"false hits in all. Plain cosine thresholds on the nearest question:")
    for t in (0.99, 0.98, 0.97, 0.96, 0.95, 0.94):
        hit = semantic & (cosine >= t)
        dup_hits = int((hit & correct & (label == 1)).sum())
        hits, right = int(exact.sum() + hit.sum()), int(exact.sum() + (hit & correct).sum())
        print(f"  >= {t:.2f}: {dup_hits:>5} semantic duplicate hits, {hits - right:>4} false; "
              f"hit rate {(exact_correct_dups + dup_hits) / duplicates:.3f}, precision "
              f"{right / hits:.3f}")

    # What a judge of question equivalence would face: the false hits the hard guards let
    # through at cosine >= 0.95, by kind (read samples of each with --samples).
    from semcache.guards import compare

    passing = [i for i in np.nonzero(semantic & (cosine >= 0.95) & ~correct)[0]
               if compare(pairs[i].text_b, stored[nearest[i]]).refused is None]
    other = [i for i in passing if not partner[i]]
    own = [i for i in passing if partner[i] and label[i] == 0]
    print(f"\nat cosine >= 0.95 the hard guards let {len(passing)} false hits through: "
          f"{len(other)} another stored question, {len(own)} the query's own partner "
          f"labelled 0")
    rng = random.Random(7)
    for name, rows in (("another stored question", other), ("own partner, label 0", own)):
        rng.shuffle(rows)
        if rows and args.samples:
            print(f"  {min(args.samples, len(rows))} of {len(rows)} ({name}):")
        for i in rows[:args.samples]:
            print(f"    {cosine[i]:.3f} | {pairs[i].text_b} | {stored[nearest[i]]}")

    top = list(np.nonzero(semantic & (cosine >= 0.97) & ~correct)[0])
    random.Random(1).shuffle(top)
    if top and args.samples:
        print(f"\n{min(args.samples, len(top))} of the {len(top)} false hits at cosine >= 0.97 "
              f"(label: the query's own pair label; partner: the hit is its own text_a):")
    for i in top[:args.samples]:
        print(f"  {cosine[i]:.3f} label {label[i]} partner {'yes' if partner[i] else 'no ':<3} "
              f"| {pairs[i].text_b} | {stored[nearest[i]]}")


if __name__ == "__main__":
    main()
