-- Traces (docs/monitoring.md): the W3C trace context (`traceparent`) of the
-- call that started an import, so the analysis and every chunk a worker
-- loads for it join that call's trace, whichever notice woke the worker.
ALTER TABLE imports ADD COLUMN trace_context TEXT;
