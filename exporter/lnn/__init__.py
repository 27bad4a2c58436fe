"""Liquid neural network failure model: features, CfC network, artifacts, predictor, dataset.

Nothing is imported here so that importing `exporter.lnn` never pulls in torch; import the
submodules (`exporter.lnn.predictor`, ...) where they are needed.
"""
