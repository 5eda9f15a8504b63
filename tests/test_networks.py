import os
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from tests.conftest import REPO
from training.errors import TrainingSetupError
from training.networks import MlpClassifier, TimmClassifier, count_parameters

TINY_VIT = {"model_name": "vit_tiny_patch16_224", "pretrained": False, "model_kwargs": {"depth": 1}}


def test_default_mlp_is_the_seeds_150528_2352_2352_294_1() -> None:
    with torch.device("meta"):
        mlp = MlpClassifier()
    assert count_parameters(mlp) == 360_270_541
    widths = [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [2352, 2352, 294, 1]
    assert mlp.features[1].in_features == 150_528


def test_mlp_dropout_and_forward_shape() -> None:
    mlp = MlpClassifier(input_size=32, hidden_sizes=(16, 8), dropout=0.3)
    assert sum(isinstance(m, torch.nn.Dropout) for m in mlp.modules()) == 2
    assert mlp(torch.randn(5, 3, 32, 32)).shape == (5,)


def test_timm_backbone_has_a_one_logit_head() -> None:
    net = TimmClassifier(**TINY_VIT)
    assert isinstance(net.head, torch.nn.Linear)
    assert net.head.out_features == 1
    assert net(torch.randn(2, 3, 224, 224)).shape == (2,)


def test_local_weights_file_is_loaded(tmp_path) -> None:
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1)
    path = tmp_path / "weights.safetensors"
    save_file(source.state_dict(), path)
    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, weights_path=str(path), model_kwargs={"depth": 1})
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    loaded = net.features.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    assert net.expected_input["mean"] == (0.5, 0.5, 0.5)  # the local file keeps the backbone's pretrained config


def test_unknown_names_and_missing_weights_are_named(tmp_path) -> None:
    with pytest.raises(TrainingSetupError, match="timm has no model named 'vit_huge_nonsense'"):
        TimmClassifier("vit_huge_nonsense", pretrained=False)
    with pytest.raises(TrainingSetupError, match="weights_path .* does not exist"):
        TimmClassifier("vit_tiny_patch16_224", weights_path=str(tmp_path / "absent.pth"))


def test_pretrained_without_network_says_what_to_do() -> None:
    code = "from training.networks import TimmClassifier; TimmClassifier('vit_tiny_patch16_224', pretrained=True)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "could not load pretrained weights for 'vit_tiny_patch16_224'" in result.stderr
    assert "weights_path" in result.stderr


def test_each_network_says_which_image_size_it_takes() -> None:
    assert MlpClassifier(input_size=32, hidden_sizes=(4,)).input_size == 32
    assert TimmClassifier(**TINY_VIT).input_size == 224
    assert TimmClassifier(**{**TINY_VIT, "model_kwargs": {"depth": 1, "img_size": 96}}).input_size == 96
    assert TimmClassifier("resnet18", pretrained=False).input_size is None  # a CNN pools any size


@pytest.mark.parametrize(
    ("model_name", "mean", "interpolation", "size"),
    [
        ("vit_base_patch16_224", (0.5, 0.5, 0.5), "bicubic", 224),  # augreg2_in21k_ft_in1k
        ("resnet50.tv_in1k", (0.485, 0.456, 0.406), "bilinear", 224),  # torchvision's weights
        ("inception_v3", (0.5, 0.5, 0.5), "bicubic", 299),
    ],
)
def test_the_data_module_feeds_a_backbone_its_pretraining_preprocessing(
    model_name: str,
    mean: tuple,
    interpolation: str,
    size: int,
    small_root,
    tmp_path,
) -> None:
    """vit.yaml normalized with ImageNet's statistics although timm's ViT-B/16 was pretrained on
    mean/std 0.5 with bicubic resizing; the config now takes them from timm's pretrained config."""
    from training.cli import MhistCLI, config_path

    args = ["--config", config_path("vit.yaml"), "--data.root", str(small_root), "--trainer.accelerator", "cpu"]
    args += ["--trainer.precision", "32", "--trainer.default_root_dir", str(tmp_path)]
    args += ["--model.net.init_args.model_name", model_name, "--model.net.init_args.pretrained", "false"]
    data = MhistCLI(args=args).datamodule
    assert data.normalization == (mean, mean if mean == (0.5, 0.5, 0.5) else (0.229, 0.224, 0.225))
    assert (data.interpolation, data.input_size) == (interpolation, size)
    data.setup("fit")
    assert data.val_set.transform.transforms[0].interpolation.value == interpolation
    assert data.val_set[0][0].shape == (3, size, size)
    overridden = MhistCLI(args=[*args, "--data.normalization", "imagenet", "--data.interpolation", "nearest"])
    assert overridden.datamodule.normalization[0] == (0.485, 0.456, 0.406)
    assert overridden.datamodule.interpolation == "nearest"


def test_a_network_without_pretraining_asks_for_statistics(small_root) -> None:
    from training.datamodule import MhistDataModule

    net = MlpClassifier(input_size=32, hidden_sizes=(4,))
    data = MhistDataModule(str(small_root), num_workers=0, network_input=net.expected_input)
    with pytest.raises(TrainingSetupError, match="data.normalization is pretrained, but the network has no"):
        data.setup("fit")
    assert (data.input_size, data.interpolation) == (32, "bilinear")
