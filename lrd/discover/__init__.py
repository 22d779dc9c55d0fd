"""The `discover` stage's work: train LRD standalone, label candidate pairs, read out quality.

    model.py    the standalone LRD model and its training (the shared loop)
    pairs.py    candidate pairs: co-occurring in training sequences, FAISS neighbours
    labels.py   labelling pairs with latent types and the one triplet-table writer
    readout.py  usage, confidence, NMI against predefined types
    run.py      the stage's work, from the processed tables and the embedding store to the outputs
"""
