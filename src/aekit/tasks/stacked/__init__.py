"""Greedy layer-wise stacking (layerwise.py) and the supervised fine-tuning head (classifier.py)."""
