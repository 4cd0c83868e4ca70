"""MVR (multi-view reconstruction): config, network (frozen teacher + Dinomaly student),
training, scanner simulation, placement, scoring and its checkpoint format.

The detector is ``mvr3d.models.mvr.detector.MVRDetector`` (also ``mvr3d.models.MVRDetector``).
This package imports nothing itself: the shared persistence code reads MVR's checkpoint
format without importing the detector, which imports that persistence code."""
