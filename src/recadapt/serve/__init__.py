"""The recommendation service: an HTTP API over a trained run (``recadapt serve``)."""
