"""User value -> typed item: classification, chat parts, data URIs, streams, sniffing and
remote fetching. Nothing here decodes media."""
