"""What learns: a registry of model builders addressed by stable names.

`build(name, num_classes, in_chans, img_size)` is the one door in; `list_models()` names what is there.
"""

from models.registry import ModelError, ModelInfo, build, count_parameters, list_models, model_info

__all__ = ["ModelError", "ModelInfo", "build", "count_parameters", "list_models", "model_info"]
