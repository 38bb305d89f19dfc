// server/service/notices.cpp — see notices.hpp.
#include "server/service/notices.hpp"

#include <nlohmann/json.hpp>

namespace jitgate::server::service {
namespace {

std::string string_at(const nlohmann::json& object, const char* name) {
    const auto it = object.find(name);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

notify::RequestFacts facts_of(const store::Request& request, const std::string& link) {
    notify::RequestFacts f;
    f.host = request.host;
    f.id = request.id;
    f.requester = request.requester;
    f.rule = request.rule;
    f.approvals_needed = request.approvals_needed;
    for (const store::Approval& a : request.approvals) f.approvers.push_back(a.approver);
    f.decided_by = request.decided_by;
    f.decision_reason = request.decision_reason;
    f.grant_id = request.grant_id;
    f.expires_at = request.expires_at;
    f.link = link;
    const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) return f;
    f.environment = string_at(body, "host_environment");
    if (const auto tags = body.find("host_tags"); tags != body.end() && tags->is_array())
        for (const auto& tag : *tags)
            if (tag.is_string()) f.tags.push_back(tag.get<std::string>());
    if (const auto account = body.find("account"); account != body.end() && account->is_object())
        f.account = string_at(*account, "user");
    f.kind = string_at(body, "kind");
    f.scope = string_at(body, "scope");
    if (const auto action = body.find("action"); action != body.end() && action->is_object()) {
        f.command = string_at(*action, "display");
        f.runas = string_at(*action, "runas");
    }
    f.reason = string_at(body, "reason");
    f.ticket = string_at(body, "ticket");
    return f;
}

} // namespace jitgate::server::service
