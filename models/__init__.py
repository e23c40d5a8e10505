"""What learns: a registry of model builders addressed by stable names.

`build(name, num_classes, in_chans, img_size, pretrained)` is the one door in; `list_models()` names what is
there, and any timm model is buildable as `timm/<name>`.
"""

from tunelab.models.registry import (
    ModelError,
    ModelInfo,
    build,
    count_parameters,
    describe_models,
    head_parameters,
    input_normalization,
    list_models,
    model_info,
)

__all__ = ["ModelError", "ModelInfo", "build", "count_parameters", "describe_models", "head_parameters", "input_normalization",
           "list_models", "model_info"]
