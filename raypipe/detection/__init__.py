"""Finding each source's subject: the detectors (saliency, CLIP, faces), the detections' types and their cache."""
