"""Typed experiment configuration: frozen dataclasses, strict YAML and `--set a.b=value` loading.

Every default lives here, once. YAML recipes and command-line overrides go through the same
validation: an unknown key is an error naming the closest valid key, a bad value names its key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstmnlp.errors import UserError
from lstmnlp.recipe_tree import parse_override, read_yaml, set_dotted
from lstmnlp.strict_dataclasses import build_dataclass

TASKS = ("lm", "translate", "classify", "autoencoder")
POOLINGS = ("max", "mean", "max_mean", "last", "attention")  # model.pooling (modules/pooling.py)
SEQ2SEQ_TASKS = ("translate", "autoencoder")  # encoder-decoder runs: trained, decoded and scored alike
# Keys that only some tasks read: set for another task, one would be ignored without a word.
TASK_KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("model.decoder_hidden_size", "model.decoder_layers", "model.attention", "model.input_feeding",
                     "model.share_embeddings", "train.eval_bleu_batches"), SEQ2SEQ_TASKS),
    "model.label_smoothing": SEQ2SEQ_TASKS + ("classify",),
    "model.adversarial": ("classify",),
    "model.target_word_vectors": SEQ2SEQ_TASKS,
    "model.tie_weights": ("lm",) + SEQ2SEQ_TASKS,
    **dict.fromkeys(("model.pooling", "model.classifier_hidden", "model.class_weights", "model.init_from",
                     "model.nbsvm_ngrams", "train.unfreeze_every", "train.pretrained_lr_ratio"), ("classify",)),
    **dict.fromkeys(("train.bptt", "train.eval_streams"), ("lm",)),
    **dict.fromkeys(("data.format", "data.text_column", "data.label_column", "data.sst_labels", "data.label_files"),
                    ("classify",)),  # data.phrases and data.neutral_phrases need data.format sst (DataConfig)
    **dict.fromkeys(("data.source_lang", "data.target_lang"), ("translate",)),
    "data.lowercase": ("classify", "autoencoder"),
    "data.max_length": SEQ2SEQ_TASKS + ("classify",),
    **dict.fromkeys(("data.hub", "data.hub_text_column", "data.hub_train_split", "data.hub_valid_split"), ("lm",)),
}
BUILTIN_DATA_DIR = "builtin"  # `data.dir` value naming the corpus shipped inside the package


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from."""

    dir: str = ""  # local folder of the files below; "builtin" = the package's own corpus
    train: str = "input.txt"  # training file name inside `dir`
    valid: str = ""  # validation file; empty = the tail `valid_fraction` of `train`
    valid_fraction: float = 0.1  # share of the training text held out when `valid` is empty
    hub: str = ""  # hub:NAME[:CONFIG], used when no `dir` is given
    hub_text_column: str = "text"  # column of the hub dataset holding the text
    hub_train_split: str = "train"
    hub_valid_split: str = "validation"
    # Translation: files are f"{train}.{source_lang}" and f"{train}.{target_lang}" (likewise valid).
    source_lang: str = ""
    target_lang: str = ""
    max_length: int = 100  # longer training pairs (in pieces) are skipped and counted
    # Classification: how the labeled files are laid out.
    format: str = "table"  # table (.tsv/.csv/.jsonl) | sst (PTB-style trees) | label_files (one file per label)
    text_column: str = "text"  # table: the column holding the text
    label_column: str = "label"  # table: the column holding the label
    sst_labels: str = "binary"  # sst: binary (0-1 negative, 3-4 positive, 2 dropped) | fine (0..4)
    phrases: bool = False  # sst: train on every labeled phrase of the training trees, not only roots
    neutral_phrases: bool = False  # sst binary: neutral (2) training texts train a hidden third class;
    # predictions stay negative/positive
    label_files: str = ""  # label_files: "positive=rt-polarity.pos,negative=rt-polarity.neg"
    lowercase: bool = False  # classification: lower-case every text (training and inference alike)

    def validate(self) -> None:
        _check(0.0 < self.valid_fraction < 1.0, "data.valid_fraction", "must lie between 0 and 1")
        _check(self.format in ("table", "sst", "label_files"), "data.format",
               "must be one of table, sst, label_files")
        _check(self.sst_labels in ("binary", "fine"), "data.sst_labels", "must be binary or fine")
        _check(not self.phrases or self.format == "sst", "data.phrases", "reads the phrases of SST trees: "
               "it needs data.format sst")
        _check(not self.neutral_phrases or (self.format == "sst" and self.sst_labels == "binary" and self.valid),
               "data.neutral_phrases", "needs data.format sst, data.sst_labels binary and a data.valid file")
        if self.label_files:
            for item in self.label_files.split(","):
                _check(item.count("=") == 1 and all(part.strip() for part in item.split("=")),
                       "data.label_files", "expected LABEL=FILE[,LABEL=FILE...]")
        if self.hub:
            _check(self.hub.startswith("hub:"), "data.hub", "must look like hub:NAME[:CONFIG]")


