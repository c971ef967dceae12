"""Model families. Importing this package registers every family module in it."""
import importlib
import pkgutil

from ._registry import (ModelInfo, create_model, get_pretrained_cfg, is_model, list_models, list_modules,
                        load_pretrained, model_cfg, model_entrypoint, model_info, pretrained_cfg, register_model)
from ._weights import CheckpointAdapter, LoadReport

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["ModelInfo", "create_model", "is_model", "list_models", "model_info", "register_model", "pretrained_cfg",
           "load_pretrained", "LoadReport", "model_cfg", "CheckpointAdapter", "list_modules", "model_entrypoint",
           "get_pretrained_cfg"]
