"""Raw datasets in, canonical Parquet tables out (see lrd.schemas)."""
