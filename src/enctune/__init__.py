"""enctune: adapt pre-trained sequence encoders to the tasks people have.

    import enctune
    run = enctune.train(data="examples/sst2", out="runs/sst2")
    model = enctune.load("runs/sst2")
    model.predict(["a gorgeous, witty film"])
"""

from .errors import UserError
from .version import __version__


def __getattr__(name):
    # Import torch-heavy modules only when used: `enctune --help` stays fast.
    if name == "load":  # an exported ONNX folder loads without torch
        from .serve.loading import load

        return load
    if name in ("train", "evaluate", "embed", "predict_file"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["UserError", "__version__", "embed", "evaluate", "load", "predict_file", "train"]
