-- V002: the frontier each run of `shopflow run` committed, for crash
-- recovery from the lake (docs/lake.md, "Crash recovery").
--
-- A run is identified by the time it started (the `run_started_at` column of
-- the raw layer). A message copy in the lake written by run R and entered at
-- dataflow time e is reflected in the warehouse exactly when R drained (it
-- stopped cleanly and committed everything) or e < the frontier R
-- committed: the sink commits only results whose inputs are all in the lake.

CREATE TABLE pipeline_runs (
    run_started_at timestamptz PRIMARY KEY,
    frontier       timestamptz NOT NULL,
    drained        boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pipeline_runs IS 'Per run of shopflow run (by its start time, UTC): the last event-time frontier (UTC) it committed; every result before it is in the warehouse.';
COMMENT ON COLUMN pipeline_runs.drained IS 'The run stopped cleanly and committed the results of everything it read.';
