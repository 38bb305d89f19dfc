// server/service/notices.hpp — what a webhook notice says about a request: the facts of a
// stored request (its body as the host filed it, and the server's decision), for
// server/notify's bodies. Pure; never throws except std::bad_alloc (a body that cannot be
// read gives the facts the store holds outside it).
#pragma once

#include "server/notify/notice.hpp"
#include "server/store/store.hpp"

#include <string>

namespace jitgate::server::service {

notify::RequestFacts facts_of(const store::Request& request, const std::string& link);

} // namespace jitgate::server::service
