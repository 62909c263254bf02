"""Pictures as bytes, with no torch: headers, bounded decoding, clip planning, encoding to fit.
The bot reads headers with it (its intake); the worker decodes and encodes with it."""
