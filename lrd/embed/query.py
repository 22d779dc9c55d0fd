"""Free text as a vector of a store's own model, for `lrd neighbors --text`."""

from __future__ import annotations

import numpy as np

from lrd.config.base import build

from lrd.config.embed import EmbedConfig
from lrd.embed.store import EmbeddingStore
from lrd.errors import ConfigError


def encode_query(store: EmbeddingStore, text: str) -> np.ndarray:
    """Encode free text with the store's own model settings."""
    cfg = build(EmbedConfig, store.manifest["config"], "embed")
    if cfg.backend == "file":
        raise ConfigError(f"{store.path} holds vectors read from {cfg.path}: there is no model to encode free text; search by item instead")
    if cfg.backend == "openai":
        from lrd.embed.remote import RemoteEncoder, RemoteSettings

        with RemoteEncoder(RemoteSettings.from_config(cfg)) as encoder:
            return encoder.encode([text], progress=False)
    from lrd.embed.encoders import load_encoder, resolve_devices, resolve_model_path

    encoder = load_encoder(cfg, resolve_model_path(cfg.model), resolve_devices(cfg)[0])
    return encoder.encode([text], progress=False)
