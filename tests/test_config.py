import pytest

from pipeline.config import Config, ConfigError, all_keys, field_info, load_config, parse_override
from pipeline.presets import PRESETS

from .conftest import ROOT, TINY_CONFIG


def test_defaults_follow_the_seed_guide():
    c = Config()
    assert c.model.model_id == "bigcode/starcoder2-3b"
    assert c.data.dedup.threshold == 0.85
    assert c.training.label_smoothing_factor == 0.1
    assert c.training.per_device_train_batch_size * c.training.gradient_accumulation_steps == 32


def test_shipped_configs_load():
    tiny = load_config(TINY_CONFIG)
    prod = load_config(ROOT / "configs" / "scriptguard.yaml")
    assert tiny.model.model_id == "tiny-starcoder2" and tiny.model.device == "cpu"
    assert prod.model.load_in_4bit and prod.lora.target_modules


def test_unknown_key_names_the_closest(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  learning_rat: 0.001\n")
    with pytest.raises(ConfigError, match="training.learning_rate"):
        load_config(p)
    with pytest.raises(ConfigError, match="lora.r"):
        load_config(overrides=["lora_r=8"])


def test_out_of_range_names_key_and_range():
    with pytest.raises(ConfigError, match=r"data\.dedup\.threshold.*less than or equal to 1"):
        load_config(overrides=["data.dedup.threshold=1.5"])


@pytest.mark.parametrize("override, fragment", [
    (["training.save_steps=30", "training.eval_steps=20"], "multiple of training.eval_steps"),
    (["training.early_stopping=true", "training.load_best_model_at_end=false"], "load_best_model_at_end"),
    (["training.bf16=true", "training.fp16=true"], "choose one"),
    (["model.device=cpu"], "load_in_4bit=false"),
    (["data.augment.transforms=[nope]"], "unknown transform"),
    (["data.augment.transforms=[base64_wrap]"], "obfuscating_wrappers"),
])
def test_cross_field_checks(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(overrides=override)


@pytest.mark.parametrize("key, value, fragment", [("data.split.augment_after_split", "false", "leakage"),
                                                   ("training.packing", "true", "one verdict per row")])
def test_removed_keys_are_named_with_the_reason_wherever_they_are_set(tmp_path, key, value, fragment):
    section, leaf = key.rsplit(".", 1)
    nested = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(section.split(".")))
    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text(nested + "  " * len(section.split(".")) + f"{leaf}: {value}\n")
    for attempt in (lambda: load_config(overrides=[f"{key}={value}"]), lambda: load_config(yaml_file),
                    lambda: field_info(key)):
        with pytest.raises(ConfigError, match=f"'{key}' is not a setting: .*{fragment}.*Remove the key"):
            attempt()
    assert key not in all_keys()


def test_override_types_and_precedence(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  learning_rate: 0.001\n")
    c = load_config(p, presets=["fix-underfitting"], overrides=["training.learning_rate=1e-4", "lora.r=8"])
    assert c.training.learning_rate == pytest.approx(1e-4)  # --set beats preset beats file
    assert c.lora.r == 8 and c.lora.alpha == 64  # preset still applied where not overridden
    assert parse_override("a.b=[x, y]") == ("a.b", ["x", "y"])
    assert load_config(inputs=["some/dir"]).data.ingest.inputs == ["some/dir"]


def test_every_preset_validates_and_unknown_preset_is_named():
    for name in PRESETS:
        load_config(presets=[name])
    with pytest.raises(ConfigError, match="small-dataset"):
        load_config(presets=["small-datset"])


def test_every_leaf_key_has_help():
    for key in all_keys(leaves_only=True):
        assert field_info(key)["help"], key


def test_explain_gives_range_and_guide():
    info = field_info("training.learning_rate")
    assert info["default"] == 4e-5 and info["range"]["le"] == 1e-2 and "3B" in info["guide"]
