-- How many drains of each organization have ended (docs/per-organization-concurrency.md,
-- "Turns"). A notice carries the count read when it was published, after the
-- work it announces was committed; a worker that receives a notice whose count
-- is below the current one drops it: a drain ended since, looked for work
-- after counting itself, and announced the organization again if any was left.
-- So an organization that started five imports gets one turn of the workers,
-- not five, before the organizations behind it.
CREATE TABLE drain_turns (
    organization_id  BIGINT PRIMARY KEY REFERENCES organizations (id),
    drains_ended     BIGINT NOT NULL
);
