"""The axes of the product every model is a point of: corruption, bottleneck, regularizers, likelihood.

Backbones (encoder/decoder pairs) are the fifth axis and live in aekit.backbones.
"""
