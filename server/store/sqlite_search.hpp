// server/store/sqlite_search.hpp — private to server/store (and its unit test): the SQLite
// statement of Store::search_audit_events for a given search, so a test can ask SQLite how it
// plans it (EXPLAIN QUERY PLAN) and see that an index serves it.
#pragma once

#include "server/store/store.hpp"

#include <string>

namespace jitgate::server::store {

// The statement for `search`: only the filters it sets, each a fixed literal fragment, with its
// value left to a numbered parameter (?1 host, ?2 user, ?3 type, ?4 from, ?5 to, ?6 the keyset
// row, ?7 the limit; every number is bound, used or not). So SQLite can pick the index of the
// filters at hand: audit_events_user (user_name, time), audit_events_type (type, time),
// audit_events_seq (host, seq) or audit_events_time (time). Pure.
std::string sqlite_audit_search_sql(const AuditSearch& search);

} // namespace jitgate::server::store
