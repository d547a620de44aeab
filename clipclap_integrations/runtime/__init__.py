"""The model on disk and in onnxruntime: folders, the Hub, graph signatures, sessions,
optimized copies."""
