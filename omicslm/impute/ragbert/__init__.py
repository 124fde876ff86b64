"""The imputation model: a retrieval-augmented BERT over haplotype windows with a copying HMM.

Modules, in the order data flows through them (names as in the other branches):

* :mod:`~omicslm.impute.ragbert.windows` — the window table of a panel, and a query set's inputs over it
* :mod:`~omicslm.impute.ragbert.retrieval` — FAISS search of the nearest panel haplotypes per window
* :mod:`~omicslm.impute.ragbert.copying` — Li-Stephens copying model over the retrieved candidates
* :mod:`~omicslm.impute.ragbert.batches` — per-item tensors, masking, curriculum, epochs of batches
* :mod:`~omicslm.impute.ragbert.model` — the network and its allele-token vocabulary
* :mod:`~omicslm.impute.ragbert.train` — training on the reference samples (shared loop, early stopping)
* :mod:`~omicslm.impute.ragbert.predict` — a kept checkpoint applied to target haplotypes -> imputed VCF
* :mod:`~omicslm.impute.ragbert.plot` — validation curves of the variants

The data steps (ingest, split, array sites), the peers and the evaluation stay in :mod:`omicslm.impute`.
"""
