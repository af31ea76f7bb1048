"""Settings, the database engine, security and the clock: what every route and command shares."""
