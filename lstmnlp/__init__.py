"""lstmnlp: train, sample and evaluate LSTM sequence models from the command line."""

__version__ = "0.1.0"
