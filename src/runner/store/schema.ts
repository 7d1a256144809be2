/**
 * The runner host's schema, versioned with `PRAGMA user_version`: MIGRATIONS[i] takes the database from version
 * i to i + 1. Append, never edit: a database at version n has run exactly the first n.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    action TEXT,
    received_at INTEGER NOT NULL
  );
  CREATE TABLE job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE REFERENCES deliveries (delivery_id),
    job_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    run_attempt INTEGER,
    action TEXT NOT NULL CHECK (action IN ('queued', 'waiting', 'in_progress', 'completed')),
    status TEXT NOT NULL,
    repo_full_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    installation_id INTEGER NOT NULL,
    labels TEXT NOT NULL CHECK (json_valid(labels) AND json_type(labels) = 'array'),
    runner_id INTEGER,
    runner_name TEXT,
    workflow_name TEXT,
    head_branch TEXT,
    conclusion TEXT,
    created_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX job_events_by_job ON job_events (job_id, id);
  CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    run_attempt INTEGER,
    state TEXT NOT NULL CHECK (state IN ('queued', 'waiting', 'in_progress', 'completed')),
    repo_full_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    installation_id INTEGER NOT NULL,
    labels TEXT NOT NULL CHECK (json_valid(labels) AND json_type(labels) = 'array'),
    runner_id INTEGER,
    runner_name TEXT,
    workflow_name TEXT,
    head_branch TEXT,
    conclusion TEXT,
    created_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    last_delivery_id TEXT NOT NULL REFERENCES deliveries (delivery_id),
    first_received_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX jobs_by_state ON jobs (state);`,
];

export const STORE_SCHEMA_VERSION = MIGRATIONS.length;
