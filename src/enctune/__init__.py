"""enctune: adapt pre-trained sequence encoders to the tasks people have.

    import enctune
    run = enctune.train(data="examples/sst2", out="runs/sst2")
    model = enctune.load("runs/sst2")
    model.predict(["a gorgeous, witty film"])
"""

from .errors import UserError
from .version import __version__

API = ("train", "advise", "evaluate", "predict_file", "embed", "export", "distill", "pretrain")
SEARCH = ("index", "Searcher", "evaluate_retrieval")


def __getattr__(name):
    if name == "load":
        # lazy: `import enctune` stays instant, and an ONNX folder loads without torch (~2 s)
        from .serve.loading import load

        return load
    if name in API:
        from . import api  # lazy: the API and its registries (~0.4 s) load when first used

        return getattr(api, name)
    if name in SEARCH:
        from . import search  # lazy: like the API (~0.4 s), torch only when an encoder loads

        return getattr(search, name)
    raise AttributeError(name)


__all__ = ["UserError", "__version__", "load", *API, *SEARCH]
