"""The `discover` stage's work: train LRD standalone, label candidate pairs, read out quality.

    model.py    the standalone LRD model and its training (the shared loop)
    pairs.py    candidate pairs: co-occurring in training sequences, FAISS neighbours
    labels.py   labelling pairs with latent types and the one triplet-table writer
    readout.py  usage, confidence, NMI against predefined types; the per-type readout a person reads
    coherence.py  shared attributes of a type's pairs against random / co-occurring pairs (lift, Wilson CI)
    known.py    known relations shipped in known_relations/<dataset>.csv (ML-100K film series), their recall
    report.py   the readout as Markdown and a chart (reports/<ds>/relations.{md,png}, `lrd relations readout`)
    run.py      the stage's work, from the processed tables and the embedding store to the outputs
"""
