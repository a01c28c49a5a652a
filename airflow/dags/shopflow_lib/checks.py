"""The SQL data-quality checks of the replayed days (common-sql operators).

Each check states what it means in its `doc_md`, which the failure alert
quotes. Every statement is an aggregate (`count(*) FILTER (WHERE …) = 0`
rather than a per-row predicate), so a day without rows in a table passes
instead of failing on an empty MIN. A failed check is final
(`retry_on_failure=False`): the data will not change by asking again.

Facts and windows are checked over the replayed days; dimensions whole
(they are not partitioned by day, and a broken key anywhere breaks joins
everywhere).
"""

from airflow.providers.common.sql.operators.sql import SQLCheckOperator, SQLTableCheckOperator

from shopflow_lib.settings import RANGE_END, RANGE_START, SCHEMA, WAREHOUSE_CONN



def in_range(column):
    """`column` is in the replayed days."""
    return f"{column} >= {RANGE_START} AND {column} < {RANGE_END}"


IN_RANGE = in_range("ts")
WINDOW_IN_RANGE = in_range("window_start")

# table: (its keys, each a column or a tuple of columns; the rows to check)
KEYS = {
    "dim_user": (["user_key", "user_id"], None),
    "dim_product": (["product_key", ("product_id", "valid_from")], None),
    "dim_currency": (["currency_key", "currency_code"], None),
    "dim_time": (["time_key", "ts_minute"], None),
    "fact_clicks": (["event_id"], IN_RANGE),
    "fact_cart": (["event_id"], IN_RANGE),
    "fact_orders": (["event_id"], IN_RANGE),
    "fact_order_items": ([("event_id", "line_number")], IN_RANGE),
}

# fact: {foreign key: (dimension, extra condition tying the member to the fact)}
FOREIGN_KEYS = {
    "fact_clicks": {"user_key": ("dim_user", ""), "time_key": ("dim_time", ""),
                    "product_key": ("dim_product", "")},
    "fact_cart": {"user_key": ("dim_user", ""), "time_key": ("dim_time", ""),
                  "product_key": ("dim_product", "")},
    "fact_orders": {"user_key": ("dim_user", ""), "time_key": ("dim_time", ""),
                    "currency_key": ("dim_currency", "")},
    "fact_order_items": {"product_key": ("dim_product", "")},
}
# The stricter meaning of a resolved key: the member is the right one for the fact's time.
MEMBER_FITS = {
    "time_key": "d.ts_minute = date_trunc('minute', f.ts)",
    "product_key": "d.valid_from <= f.ts AND (d.valid_to IS NULL OR f.ts < d.valid_to)",
}

RUNBOOK_KEYS = """
**When it fails**: the warehouse lost a constraint (compare `\\d {table}` with
`sql/V001__star_schema.sql`) or something other than shopflow wrote the
table. Find the rows with the query in the log, remove the stray ones, then
clear the replay task so the day is rewritten.
"""


def key_checks(conn_id=WAREHOUSE_CONN):
    tasks = []
    for table, (keys, where) in KEYS.items():
        checks = {}
        for key in keys:
            cols = key if isinstance(key, tuple) else (key,)
            name = "_".join(cols)
            checks[f"{name}_not_null"] = {"check_statement": "count(*) FILTER (WHERE "
                                          + " OR ".join(f"{c} IS NULL" for c in cols) + ") = 0"}
            distinct = f"({', '.join(cols)})" if len(cols) > 1 else cols[0]
            checks[f"{name}_unique"] = {"check_statement": f"count(DISTINCT {distinct}) = count(*)"}
        if table == "dim_product":
            checks["one_current_version"] = {"check_statement":
                "count(DISTINCT product_id) FILTER (WHERE is_current) = count(*) FILTER (WHERE is_current)"}
        scope = "in the replayed days" if where else "in the whole table"
        tasks.append(SQLTableCheckOperator(
            task_id=f"keys_{table}", conn_id=conn_id, table=f"{SCHEMA}.{table}", checks=checks,
            partition_clause=where, retry_on_failure=False,
            doc_md=f"**Meaning**: every key of `{table}` ({', '.join(map(str, keys))}) is set and "
                   f"unique {scope}" + (" and each product has at most one current version"
                                        if table == "dim_product" else "") + "."
                   + RUNBOOK_KEYS.format(table=table)))
    return tasks


