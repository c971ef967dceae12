"""leannets: build, train and fairly measure efficient convolutional networks."""
__version__ = "0.1.0"

from .models import ModelInfo, create_model, is_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "is_model", "list_models", "model_info", "register_model", "__version__"]
