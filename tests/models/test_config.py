import pytest

from models.config import TrainConfig, config_from_yaml
from models.errors import ConfigError


def test_bad_network_names_the_field():
    with pytest.raises(ConfigError, match="network: 'resnet9000'"):
        TrainConfig(network="resnet9000")


@pytest.mark.parametrize(("field", "value"), [("epochs", -1), ("embedding_dim", 0), ("dropout", 1.5),
                                              ("loss", "contrastive"), ("miner", "easy"), ("device", "tpu"),
                                              ("warmup_epochs", -1), ("ema_decay", 1.0), ("ema_decay", "0.9"),
                                              ("augment", "autoaugment")])
def test_bad_values_name_field_and_value(field, value):
    with pytest.raises(ConfigError, match=f"{field}: {value!r}"):
        TrainConfig(**{field: value})


def test_resolved_defaults():
    siamese = TrainConfig().resolved()
    assert (siamese.image_size, siamese.miner, siamese.epochs) == (64, "multi-similarity", 12)
    frozen = TrainConfig(network="mobilenet_v2", freeze_backbone=True, loss="triplet").resolved()
    assert (frozen.image_size, frozen.miner) == (128, "batch-hard")
    assert TrainConfig.from_dict(frozen.to_dict()) == frozen


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  foo: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.foo' in .*cfg.yaml"):
        config_from_yaml(path)


def test_seed_yaml_is_mapped_and_flags_win(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(
        "general:\n  labels_fpath: data/labels.csv\n"
        "train:\n  epochs: 7\n  hw: 96\n  network: resnet\n  save_network_path: out/net.pt\n"
        "  embeddings_output_path: out/emb.npy\n"
        "resnet:\n  freeze_backbone: true\n"
    )
    config, paths = config_from_yaml(path, {"epochs": 3, "lr": None})
    assert (config.network, config.image_size, config.epochs, config.freeze_backbone) == ("resnet50", 96, 3, True)
    assert paths.labels_fpath == "data/labels.csv"
    assert (paths.save_network_path, paths.embeddings_output_path) == ("out/net.pt", "out/emb.npy")


def test_seed_network_other_names_mean_siamese(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text("train:\n  network: siamese_net\n  lr: 1e-3\n")
    config, _ = config_from_yaml(path)
    assert config.network == "siamese" and config.lr == 1e-3


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config_from_yaml(tmp_path / "absent.yaml")


def test_warmup_must_leave_epochs_for_the_decay():
    with pytest.raises(ConfigError, match=r"warmup_epochs: 3 is invalid; expected an integer below epochs \(3\)"):
        TrainConfig(epochs=3, warmup_epochs=3)
    with pytest.raises(ConfigError, match="warmup_epochs: 12"):  # checked against the resolved default too
        TrainConfig(warmup_epochs=12).resolved()
    assert TrainConfig(epochs=3, warmup_epochs=2).warmup_epochs == 2


def test_new_stage_options_default_to_the_old_behaviour_and_read_from_yaml(tmp_path):
    default = TrainConfig()
    assert (default.warmup_epochs, default.ema_decay, default.augment) == (0, 0.0, "crop-flip-jitter")
    path = tmp_path / "c.yaml"
    path.write_text("warmup_epochs: 2\nema_decay: '0.999'\naugment: crop-flip-trivial\nloss: supcon\n")
    config, _ = config_from_yaml(path)
    assert (config.warmup_epochs, config.ema_decay, config.augment) == (2, 0.999, "crop-flip-trivial")
    assert config.resolved().miner == "none"
