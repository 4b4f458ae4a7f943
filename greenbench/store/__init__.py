"""greenbench's content-addressed store.

Modules: :mod:`.multiformats` (varints, bases, codec tables), :mod:`.cid` (CIDs), :mod:`.dagjson` and
:mod:`.dagcbor` (IPLD codecs), :mod:`.dagpb` (links out of dag-pb blocks, read only), :mod:`.car`
(CARv1 read/write, CARv2 read), :mod:`.commp` (Filecoin piece CIDs), :mod:`.local` (the embedded
blockstore with its SQLite result index). Import the submodule you need; this package imports nothing.
"""
