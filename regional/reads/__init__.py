"""The hub's reads on the replica, one function per read, by domain. Each takes a connection,
the caller and the read's parsed parameters, checks access on the same connection, and returns
the action's wire answer. The single-action handlers (``regional.twins``, ``artifacts``,
``events``, ``trajectory``, ``ledger``, ``export``) and ``batch_query`` call the same functions,
so an answer is read, authorized and built in one place whichever way it is asked.

- ``twins``: ``twin_view_on``, ``grant_list_on`` (and ``twin_view_of``/``grant_list_of`` for a
  row the twin reads got from the near cache or Redis);
- ``history``: ``event_list_on``, ``trajectory_on`` (a listing past the hot window reads
  ``archive``: ``ColdEvents``, the cold tier's Parquet files);
- ``artifacts``: ``artifact_view_on``, ``artifact_list_on``;
- ``wallets``: ``wallet_on``;
- ``export``: ``twin_export_on``, composed of the others."""
