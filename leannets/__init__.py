"""leannets: build, train and fairly measure efficient convolutional networks."""
__version__ = "0.1.0"

from .models import (ModelInfo, create_model, get_pretrained_cfg, is_model, list_models, list_modules, model_entrypoint,
                     model_info, register_model)

__all__ = ["ModelInfo", "convert", "create_model", "is_model", "list_models", "model_info", "prepare_for_inference",
           "register_model", "wrap_wae", "list_modules", "model_entrypoint", "get_pretrained_cfg", "__version__"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: importing leannets stays light
    if name == "prepare_for_inference":
        from .analysis.latency import prepare_for_inference

        return prepare_for_inference
    if name == "wrap_wae":
        from .models.wae_classifier import wrap_wae

        return wrap_wae
    if name == "convert":
        from .analysis.convert import convert

        return convert
    raise AttributeError(f"module 'leannets' has no attribute {name!r}")