@dataclass(frozen=True)
class TokenizerConfig:
    """The sentencepiece model trained for a run that has none."""

    path: str = ""  # an existing sentencepiece model to use instead of training one
    model_type: str = "char"  # char | bpe | unigram | word
    vocab_size: int = 8000  # an upper bound for char models
    joint: bool = True  # translation: one vocabulary for source and target
    character_coverage: float = 1.0  # share of characters kept; the rest map to <unk>
    byte_fallback: bool = False  # spell unknown characters as UTF-8 bytes instead of <unk>
    sampling_alpha: float = 0.0  # > 0: subword regularization, training text resegmented every epoch
    # (Kudo 2018; unigram: smoothing, lower samples more; bpe: BPE-dropout rate); not repeatable by seed

    def validate(self) -> None:
        _check(self.model_type in ("char", "bpe", "unigram", "word"), "tokenizer.model_type",
               "must be one of char, bpe, unigram, word")
        _check(self.vocab_size >= 8, "tokenizer.vocab_size", "must be at least 8")
        _check(0.9 <= self.character_coverage <= 1.0, "tokenizer.character_coverage",
               "must lie between 0.9 and 1.0")
        samplable = self.sampling_alpha == 0 or bool(self.path) or self.model_type in ("bpe", "unigram")
        _check(0 <= self.sampling_alpha <= 1 and samplable, "tokenizer.sampling_alpha",
               "must lie in [0, 1], and samples only bpe or unigram pieces")


