"""LLM item representations: encoders, an incremental vector cache, FAISS indexes and the store."""
