from pathlib import Path

import pytest

from lstmnlp.config import ExperimentConfig, config_from_dict, load_config
from lstmnlp.errors import UserError

from conftest import ROOT


def test_defaults_validate():
    config = config_from_dict({})
    assert config == ExperimentConfig()


def test_override_keeps_types():
    config = load_config(None, ["train.lr=0.01", "model.num_layers=3", "model.tie_weights=true"])
    assert config.train.lr == 0.01 and config.model.num_layers == 3 and config.model.tie_weights is True


def test_unknown_key_names_closest():
    with pytest.raises(UserError, match=r"model.hiden_size: unknown key; did you mean model.hidden_size\?"):
        load_config(None, ["model.hiden_size=3"])


def test_unknown_section_names_closest():
    with pytest.raises(UserError, match="did you mean train"):
        load_config(None, ["trian.lr=3"])


@pytest.mark.parametrize("override, fragment", [
    ("model.hidden_size=-4", "model.hidden_size: must be at least 1"),
    ("model.dropout=1.5", "model.dropout: must lie in [0, 1)"),
    ("train.lr=abc", "train.lr: expected a number"),
    ("train.batch_size=2.5", "train.batch_size: expected a whole number"),
    ("tokenizer.model_type=bytes", "tokenizer.model_type"),
    ("train.adam_beta2=1.0", "train.adam_beta2: must lie between 0 and 1"),
    ("train.average_decay=1.5", "train.average_decay: must lie in [0, 1)"),
    ("model.adversarial=-0.1", "model.adversarial: must lie in [0, 1]"),
    ("tokenizer.sampling_alpha=0.3", "tokenizer.sampling_alpha: must lie in [0, 1], and samples only bpe or unigram"),
])
def test_bad_values_name_their_key(override, fragment):
    with pytest.raises(UserError) as error:
        load_config(None, [override])
    assert fragment in str(error.value)


def test_bidirectional_language_model_refused():
    with pytest.raises(UserError, match="must not see the future"):
        load_config(None, ["model.bidirectional=true"])


def test_backward_is_for_language_models():
    assert load_config(None, ["model.backward=true"]).model.backward
    with pytest.raises(UserError, match="model.backward: is for language models"):
        load_config(None, ["task=classify", "model.backward=true"])


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.yaml"))
                         + [ROOT / "lstmnlp" / "recipes" / "default.yaml"], ids=lambda p: p.name)
def test_every_recipe_parses(recipe: Path):
    config = load_config(recipe)
    assert config.name


def test_recipe_exposes_documented_keys():
    config = load_config(ROOT / "recipes" / "char-lm-shakespeare.yaml",
                         [f"{key}={value}" for key, value in [
                             ("model.embedding_dim", 8), ("model.hidden_size", 8), ("model.num_layers", 1),
                             ("model.dropout", 0.2), ("model.bidirectional", False), ("train.batch_size", 4),
                             ("train.lr", 0.1), ("train.seed", 7), ("train.max_epochs", 2),
                             ("train.max_steps", 5), ("train.max_time", 9.5)]])
    assert (config.train.seed, config.train.max_epochs, config.train.max_time) == (7, 2, 9.5)


def test_parallel_members_is_for_classifier_ensembles():
    config = load_config(None, ["task=classify", "train.ensemble=2", "train.parallel_members=true"])
    assert config.train.parallel_members
    with pytest.raises(UserError, match="train.parallel_members: is for classifiers"):
        load_config(None, ["train.ensemble=2", "train.parallel_members=true"])
    assert load_config(None, ["train.parallel_members=true"]).train.ensemble == 1  # one model: nothing to run at once


@pytest.mark.parametrize("task, key", [("lm", "model.label_smoothing=0.1"), ("classify", "model.attention=luong"),
                                       ("translate", "model.pooling=mean"), ("lm", "model.class_weights=true"),
                                       ("classify", "model.tie_weights=true"), ("classify", "train.bptt=64"),
                                       ("lm", "train.eval_bleu_batches=4"), ("translate", "train.unfreeze_every=5"),
                                       ("translate", "model.adversarial=0.05")])
def test_a_model_key_the_task_does_not_read_is_refused(task, key):
    languages = ["data.source_lang=de", "data.target_lang=en"] if task == "translate" else []
    with pytest.raises(UserError, match=f"{key.split('=')[0]}: is read by .* runs only"):
        load_config(None, [f"task={task}", key, *languages])
    members = "members=[{}, {%s: %s}]" % tuple(key.split("="))
    with pytest.raises(UserError, match=r"members\[2\]: " + key.split("=")[0]):
        load_config(None, [f"task={task}", "train.ensemble=2", members, *languages])


@pytest.mark.parametrize("task, key", [("lm", "data.source_lang=de"), ("classify", "data.target_lang=en"),
                                       ("lm", "data.text_column=review"), ("translate", "data.format=sst"),
                                       ("lm", "data.lowercase=true"), ("lm", "data.max_length=50"),
                                       ("classify", "data.hub=hub:imdb")])
def test_a_data_key_the_task_does_not_read_is_refused(task, key):
    languages = ["data.source_lang=de", "data.target_lang=en"] if task == "translate" else []
    with pytest.raises(UserError, match=f"{key.split('=')[0]}: is read by .* runs only"):
        load_config(None, [f"task={task}", key, *languages])


def test_label_smoothing_is_read_by_classifiers_and_translation():
    for task in ("classify", "translate"):
        languages = ["data.source_lang=de", "data.target_lang=en"] if task == "translate" else []
        config = load_config(None, [f"task={task}", "model.label_smoothing=0.1", *languages])
        assert config.model.label_smoothing == 0.1


def test_phrases_need_sst_trees():
    assert load_config(None, ["task=classify", "data.format=sst", "data.phrases=true"]).data.phrases
    with pytest.raises(UserError, match="data.phrases: .* needs data.format sst"):
        load_config(None, ["task=classify", "data.phrases=true"])


def test_word_vectors_and_frozen_embeddings_are_refused_where_they_clash():
    with pytest.raises(UserError, match="model.target_word_vectors: the target side shares the source embedding"):
        load_config(None, ["task=translate", "data.source_lang=de", "data.target_lang=en",
                           "model.share_embeddings=true", "model.target_word_vectors=en.vec"])
    with pytest.raises(UserError, match="model.target_word_vectors: is read by translate, autoencoder runs only"):
        load_config(None, ["task=classify", "model.target_word_vectors=en.vec"])
    with pytest.raises(UserError, match="model.word_vectors: model.init_from already brings the embedding"):
        load_config(None, ["task=classify", "model.word_vectors=glove.txt", "model.init_from=runs/lm"])
    with pytest.raises(UserError, match="model.freeze_embeddings: the output layer shares the embedding"):
        load_config(None, ["model.freeze_embeddings=true", "model.tie_weights=true"])
    # A translation model ties its target embedding; the source one may stay fixed unless the two are shared.
    load_config(None, ["task=translate", "data.source_lang=de", "data.target_lang=en", "model.tie_weights=true",
                       "model.freeze_embeddings=true"])


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-4 as text; a number field takes it as the number users mean."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train:\n  lr: 3e-4\n", encoding="utf-8")
    assert load_config(recipe, []).train.lr == pytest.approx(3e-4)
    config = load_config(None, ["train.lr=1e-4", "model.dropout=2E-1"])
    assert (config.train.lr, config.model.dropout) == (pytest.approx(1e-4), pytest.approx(0.2))
    with pytest.raises(UserError, match="train.lr: expected a number, got '1e-4x'"):
        load_config(None, ["train.lr=1e-4x"])
