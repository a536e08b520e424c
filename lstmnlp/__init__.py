"""lstmnlp: train, sample and evaluate LSTM sequence models from the command line."""

__version__ = "0.1.0"


def load(*run_dirs, quantize: str = ""):
    """Trained run(s) as one model to use from Python (`lstmnlp.api`): `generate`/`score` for a
    language model, `classify`/`probabilities` for a classifier, `translate` for a translator."""
    from lstmnlp.api import load as load_runs  # torch is imported on first use, not with the CLI

    return load_runs(*run_dirs, quantize=quantize)
