"""MegaFS training (``vidswap train`` with ``method: megafs`` in train.yaml): config, FFHQ-aligned data, the two
sequential stages (HieRFE encoder, then the FTM) and the loop on the shared DDP / checkpoint machinery."""