def foreign_key_checks(conn_id=WAREHOUSE_CONN):
    tasks = []
    for fact, fks in FOREIGN_KEYS.items():
        checks = {}
        for fk, (dim, _) in fks.items():
            fits = MEMBER_FITS.get(fk, "true")
            checks[f"{fk}_resolves"] = {"check_statement":
                f"count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.{dim} d "
                f"WHERE d.{fk} = f.{fk} AND {fits})) = 0"}
        if fact == "fact_order_items":
            checks["order_resolves"] = {"check_statement":
                f"count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.fact_orders o "
                "WHERE o.event_id = f.event_id)) = 0"}
        tasks.append(SQLTableCheckOperator(
            task_id=f"foreign_keys_{fact}", conn_id=conn_id, table=f"{SCHEMA}.{fact} f",
            checks=checks, partition_clause=in_range("f.ts"), retry_on_failure=False,
            doc_md=f"**Meaning**: every row of `{fact}` in the replayed days points at an existing "
                   f"member of {', '.join(sorted({d for d, _ in fks.values()}))}"
                   + ("; the time member is the fact's minute and the product member is the version "
                      "valid at the fact's time" if fact != "fact_orders" else
                      "; the time member is the order's minute")
                   + ("; every line belongs to an order" if fact == "fact_order_items" else "")
                   + ".\n\n**When it fails**: a dimension member was deleted or re-keyed behind "
                   "the pipeline's back (the foreign-key constraints were dropped?), or a product "
                   "version's validity was edited. Restore the dimension (or the constraints), "
                   "then clear the replay task: the day's facts are re-resolved."))
    return tasks


SALES_SQL = f"""
WITH facts AS (
    SELECT date_trunc('minute', ts) AS minute, count(*) AS orders, sum(total_amount_usd) AS revenue
    FROM {SCHEMA}.fact_orders WHERE {IN_RANGE} GROUP BY 1
), windows AS (
    SELECT window_start AS minute, orders, revenue_usd AS revenue
    FROM {SCHEMA}.agg_sales_minute WHERE {WINDOW_IN_RANGE}
)
SELECT count(*) FILTER (WHERE w.orders IS DISTINCT FROM f.orders) = 0 AS orders_match,
       count(*) FILTER (WHERE w.revenue IS DISTINCT FROM f.revenue) = 0 AS revenue_match
FROM windows w FULL JOIN facts f USING (minute)
"""

FUNNEL_CHECKS = {
    "active_ge_carted": {"check_statement": "count(*) FILTER (WHERE sessions_active < sessions_carted) = 0"},
    "carted_ge_purchased": {"check_statement": "count(*) FILTER (WHERE sessions_carted < sessions_purchased) = 0"},
    "purchased_ge_zero": {"check_statement": "count(*) FILTER (WHERE sessions_purchased < 0) = 0"},
}

FRESHNESS_SQL = f"""
SELECT {{{{ var.value.get('shopflow_freshness_minutes', '30') | int }}}} = 0
       OR coalesce(max(updated_at) >= now() - make_interval(
              mins => {{{{ var.value.get('shopflow_freshness_minutes', '30') | int }}}}), false)
       AS pipeline_progress_fresh
FROM {SCHEMA}.pipeline_progress
"""


def aggregate_checks(conn_id=WAREHOUSE_CONN):
    return [
        SQLCheckOperator(
            task_id="sales_match_orders", conn_id=conn_id, sql=SALES_SQL, retry_on_failure=False,
            doc_md="**Meaning**: for every minute of the replayed days, `agg_sales_minute.orders` "
                   "equals the number of `fact_orders` rows of that minute and `revenue_usd` equals "
                   "the sum of their `total_amount_usd`; no minute has orders without a window row "
                   "or a window row without orders.\n\n**When it fails**: the windows and the facts "
                   "were written by different runs (a live run still correcting the day while it was "
                   "replayed, or a partial manual fix). Clear the replay task: it rewrites both in "
                   "one transaction."),
        SQLTableCheckOperator(
            task_id="funnel_nested", conn_id=conn_id, table=f"{SCHEMA}.agg_funnel_5min",
            checks=FUNNEL_CHECKS, partition_clause=WINDOW_IN_RANGE, retry_on_failure=False,
            doc_md="**Meaning**: in every 5-minute window of the replayed days, "
                   "`sessions_active >= sessions_carted >= sessions_purchased >= 0` (a session that "
                   "purchased also carted and was active; docs/metrics.md).\n\n**When it fails**: "
                   "the funnel's definition is broken in the binary that wrote it (a shopflow bug: "
                   "report it with the window), or the rows were edited. Clear the replay task to "
                   "rewrite them; if the replay writes them again, it is the binary."),
    ]


def freshness_check(conn_id=WAREHOUSE_CONN):
    return SQLCheckOperator(
        task_id="pipeline_fresh", conn_id=conn_id, sql=FRESHNESS_SQL, retry_on_failure=False,
        doc_md="**Meaning**: the live `shopflow run` committed to the warehouse within the last "
               "`shopflow_freshness_minutes` minutes (newest `pipeline_progress.updated_at`; "
               "Variable, default 30, 0 turns the check off). It is about the live pipeline now, "
               "not about the replayed days.\n\n**When it fails**: the live pipeline is stopped, "
               "stuck or cannot reach the warehouse: check its process, its /healthz and "
               "`shopflow_frontier_lag_seconds`, and its log (docs/operations.md).")
