"""What a run writes beside its metrics: analyses of the trained model and their plots."""
