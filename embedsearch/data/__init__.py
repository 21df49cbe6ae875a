"""Data: input sources (folders, tables, text files), robust image decoding, synthetic corpora."""
