"""Reading corpora: plain text, parallel text, labeled text, SST trees, hub datasets.

Local files are checked before anything else reads them, so that a bad file gives one line that
names it (and the line, where one is at fault). Local loads never touch the network. Nothing is
dropped silently: every loader returns a `LoadReport` that counts what it skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lstmnlp.errors import UserError


@dataclass
class LoadReport:
    """What a loader read and what it had to leave out."""

    source: str
    examples: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def summary(self) -> str:
        text = f"{self.source}: {self.examples:,} examples"
        if self.skipped:
            text += " (skipped: " + ", ".join(f"{n:,} {why}" for why, n in self.skipped.items()) + ")"
        return text


@dataclass
class LabeledData:
    """Texts with one label name each."""

    texts: list[str]
    labels: list[str]
    report: LoadReport


def check_text_file(path: Path) -> None:
    """Raise UserError unless `path` is a non-empty UTF-8 text file."""
    read_text(path)


def read_text(path: Path) -> str:
    """The whole file as text, after checking it exists, is a file, is not empty and is UTF-8
    (a leading byte-order mark removed)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a text file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    if not raw.strip():
        raise UserError(f"{path}: file is empty")
    if b"\x00" in raw[:65536]:
        raise UserError(f"{path}: looks like a binary file (NUL bytes), expected UTF-8 text")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is dropped
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[error.start]:02x}); "
                        "convert the file to UTF-8, e.g. with iconv") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a text file split on '\\n' only (so parallel files stay aligned), without ends."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_parallel(source_path: Path, target_path: Path) -> tuple[list[str], list[str]]:
    """Two files aligned by line; their line counts must agree."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise UserError(f"{source_path} has {len(sources):,} lines but {target_path} has "
                        f"{len(targets):,}: parallel files must be aligned line by line")
    return sources, targets


def read_labeled(path: Path, *, text_column: str = "text", label_column: str = "label") -> LabeledData:
    """TSV, CSV or JSONL with a text and a label column, read through `datasets`."""
    path = Path(path)
    check_text_file(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        builder, options = "json", {}
    elif suffix in (".tsv", ".csv"):
        builder, options = "csv", {"sep": "\t" if suffix == ".tsv" else ","}
    else:
        raise UserError(f"{path}: unknown labeled format; use .tsv, .csv or .jsonl")
    dataset = _load_local(builder, path, options)
    for column in (text_column, label_column):
        if column not in dataset.column_names:
            hint = ("; a .tsv/.csv file's first line names its columns" if suffix in (".tsv", ".csv") else "")
            raise UserError(f"{path}: no column {column!r} (columns: {', '.join(dataset.column_names)}{hint})")
    report = LoadReport(str(path))
    texts, labels = [], []
    for row, (text, label) in enumerate(zip(dataset[text_column], dataset[label_column]), start=1):
        if text is None or label is None or not str(text).strip():
            report.skip("rows with an empty text or label")
            continue
        texts.append(str(text))
        labels.append(str(label))
    report.examples = len(texts)
    return LabeledData(texts, labels, report)


def read_label_files(files: dict[str, Path]) -> LabeledData:
    """One file per label, one example per line (as in Pang & Lee's sentence polarity data)."""
    report = LoadReport(", ".join(str(p) for p in files.values()))
    texts, labels = [], []
    for label, path in files.items():
        for line in read_lines(path):
            if not line.strip():
                report.skip("empty lines")
                continue
            texts.append(line.strip())
            labels.append(label)
    report.examples = len(texts)
    return LabeledData(texts, labels, report)


def _load_local(builder: str, path: Path, options: dict):
    """`datasets.load_dataset` on one local file, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # datasets wraps parser errors in several types
        raise UserError(f"{path}: cannot parse as {builder} ({str(error).splitlines()[0]})") from None


def load_hub_text(spec: str, *, split: str, column: str) -> list[str]:
    """Texts of one split of a hub dataset named `hub:NAME[:CONFIG]` (needs a network)."""
    name, _, config = spec.removeprefix("hub:").partition(":")
    import datasets

    datasets.logging.set_verbosity_error()
    try:
        dataset = datasets.load_dataset(name, config or None, split=split)
    except Exception as error:  # network, missing dataset, missing split
        raise UserError(f"{spec}: cannot load split {split!r} from the hub "
                        f"({str(error).splitlines()[0]}); use --data-dir with local files") from None
    if column not in dataset.column_names:
        raise UserError(f"{spec}: no column {column!r} (columns: {', '.join(dataset.column_names)})")
    return [str(text) for text in dataset[column]]


def split_tail(text: str, fraction: float) -> tuple[str, str]:
    """(head, tail) of a text, the tail holding `fraction` of its characters."""
    cut = int(len(text) * (1.0 - fraction))
    return text[:cut], text[cut:]


SST_BRACKETS = {"-LRB-": "(", "-RRB-": ")"}


def parse_sst_tree(line: str) -> list[tuple[int, str]]:
    """All labeled phrases of one PTB-style SST tree, root first: [(label, text), ...].

    Text is the phrase's leaves joined by spaces, with -LRB-/-RRB- turned back into parentheses.
    """
    tokens = line.replace("(", " ( ").replace(")", " ) ").split()
    phrases: list[tuple[int, str]] = []
    position = 0

    def parse() -> list[str]:
        nonlocal position
        if tokens[position] != "(":
            raise ValueError("expected '('")
        label = int(tokens[position + 1])
        position += 2
        slot = len(phrases)
        phrases.append((label, ""))
        leaves: list[str] = []
        while tokens[position] != ")":
            if tokens[position] == "(":
                leaves.extend(parse())
            else:
                leaves.append(SST_BRACKETS.get(tokens[position], tokens[position]))
                position += 1
        position += 1
        phrases[slot] = (label, " ".join(leaves))
        return leaves

    parse()
    if position != len(tokens):
        raise ValueError("text after the tree")
    return phrases


def read_sst(path: Path, *, label_names: dict[int, str], phrases: bool = False) -> LabeledData:
    """SST trees; labels mapped through `label_names` (a label absent from it is dropped and counted).

    With `phrases`, every labeled phrase of every tree is an example, not only the roots.
    """
    report = LoadReport(str(path))
    texts, labels = [], []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            report.skip("empty lines")
            continue
        try:
            tree = parse_sst_tree(line)
        except (ValueError, IndexError):
            raise UserError(f"{path}:{number}: not a PTB-style sentiment tree") from None
        for label, text in tree if phrases else tree[:1]:
            if label not in label_names:
                report.skip(f"examples with label {label}")
                continue
            texts.append(text)
            labels.append(label_names[label])
    report.examples = len(texts)
    return LabeledData(texts, labels, report)


def resolve_data_dir(data_dir: str) -> Path | None:
    """The folder a recipe reads its files from: `builtin` is the corpus shipped in the package;
    empty means none (the recipe's hub dataset is used)."""
    if not data_dir:
        return None
    if data_dir == "builtin":
        return Path(__file__).parent / "corpus"
    path = Path(data_dir)
    if not path.is_dir():
        raise UserError(f"{path}: data directory not found")
    return path
