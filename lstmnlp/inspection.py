"""What `lstmnlp inspect` computes: LSTM unit activations against simple text features
(Karpathy, Johnson & Fei-Fei 2015, arXiv:1506.02078), and per-token weights of a classifier
(its attention, or gradient saliency).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lstmnlp.modules.gates import GateTrace, trace_gates
from lstmnlp.tokenizer import Tokenizer

OPENING, CLOSING = "([{", ")]}"


@dataclass
class UnitReport:
    tokens: list[str]  # each token's text (a newline shown as "\n")
    traces: list[GateTrace]  # per layer
    features: dict[str, list[float]]  # feature name -> value per token
    correlations: dict[str, list[tuple[int, float]]]  # feature -> [(unit, r)] strongest first


def token_features(tokens: list[str]) -> dict[str, list[float]]:
    """Per token: inside double quotes, position in the line (characters), inside brackets."""
    quoted, depth, column = False, 0, 0
    inside_quotes, position, inside_brackets = [], [], []
    for token in tokens:
        inside_quotes.append(float(quoted))
        position.append(float(column))
        inside_brackets.append(float(depth > 0))
        for character in token:
            if character == '"':
                quoted = not quoted
            elif character in OPENING:
                depth += 1
            elif character in CLOSING:
                depth = max(0, depth - 1)
        column = 0 if token.endswith("\n") else column + len(token)
    return {"inside quotes": inside_quotes, "position in line": position, "inside brackets": inside_brackets}


def correlate(values: torch.Tensor, feature: list[float], top: int) -> list[tuple[int, float]]:
    """Pearson r of every unit's values (T, H) with a feature (T,); the `top` strongest by |r|."""
    target = torch.tensor(feature, dtype=torch.float64)
    if target.std() == 0:
        return []
    x = values.double() - values.double().mean(0)
    y = target - target.mean()
    r = (x * y[:, None]).sum(0) / (x.norm(dim=0) * y.norm()).clamp(min=1e-12)
    order = r.abs().argsort(descending=True)[:top]
    return [(int(unit), float(r[unit])) for unit in order]


def inspect_language_model(model, tokenizer: Tokenizer, text: str, *, layer: int, top: int = 5,
                           backward: bool = False) -> UnitReport:
    """Trace every layer over `text` (lines joined by <eos>, as in training) and correlate the
    cell states of `layer` (0-based) with the text features. A `backward` model reads the text
    from its end; its traces are turned back into text order."""
    ids: list[int] = []
    tokens: list[str] = []
    for line in text.split("\n"):
        for token_id in tokenizer.encode(line):
            ids.append(token_id)
            tokens.append(tokenizer.decode([token_id]) or tokenizer.id_to_piece(token_id))
        ids.append(tokenizer.eos_id)
        tokens.append("\n")
    ids, tokens = ids[:-1], tokens[:-1]
    if backward:
        traces = [GateTrace(*(values.flip(0) for values in trace))
                  for trace in trace_gates(model.encoder, torch.tensor(ids[::-1]))]
    else:
        traces = trace_gates(model.encoder, torch.tensor(ids))
    features = token_features(tokens)
    cells = traces[layer].cell
    correlations = {name: correlate(cells, values, top) for name, values in features.items()}
    return UnitReport(tokens, traces, features, correlations)


def classifier_token_weights(model, tokenizer: Tokenizer, text: str) -> tuple[list[str], list[float], str, int]:
    """(pieces, weight per piece, method, predicted class): attention weights when the classifier
    pools with attention, else gradient saliency (norm of d logit / d embedding, scaled to sum 1)."""
    ids = tokenizer.encode(text) + [tokenizer.eos_id]
    pieces = [tokenizer.id_to_piece(i) for i in ids[:-1]] + ["</s>"]
    batch = torch.tensor([ids])
    lengths = torch.tensor([len(ids)])
    if model.pooling.kind == "attention":
        with torch.no_grad():
            logits, weights = model(batch, lengths)
        return pieces, weights[0].tolist(), "attention", int(logits.argmax())
    captured = {}

    def keep_embedding(module, inputs, output):
        output.retain_grad()
        captured["embedded"] = output

    handle = model.encoder.embedding.register_forward_hook(keep_embedding)
    try:
        model.zero_grad()
        logits, _ = model(batch, lengths)
        predicted = int(logits.argmax())
        logits[0, predicted].backward()
    finally:
        handle.remove()
    saliency = captured["embedded"].grad[0].norm(dim=-1)  # (T,)
    saliency = saliency / saliency.sum().clamp(min=1e-12)
    return pieces, saliency.tolist(), "gradient saliency", predicted
