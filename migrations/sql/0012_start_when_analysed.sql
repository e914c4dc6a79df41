-- StartImport of an import never analysed queues its analysis with
-- `start_when_done`: the worker that stores a report finding nothing
-- blocking queues the import in the same transaction; one that finds
-- something blocking ends the import FAILED with the reason. The call itself
-- never runs an analysis.
ALTER TABLE analysis_jobs ADD COLUMN start_when_done BOOLEAN NOT NULL DEFAULT false;
