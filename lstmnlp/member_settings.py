"""`members:` in a recipe: an ensemble member's own settings, so members differ by more than the
seed (e.g. one reads words and one subword pieces, and they make different mistakes).

    train: {ensemble: 2}
    members:
      - {}                                                          # member 1: the recipe
      - {tokenizer.model_type: word, tokenizer.vocab_size: 12000}   # member 2

Each entry holds `--set` style keys of the tokenizer, model and train sections (nested mappings
work too); a member past the list's end trains the recipe as it is, and entries past
train.ensemble are not used (so `--set train.ensemble=1` trains the recipe as one model). Data,
the task and the ensemble's own keys stay the same for every member. Language-model and
translation members average next-token probabilities over one vocabulary, so only classifier
members may change it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lstmnlp.errors import UserError

if TYPE_CHECKING:
    from lstmnlp.config import ExperimentConfig

SECTIONS = ("tokenizer.", "model.", "train.")
SHARED_KEYS = ("train.ensemble", "train.parallel_members", "train.seed")  # the ensemble's, not a member's


def flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"pooling": "mean"}} and {"model.pooling": "mean"} alike as dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and "." not in dotted:  # a section's mapping
            flat.update(flat_settings(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def settings_of(config: ExperimentConfig, number: int) -> dict[str, Any]:
    """Member `number`'s (from 1) own settings as dotted keys; {} past the list's end."""
    return flat_settings(config.members[number - 1]) if number <= len(config.members) else {}


def changes_tokenizer(config: ExperimentConfig, number: int) -> bool:
    """Whether member `number` trains a tokenizer of its own settings."""
    return any(key.startswith("tokenizer.") for key in settings_of(config, number))


def apply_settings(config: ExperimentConfig, number: int) -> ExperimentConfig:
    """The recipe as member `number` trains it (validated; `members` itself dropped)."""
    from lstmnlp.config import config_from_dict, config_to_dict
    from lstmnlp.recipe_tree import set_dotted

    tree = config_to_dict(config)
    tree["members"] = []
    for key, value in settings_of(config, number).items():
        set_dotted(tree, key, value)
    try:
        return config_from_dict(tree)
    except UserError as error:
        raise UserError(f"members[{number}]: {error}") from None


def check_members(config: ExperimentConfig) -> None:
    """Refuse members' settings that cannot work, each error naming `members[K]` and the key."""
    for number in range(1, len(config.members) + 1):
        for key in settings_of(config, number):
            if not key.startswith(SECTIONS) or key in SHARED_KEYS:
                raise UserError(f"members[{number}]: {key} is the same for every member; only tokenizer.*, "
                                f"model.* and train.* keys other than {', '.join(SHARED_KEYS)} may differ")
            if key.startswith("tokenizer.") and config.task != "classify":
                raise UserError(f"members[{number}]: {key}: members of a {config.task} ensemble share one "
                                "vocabulary; only classifier members may change the tokenizer")
        apply_settings(config, number)
