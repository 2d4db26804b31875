"""The routing predictor that ships with the project, for tiers a deployment has no labels of.

`routing/default_examples.jsonl` holds a few hundred prompts written for this project (greetings,
short facts, simple rewrites; proofs, multi-step math, complex code, long analysis; a few no
model answers well), each labelled with whether an efficient-tier and a premium-tier model would
answer it well (`weak_correct` / `strong_correct`, the outcome rows `eval_router` and
`import_routing_examples` read). The same learned model the deployment's own examples get
(`routing.learned.OutcomeModel`, same constants) is fitted on them per tier, once per process,
and serves as the prompt-specific prior of every profile in that tier: the deployment's own
examples shrink toward it while they are few (the kNN vote) and replace it once a target has
enough of them for a learned model of its own (docs/routing.md, "A default that ships").
"""

import logging
import threading
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from routing.predictor import TIER

logger = logging.getLogger("llmops.routing")

SHIPPED_EXAMPLES = Path(__file__).with_name("default_examples.jsonl")
# Which tier each outcome column labels (as import_routing_examples maps them by default).
TARGETS = {"weak": (TIER, "efficient"), "strong": (TIER, "premium")}

_lock = threading.Lock()
_fitted: dict[tuple[str, str], dict] = {}  # (file, embedder and precision) → {target: model}


def default_examples_path() -> Path | None:
    """Return the default examples file to fit from (ROUTING_DEFAULT_EXAMPLES), or None: off."""
    configured = getattr(settings, "ROUTING_DEFAULT_EXAMPLES", str(SHIPPED_EXAMPLES))
    return Path(configured) if configured else None


def fit_default_models(path: Path, embed) -> dict:
    """Return {target: fitted OutcomeModel} from the outcome rows in `path`, embedded by
    `embed` (routing.services.embedder_embed): one model per tier of TARGETS."""
    import numpy as np

    from routing import learned as config
    from routing.evaluation import load_outcomes
    from routing.learned import OutcomeModel

    rows = load_outcomes(path)
    prompts = [row.prompt for row in rows]
    out = embed(prompts)
    vectors, layers = out if isinstance(out, tuple) else (out, {})
    vectors = np.asarray(vectors, dtype=np.float32)
    wanted = tuple(config.LAYERS)
    layer_states = ({x: np.asarray(layers[x], dtype=np.float32) for x in wanted}
                    if wanted and set(wanted) <= set(layers) else None)
    models = {}
    for column, target in TARGETS.items():
        scores = np.array([float(getattr(row, f"{column}_correct")) for row in rows])
        if not OutcomeModel.can_fit(scores, min_examples=config.MIN_EXAMPLES):
            continue
        models[target] = OutcomeModel(
            k=config.K, layers=wanted, temperature=config.TEMPERATURE, formats=config.FORMATS,
            min_format_examples=config.MIN_EXAMPLES,
        ).fit(prompts, vectors, scores, layers=layer_states)
    return models


def default_models() -> dict:
    """Return this process's default models ({(TIER, name): OutcomeModel}), fitted on first use
    with the gateway's embedder (sync, CPU-heavy: called from the background refit); {} when
    the setting is off or the embedder cannot run (routing then falls back to priors)."""
    path = default_examples_path()
    if path is None:
        return {}
    from routing.services import embedder_embed
    from semcache.embedder import get_embedder, precision_tag

    embedder = get_embedder()
    # Fitted in the embedder's own vector space: another embedder (or precision) refits.
    key = (str(path), precision_tag(type(embedder).__qualname__))
    with _lock:
        if key not in _fitted:
            try:
                _fitted[key] = fit_default_models(path, embedder_embed(embedder))
            except Exception:  # routing on priors beats failing every refit
                logger.exception("Fitting the default routing predictor from %s failed", path)
                _fitted[key] = {}
        return _fitted[key]


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs) -> None:
    if setting in ("ROUTING_DEFAULT_EXAMPLES", "SEMCACHE_EMBED_PRECISION"):
        _fitted.clear()
