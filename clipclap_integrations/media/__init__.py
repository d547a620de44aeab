"""Decoding and preprocessing, one module per modality, exactly as the source models did."""
