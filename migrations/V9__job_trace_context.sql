-- kind: expand
-- The W3C traceparent of the work that queued a job (a request, or another
-- job), so that the run continues the same trace on whichever replica
-- claims it. Older binaries ignore the column; adding a nullable column
-- takes no table rewrite.
ALTER TABLE jobs ADD COLUMN trace_parent text;
