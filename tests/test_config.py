"""Config schema: presets as published, derived generator, and one clear error naming the field for bad configs."""
import pytest

from electra.config import ElectraConfig, ModelConfig, ObjectiveConfig, electra_config_from_dict, from_dict, preset
from electra.errors import ElectraError


@pytest.mark.parametrize("bad,match", [
    (dict(num_heads=3), "num_heads=3 does not divide hidden_size=64"),
    (dict(generator_hidden_fraction=0.0), "generator_hidden_fraction=0.0"),
    (dict(generator_hidden_fraction=-1), "generator_hidden_fraction"),
    (dict(hidden_szie=64), "unknown config key 'hidden_szie' \\(did you mean 'hidden_size'\\?\\)"),
    (dict(mask_prob=1.5), "mask_prob=1.5"),
    (dict(hidden_act="swish"), "hidden_act='swish'"),
    (dict(hidden_size="64"), "'hidden_size' must be int"),
    (dict(num_layers=2.5), "'num_layers' must be int"),
    (dict(kind="gan"), "objective kind='gan'"),
])
def test_invalid_configs_name_the_field(bad, match):
    with pytest.raises(ElectraError, match=match):
        preset("tiny", **bad)


def test_from_dict_strict_and_coercing():
    cfg = from_dict(ModelConfig, {"hidden_size": 64, "num_heads": 4, "hidden_dropout": 0})
    assert cfg.hidden_dropout == 0.0 and isinstance(cfg.hidden_dropout, float)
    with pytest.raises(ElectraError, match="unknown config key 'objective.mask_rate'.*mask_prob"):
        from_dict(ObjectiveConfig, {"mask_rate": 0.2}, where="objective")
    with pytest.raises(ElectraError, match="must be bool"):
        from_dict(ObjectiveConfig, {"disallow_correct": "yes"})
    with pytest.raises(ElectraError, match="unknown preset 'smal'.*small"):
        preset("smal")


def test_roundtrip_through_dict():
    cfg = preset("base", vocab_size=21128)
    again = electra_config_from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    assert again.generator == cfg.generator


def test_generator_fractions():
    cfg = ElectraConfig(ModelConfig(hidden_size=256, num_heads=4, intermediate_size=1024, num_layers=12),
                        generator_hidden_fraction=0.5, generator_layers_fraction=0.5)
    g = cfg.generator
    assert (g.hidden_size, g.num_heads, g.intermediate_size, g.num_layers) == (128, 2, 512, 6)
    assert g.embedding_size == cfg.discriminator.embedding_size  # embeddings are shared
    one_eighth = preset("small", generator_hidden_fraction=0.125).generator
    assert one_eighth.hidden_size % one_eighth.num_heads == 0 and one_eighth.num_heads == 1
