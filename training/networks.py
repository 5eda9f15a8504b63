"""Plain ``nn.Module`` classifiers with a one-logit head, injected into the LightningModule.

Each is ``features`` (the backbone) followed by ``head``; ``FreezeThenUnfreeze`` relies on that
split, and the forward pass returns logits of shape ``[batch]``.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import timm
import torch
from pydantic import Field
from timm.data import resolve_model_data_config
from torch import nn

from training.bounds import Fraction, PositiveInt
from training.errors import TrainingSetupError
from training.transforms import NetworkInput, untrained_input


class BinaryClassifier(nn.Module):
    """``features`` -> ``head`` -> one logit per image. ``input_size``: the one image size the
    network takes, or None when it takes any."""

    input_size: int | None = None

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)).squeeze(-1)

    @property
    def expected_input(self) -> NetworkInput:
        """What the data module should feed this network; LightningCLI links it to ``data.network_input``."""
        return untrained_input(self.input_size)


class TimmClassifier(BinaryClassifier):
    """Any timm backbone by name (ViT-B/16 by default, Dosovitskiy et al., 2020) with one logit.

    ``pretrained`` asks timm for its published weights (needs network access);
    ``weights_path`` loads a local file instead, as a machine without a hub would.
    ``exportable=True`` keeps fused attention out of the graph so ONNX export is faithful.
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch16_224",
        pretrained: bool = True,
        weights_path: str | None = None,
        drop_rate: Fraction = 0.0,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        kwargs = dict(model_kwargs or {})
        if weights_path is not None:
            path = Path(weights_path).expanduser()
            if not path.is_file():
                raise TrainingSetupError(f"weights_path {path} does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            backbone = timm.create_model(
                model_name,
                pretrained=pretrained or weights_path is not None,
                num_classes=0,
                drop_rate=drop_rate,
                exportable=True,
                **kwargs,
            )
        except RuntimeError as error:
            if "Unknown model" in str(error):
                raise TrainingSetupError(f"timm has no model named {model_name!r}") from error
            raise
        except OSError as error:
            raise TrainingSetupError(
                f"could not load pretrained weights for {model_name!r} ({error}); without network "
                "access set model.net.init_args.weights_path to a local file, or pretrained: false"
            ) from error
        super().__init__(backbone, nn.Linear(backbone.num_features, 1))
        self.model_name = model_name
        patch_embed = getattr(backbone, "patch_embed", None)  # a ViT takes one image size; a CNN any
        self.input_size = patch_embed.img_size[0] if getattr(patch_embed, "strict_img_size", False) else None
        self.pretrained_input = resolve_model_data_config(backbone)  # with or without the weights downloaded

    @property
    def expected_input(self) -> NetworkInput:
        """The pretrained configuration's size, mean, std and interpolation (timm's, per backbone and tag).
        Its crop is left out: MHIST images are already the tissue, at the network's size."""
        config = self.pretrained_input
        return {
            "input_size": self.input_size or int(config["input_size"][-1]),
            "mean": tuple(float(v) for v in config["mean"]),
            "std": tuple(float(v) for v in config["std"]),
            "interpolation": config["interpolation"],
        }


class MlpClassifier(BinaryClassifier):
    """The seeds' fully connected network: 150528-2352-2352-294-1 on 224x224x3 by default."""

    def __init__(
        self,
        input_size: PositiveInt = 224,
        in_channels: PositiveInt = 3,
        hidden_sizes: Annotated[Sequence[PositiveInt], Field(min_length=1)] = (2352, 2352, 294),
        dropout: Fraction = 0.0,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * input_size * input_size
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        super().__init__(nn.Sequential(*layers), nn.Linear(width, 1))
        self.model_name = "mlp-" + "-".join(str(s) for s in hidden_sizes)
        self.input_size: int | None = input_size


def count_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
