"""greenbench's content-addressed store.

Formats: :mod:`.multiformats` (varints, bases, codec tables), :mod:`.cid` (CIDs), :mod:`.dagjson`,
:mod:`.dagcbor` and :mod:`.dagpb` (IPLD codecs), :mod:`.unixfs` (files and directories as IPFS stores them),
:mod:`.car` (CARv1 read/write, CARv2 read), :mod:`.commp` (Filecoin piece CIDs), :mod:`.dag` (content paths
and the trustless gateway's block selections).

The embedded store, split by concern: :mod:`.local` (``LocalStore``, the facade), :mod:`.blockfiles` (one
file per block), :mod:`.packs` (many blocks per file), :mod:`.index` (the SQLite index: packed blocks,
results, pins), :mod:`.files` (storing and reading files), :mod:`.imports` (CAR import, DAG walks),
:mod:`.maintenance` (verify, gc, reindex). Clients of other nodes: :mod:`.kubo` (Kubo RPC), :mod:`.remote`
(a greenbench server). Nothing here imports from above the store (publish, signing, leaderboard, server,
cli). Import the submodule you need; this package imports nothing.
"""
