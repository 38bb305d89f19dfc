// server/store/schema.hpp — private to server/store: the schema version check that open_sqlite
// and open_postgres run before anything else (the steps themselves are in migrations.cpp).
// Errors: Error(bad_input) naming `jitgate-server migrate` when the version is not ours.
#pragma once

#include "server/store/pg_db.hpp"
#include "server/store/sqlite_db.hpp"

#include <string>

namespace jitgate::server::store {

// The version recorded in the database's schema_version table; 0 when there is none.
int schema_version(sqlite::Db& db);
int schema_version(pg::Connection& connection);

// Throws Error(bad_input) unless `found` == k_schema_version; `where` names the database.
void require_current_schema(int found, const std::string& where);

} // namespace jitgate::server::store
