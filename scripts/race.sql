-- The race's batch side (scripts/bench-race.py): agg_sales_minute and
-- agg_funnel_5min computed by DuckDB from the generated JSON-lines files,
-- straight from the definitions in docs/metrics.md. `{dir}` is the data set.
-- Money is exact: amounts are read as text into integer cents and rates into
-- integer millionths; USD amounts are rounded half to even by integer
-- arithmetic, as shopflow does.

-- Every line of the three event files, with its raw text (the dedup tiebreak).
CREATE TEMP TABLE raw AS
SELECT kind, line
FROM (
    SELECT 'click' AS kind, line FROM read_csv('{dir}/clicks.jsonl', columns = {'line': 'VARCHAR'}, header = false, delim = '\x01', quote = '', escape = '', auto_detect = false)
    UNION ALL
    SELECT 'cart', line FROM read_csv('{dir}/carts.jsonl', columns = {'line': 'VARCHAR'}, header = false, delim = '\x01', quote = '', escape = '', auto_detect = false)
    UNION ALL
    SELECT 'purchase', line FROM read_csv('{dir}/purchases.jsonl', columns = {'line': 'VARCHAR'}, header = false, delim = '\x01', quote = '', escape = '', auto_detect = false)
);

-- Deduplicated events: per event_id the version with the smallest ts, then
-- the smallest raw bytes.
CREATE TEMP TABLE events AS
SELECT kind, event_id, session_id, ts, line
FROM (
    SELECT kind, line, f[1] AS event_id, f[2] AS session_id, CAST(f[3] AS TIMESTAMPTZ) AS ts
    FROM (
        -- One parse of each line for its three fields.
        SELECT kind, line, json_extract_string(line, ['$.event_id', '$.session_id', '$.ts']) AS f
        FROM raw
    )
)
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, line) = 1;

-- FX: per (currency, date) the last record of the file wins.
CREATE TEMP TABLE fx AS
SELECT currency, date, rate_micros
FROM (
    SELECT json_extract_string(line, '$.currency') AS currency,
           CAST(json_extract_string(line, '$.date') AS DATE) AS date,
           CAST(CAST(json_extract_string(line, '$.rate') AS DECIMAL(18, 6)) * 1000000 AS BIGINT) AS rate_micros,
           row_number() OVER (
               PARTITION BY json_extract_string(line, '$.currency'), json_extract_string(line, '$.date')
               ORDER BY n DESC
           ) AS newest
    FROM (
        SELECT line, row_number() OVER () AS n
        FROM read_csv('{dir}/fx_rates.jsonl', columns = {'line': 'VARCHAR'}, header = false, delim = '\x01', quote = '', escape = '', auto_detect = false)
    )
)
WHERE newest = 1;

-- Orders with the rate of the latest date on or before their UTC date.
CREATE TEMP TABLE orders AS
WITH o AS (
    SELECT event_id, ts,
           json_extract_string(line, '$.user_id') AS user_id,
           json_extract_string(line, '$.currency') AS currency,
           CAST(CAST(json_extract_string(line, '$.total_amount') AS DECIMAL(18, 2)) * 100 AS BIGINT) AS cents,
           (SELECT sum(CAST(json_extract_string(item, '$.quantity') AS BIGINT))
            FROM unnest(CAST(json_extract(line, '$.items') AS JSON[])) AS t(item)) AS items,
           CAST(timezone('UTC', ts) AS DATE) AS day
    FROM events
    WHERE kind = 'purchase'
),
rated AS (
    SELECT o.*,
           CASE WHEN o.currency = 'USD' THEN 1000000
                ELSE (SELECT fx.rate_micros FROM fx
                      WHERE fx.currency = o.currency AND fx.date <= o.day
                      ORDER BY fx.date DESC LIMIT 1)
           END AS rate_micros
    FROM o
)
SELECT event_id, ts, user_id, items,
       -- round_half_even(cents * 1e6 / rate) with integers
       CASE
           WHEN 2 * ((cents * 1000000) % rate_micros) > rate_micros THEN (cents * 1000000) // rate_micros + 1
           WHEN 2 * ((cents * 1000000) % rate_micros) = rate_micros
               THEN (cents * 1000000) // rate_micros + ((cents * 1000000) // rate_micros) % 2
           ELSE (cents * 1000000) // rate_micros
       END AS usd_cents
FROM rated
WHERE rate_micros IS NOT NULL;

CREATE TEMP TABLE agg_sales_minute AS
SELECT time_bucket(INTERVAL 1 minute, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS window_start,
       count(*) AS orders,
       sum(items) AS items,
       sum(usd_cents) AS revenue_cents,
       count(DISTINCT user_id) AS buyers
FROM orders
GROUP BY 1;

CREATE TEMP TABLE agg_funnel_5min AS
SELECT time_bucket(INTERVAL 5 minute, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS window_start,
       count(DISTINCT session_id) AS sessions_active,
       count(DISTINCT session_id) FILTER (WHERE kind <> 'click') AS sessions_carted,
       count(DISTINCT session_id) FILTER (WHERE kind = 'purchase') AS sessions_purchased
FROM events
GROUP BY 1;

-- Both tables as shopflow's CSV writes them (RFC 3339 UTC, two-decimal money;
-- aov = round_half_even(revenue / orders, 2)).
CREATE TEMP TABLE sales_csv AS
SELECT strftime(timezone('UTC', window_start), '%Y-%m-%dT%H:%M:%SZ') AS window_start,
       orders, items,
       printf('%d.%02d', revenue_cents // 100, revenue_cents % 100) AS revenue_usd,
       printf('%d.%02d', aov // 100, aov % 100) AS aov_usd,
       buyers
FROM (
    SELECT *,
           CASE
               WHEN 2 * (revenue_cents % orders) > orders THEN revenue_cents // orders + 1
               WHEN 2 * (revenue_cents % orders) = orders
                   THEN revenue_cents // orders + (revenue_cents // orders) % 2
               ELSE revenue_cents // orders
           END AS aov
    FROM agg_sales_minute
);

CREATE TEMP TABLE funnel_csv AS
SELECT strftime(timezone('UTC', window_start), '%Y-%m-%dT%H:%M:%SZ') AS window_start,
       sessions_active, sessions_carted, sessions_purchased
FROM agg_funnel_5min;