@dataclass(frozen=True)
class ModelConfig:
    """Embedding, shared LSTM encoder and output layer sizes and regularization."""

    embedding_dim: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    bidirectional: bool = False  # language models must stay unidirectional
    backward: bool = False  # language models: read and predict the text right to left (ULMFiT's backward LM)
    dropout: float = 0.1  # between LSTM layers and before the output layer
    embedding_dropout: float = 0.0  # dropout on the embedded inputs
    word_dropout: float = 0.0  # whole input tokens dropped: their embedding vectors zeroed (Iyyer et al. 2015)
    weight_dropout: float = 0.0  # DropConnect on hidden-to-hidden weights (AWD-LSTM, arXiv:1708.02182)
    recurrent_dropout: float = 0.0  # variational mask on h between steps (Gal & Ghahramani, arXiv:1512.05287)
    peephole: bool = False  # peephole connections (Gers & Schmidhuber 2000); uses the slower custom cell
    tie_weights: bool = False  # share embedding and output matrix (Press & Wolf, arXiv:1608.05859)
    init: str = "default"  # default | xavier | orthogonal
    forget_bias: float = 1.0  # forget-gate bias at init (Jozefowicz et al. 2015)
    word_vectors: str = ""  # GloVe / word2vec / fastText text file: the embedding's start (word_vectors.py)
    freeze_embeddings: bool = False  # keep the encoder's embedding as it starts (e.g. from word_vectors)
    # Translation only:
    decoder_hidden_size: int = 0  # 0 = the encoder's output size (2 x hidden_size when bidirectional)
    decoder_layers: int = 1
    attention: str = "bahdanau"  # bahdanau (additive) | luong (general) | dot | none (start state only)
    input_feeding: bool = True  # feed the previous attentional vector to the decoder (Luong et al. 2015)
    share_embeddings: bool = False  # one embedding for source and target (needs a joint vocabulary)
    target_word_vectors: str = ""  # as word_vectors, for the decoder's (target) embedding
    # Translation and classification:
    label_smoothing: float = 0.0  # (Szegedy et al. 2016)
    # Classification only:
    pooling: str = "max"  # one of POOLINGS, over the encoder outputs, masked at padding
    classifier_hidden: int = 0  # hidden units of the MLP before the logits; 0 = one linear layer
    class_weights: bool = False  # weight the loss by inverse class frequency (imbalanced data)
    adversarial: float = 0.0  # > 0: also train on embeddings moved along the loss gradient (models/adversarial.py)
    init_from: str = ""  # start embedding and encoder from an LM run (ULMFiT) or an autoencoder run
    nbsvm_ngrams: int = 0  # > 0: mix in an NBSVM over word 1..n-grams (Wang & Manning 2012); 0 = none
    nbsvm_char_ngrams: int = 0  # > 0: that NBSVM also reads character 2..n-grams; 0 = words only
    nbsvm_refit: bool = False  # once its mix weight is picked, fit that NBSVM again on training + held-out data

    def validate(self) -> None:
        for key in ("embedding_dim", "hidden_size", "num_layers"):
            _check(getattr(self, key) >= 1, f"model.{key}", "must be at least 1")
        for key in ("dropout", "embedding_dropout", "word_dropout", "weight_dropout", "recurrent_dropout"):
            _check(0.0 <= getattr(self, key) < 1.0, f"model.{key}", "must lie in [0, 1)")
        _check(self.init in ("default", "xavier", "orthogonal"), "model.init",
               "must be one of default, xavier, orthogonal")
        _check(self.decoder_hidden_size >= 0, "model.decoder_hidden_size", "must not be negative")
        _check(self.decoder_layers >= 1, "model.decoder_layers", "must be at least 1")
        _check(self.attention in ("bahdanau", "luong", "dot", "none"), "model.attention",
               "must be one of bahdanau, luong, dot, none")
        _check(self.attention != "none" or not self.input_feeding, "model.input_feeding",
               "feeds the previous attentional vector, so it needs attention; set model.input_feeding=false")
        _check(0.0 <= self.label_smoothing < 1.0, "model.label_smoothing", "must lie in [0, 1)")
        _check(0.0 <= self.adversarial <= 1.0, "model.adversarial",
               "must lie in [0, 1] (the perturbation's size as a share of the sentence's embedding norm)")
        _check(self.pooling in POOLINGS, "model.pooling", "must be one of " + ", ".join(POOLINGS))
        _check(self.classifier_hidden >= 0, "model.classifier_hidden", "must not be negative")
        _check(0 <= self.nbsvm_ngrams <= 5, "model.nbsvm_ngrams", "must lie in 0..5 (the longest word n-gram)")
        _check(self.nbsvm_char_ngrams == 0 or 2 <= self.nbsvm_char_ngrams <= 8, "model.nbsvm_char_ngrams",
               "must be 0 or lie in 2..8 (the longest character n-gram)")
        _check(not self.nbsvm_char_ngrams or self.nbsvm_ngrams, "model.nbsvm_char_ngrams",
               "adds character n-grams to the NBSVM of model.nbsvm_ngrams: set that too (1 for single words)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimization, budgets, validation and logging."""

    batch_size: int = 64  # sequences per batch (parallel streams for language models)
    accumulate: int = 1  # batches whose gradients make one update (fairseq's update_freq); steps count updates
    max_tokens: int = 0  # also bound a batch's padded tokens (translation, classification); 0 = no bound
    bptt: int = 128  # truncated back-propagation length in tokens (language models)
    optimizer: str = "adamw"  # adam | adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 0.01
    adam_beta2: float = 0.999  # Adam/AdamW second-moment decay (0.99 suits small, noisy batches)
    schedule: str = "cosine"  # constant | cosine | linear | plateau
    warmup_steps: int = 100  # linear warmup before the schedule
    min_lr_ratio: float = 0.1  # cosine/linear decay floor, as a share of lr
    plateau_factor: float = 0.5  # reduce-on-plateau multiplier
    clip_norm: float = 1.0  # gradient clipping by global norm; 0 turns it off
    average_decay: float = 0.0  # > 0 (e.g. 0.999): validate and save a moving average of the weights (Polyak)
    seed: int = 1234
    ensemble: int = 1  # N > 1: train N members (seeds seed, seed+1, ...; budgets per member), used as one
    parallel_members: bool = False  # classifiers: train the ensemble's members at once, one process each (N > 1)
    max_epochs: int = 0  # 0 = no limit
    max_steps: int = 0  # 0 = no limit
    max_time: float = 0.0  # seconds of training, a hard budget; 0 = no limit
    eval_bleu_batches: int = 0  # translation: validation batches decoded for BLEU; 0 = all
    eval_every: int = 200  # steps between validations
    eval_streams: int = 16  # parallel streams when validating an LM; 1 scores exactly as `lstmnlp score`
    patience: int = 0  # validations without improvement before stopping; 0 = never
    keep_last: int = 0  # also keep the N latest checkpoints as checkpoints/step-NNNNNNN.safetensors
    precision: str = "auto"  # auto (bf16 where the hardware has it natively) | fp32 | bf16 | fp16 (CUDA, scaled)
    log_every: int = 20  # steps between log lines when not on a terminal
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "auto"  # auto | cpu | cuda
    # Transfer (model.init_from): ULMFiT-style gradual unfreezing and a lower LR for pretrained layers.
    unfreeze_every: int = 0  # N > 0: pretrained layers start frozen, one thaws every N steps, top down
    pretrained_lr_ratio: float = 1.0  # LR of pretrained parameters as a share of train.lr

    def validate(self) -> None:
        for key in ("batch_size", "accumulate", "bptt", "eval_every", "eval_streams", "log_every", "ensemble"):
            _check(getattr(self, key) >= 1, f"train.{key}", "must be at least 1")
        for key in ("max_epochs", "max_steps", "max_time", "patience", "keep_last", "max_tokens", "warmup_steps",
                    "threads", "clip_norm", "weight_decay", "unfreeze_every"):
            _check(getattr(self, key) >= 0, f"train.{key}", "must not be negative")
        _check(self.lr > 0, "train.lr", "must be positive")
        _check(0 < self.adam_beta2 < 1, "train.adam_beta2", "must lie between 0 and 1")
        _check(0 <= self.average_decay < 1, "train.average_decay", "must lie in [0, 1)")
        _check(self.optimizer in ("adam", "adamw", "sgd"), "train.optimizer",
               "must be one of adam, adamw, sgd")
        _check(self.schedule in ("constant", "cosine", "linear", "plateau"), "train.schedule",
               "must be one of constant, cosine, linear, plateau")
        _check(self.precision in ("auto", "fp32", "bf16", "fp16"), "train.precision", "must be auto, fp32, bf16 or fp16")
        _check(self.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda")
        _check(0 < self.plateau_factor < 1, "train.plateau_factor", "must lie between 0 and 1")
        _check(0 <= self.min_lr_ratio <= 1, "train.min_lr_ratio", "must lie between 0 and 1")
        _check(0 < self.pretrained_lr_ratio <= 1, "train.pretrained_lr_ratio", "must lie in (0, 1]")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole recipe."""

    task: str = "lm"  # lm (language model) | translate | classify | autoencoder (sequence autoencoder)
    name: str = "run"  # run directory name under runs/
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    members: list[dict[str, Any]] = field(default_factory=list)  # ensemble members' own settings (member_settings)

    def validate(self) -> None:
        from lstmnlp.member_settings import check_members

        _check(self.task in TASKS, "task", "must be one of " + ", ".join(TASKS))
        self.data.validate()
        self.tokenizer.validate()
        self.model.validate()
        self.train.validate()
        _check(self.task == "classify" or not (self.train.parallel_members and self.train.ensemble > 1),
               "train.parallel_members", "is for classifiers; members of other ensembles share the first "
               "member's tokenizer, so they train one after another")
        _check(not self.model.nbsvm_refit or self.model.nbsvm_ngrams, "model.nbsvm_refit",
               "refits the NBSVM of model.nbsvm_ngrams: set that too")
        _check(not (self.model.nbsvm_refit and self.data.valid), "model.nbsvm_refit",
               "refits on the validation share held out of the training data (data.valid_fraction); with "
               "data.valid, a file of its own, it would learn the data that measures it")
        _check(not (self.model.word_vectors and self.model.init_from), "model.word_vectors",
               "model.init_from already brings the embedding; set one of the two")
        _check(not (self.model.target_word_vectors and self.model.share_embeddings), "model.target_word_vectors",
               "the target side shares the source embedding (model.share_embeddings), which model.word_vectors "
               "fills; set one file, there")
        tied_to_input = self.model.tie_weights and (self.task == "lm" or self.model.share_embeddings)
        _check(not (self.model.freeze_embeddings and tied_to_input), "model.freeze_embeddings",
               "the output layer shares the embedding (model.tie_weights), so it would stay untrained too; "
               "set model.tie_weights=false")
        _check(self.task != "lm" or not self.model.bidirectional, "model.bidirectional",
               "a language model must not see the future; set model.bidirectional=false")
        _check(self.task == "lm" or not self.model.backward, "model.backward",
               "is for language models (task: lm); a classifier takes a backward LM through model.init_from")
        if self.task == "translate":
            _check(bool(self.data.source_lang and self.data.target_lang), "data.source_lang",
                   "translation needs data.source_lang and data.target_lang")
            _check(self.tokenizer.joint or not self.model.share_embeddings, "model.share_embeddings",
                   "needs tokenizer.joint=true")
        if self.task == "autoencoder":
            _check(self.model.attention == "none", "model.attention",
                   "an autoencoder must rebuild each line from the encoder's final state alone (with "
                   "attention it learns to copy); set model.attention=none")
            _check(self.tokenizer.joint, "tokenizer.joint", "an autoencoder has one vocabulary; set it true")
        _check(self.train.ensemble == 1 or self.task in ("classify", "lm") or self.tokenizer.joint,
               "train.ensemble", "is for classifiers, language models and joint-vocabulary translation models")
        check_members(self)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise UserError(f"{key}: {message}")


def load_config(recipe: Path | None, overrides: list[str] = (), *,
                base: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a YAML recipe (or `base`), apply `a.b=value` overrides, and validate.

    Raises:
        UserError: on a missing file, bad YAML, unknown key or bad value.
    """
    tree: dict[str, Any] = dict(base or {})
    if recipe is not None:
        tree = read_yaml(recipe)
    for override in overrides:
        key, value = parse_override(override)
        set_dotted(tree, key, value)
    config = config_from_dict(tree)
    if base is None:  # a recipe as written: a run resumed from its saved settings is not refused
        check_task_keys(config)
    return config


def check_task_keys(config: ExperimentConfig) -> None:
    """Refuse a key of TASK_KEYS set away from its default, by the recipe or one of its `members`,
    for a task that does not read it."""
    from lstmnlp.member_settings import apply_settings

    defaults = ExperimentConfig()
    for number in range(len(config.members) + 1):
        member = apply_settings(config, number) if number else config
        where = f"members[{number}]: " if number else ""
        for key, tasks in TASK_KEYS.items():
            section, name = key.split(".")
            value, default = (getattr(getattr(tree, section), name) for tree in (member, defaults))
            if config.task not in tasks and value != default:
                raise UserError(f"{where}{key}: is read by {', '.join(tasks)} runs only, and this one "
                                f"is task: {config.task}; remove it")


def config_from_dict(tree: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an ExperimentConfig from nested dicts, strictly."""
    config = build_dataclass(ExperimentConfig, tree)
    config.validate()
    return config


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict of a config, for config.yaml and checkpoints."""
    return dataclasses.asdict(config)


def dump_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML text, every key written out."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
