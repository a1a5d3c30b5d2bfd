"""The uses built on the models: anomaly detection, compression, denoising, augmentation,
segmentation, layer-wise stacking, disentanglement metrics, the explorer, export, scikit-learn
estimators. Tasks import the core (model, build, training, data, metrics) and never the CLI."""
