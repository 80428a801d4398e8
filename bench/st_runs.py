"""The sentence-transformers + scikit-learn peer of enctune's ``probe`` strategy.

``SentenceTransformer(encoder).encode`` (batch 64, the checkpoint's own mean pooling and
normalisation) over train, validation and test, then ``LogisticRegression(max_iter=2000)``
fitted on train. This is the two-library recipe a practitioner writes by hand for a frozen
encoder; its wall time end to end (model load included) is what enctune's cold probe run
competes with, and its test accuracy is the bar a probe should reach.
"""

from __future__ import annotations

import time

from .measure import Stopwatch, accuracy, load_folder


def st_logreg(args: dict) -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    t_start = time.perf_counter()
    sw = Stopwatch()
    splits = load_folder(args["data"])
    with sw.section("load"):
        model = SentenceTransformer(args["encoder"], device="cpu")
    features = {}
    with sw.section("encode"):
        for split, (texts, _) in splits.items():
            features[split] = model.encode(texts, batch_size=64, show_progress_bar=False)
    with sw.section("fit"):
        clf = LogisticRegression(max_iter=2000)
        clf.fit(features["train"], splits["train"][1])
    scores = {f"{split}_accuracy": accuracy(list(clf.predict(features[split])), splits[split][1])
              for split in ("validation", "test") if split in splits}
    return {
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        **scores,
        "load_seconds": sw.seconds["load"], "encode_seconds": sw.seconds["encode"], "fit_seconds": sw.seconds["fit"],
        "train_examples": len(splits["train"][0]),
    }
