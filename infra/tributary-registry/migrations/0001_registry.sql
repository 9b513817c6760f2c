CREATE TABLE schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schema_type TEXT NOT NULL,
    -- compact JSON of the schema: two registrations of the same text share an id
    schema_text TEXT NOT NULL UNIQUE
);

CREATE TABLE subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas (id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);

-- subject '' holds the global level
CREATE TABLE compatibility (
    subject TEXT PRIMARY KEY,
    level TEXT NOT NULL
);
