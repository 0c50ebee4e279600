"""The study: the spec (what a researcher writes), the design (tasks and trials, seeded), the
build (a spec and its stimulus sets into the database), the progress rules every client
follows, the instruction pages, and the export (the dataset and its schema)."""
