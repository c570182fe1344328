-- What the database's catalog says about the platform's tables (`rollout.store.indexes`).

-- name: index_keys
-- The key columns of every index of these tables that can serve an equality lookup (a valid,
-- non-partial B-tree or hash index), one row per column in key order. An expression key has no
-- column name, and ends what the index can serve.
SELECT t.relname AS table_name, i.relname AS index_name, k.position, a.attname AS column_name
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k (attnum, position)
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0
WHERE t.relname IN :tables AND pg_table_is_visible(t.oid)
  AND x.indisvalid AND x.indpred IS NULL AND am.amname IN ('btree', 'hash')
  AND k.position <= x.indnkeyatts
ORDER BY 1, 2, 3;

-- name: index_keys@sqlite
SELECT m.name AS table_name, il.name AS index_name, ii.seqno + 1 AS position, ii.name AS column_name
FROM sqlite_master m
JOIN pragma_index_list(m.name) il
JOIN pragma_index_info(il.name) ii
WHERE m.type = 'table' AND m.name IN :tables AND il.partial = 0
ORDER BY 1, 2, 3;

-- name: unbounded_statement_time
-- `rollout db indexes`: an index build on a large table may take longer than the role's
-- statement_timeout; this session has none.
SELECT set_config('statement_timeout', '0', false);

-- name: unbounded_statement_time@sqlite
-- Nothing: SQLite has no statement timeout.
