"""Distributing a catalog: ``export`` (stac-geoparquet and ndjson beside each collection),
``publish`` (upload to an object store, leaves first), ``download`` (a filtered, verified,
resumable copy), ``serve`` (a static server with Range and CORS, ``httpserve``; a filtering STAC
API front over ``rustac serve``, ``apifront`` with ``cql2filter``; STAC Browser) and ``info``
(``inspect``). Each module holds a library function and its thin click command."""
