"""An index served as shards by id range (``indexer build --shards N``, ``indexer serve --ray``): the layout on
disk and its manifest (:mod:`.layout`), one shard served (:mod:`.shard`), and the router's view of all of them
(:mod:`.fanout`, :mod:`.router`). The transport between router and shards (Ray Serve) is the service's."""
