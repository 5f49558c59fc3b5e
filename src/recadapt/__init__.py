"""recadapt: adapt frozen foundation models to recommendation, efficiently."""

__version__ = "0.1.0"
