"""Building blocks shared by detectors: backbones and their weights, score-map and point-score
operations, anomalous regions."""
