"""Hands in front of faces: MediaPipe palm detection and 21-point hand landmarks under LiteRT, tracked from frame
to frame, and an occlusion mask rasterised from the landmarks (palm hull plus finger bones)."""
