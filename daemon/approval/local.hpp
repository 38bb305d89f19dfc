// daemon/approval/local.hpp — the `local` approval backend: approvers on this host decide with
// jitgatectl approve/deny (Broker::approve, Broker::deny). Nothing leaves the host, so filing
// and cancelling are no-ops. Not thread-safe.
#pragma once

#include "daemon/approval/backend.hpp"

namespace jitgate::approval {

class LocalBackend final : public ApprovalBackend {
public:
    bool allows_local_decisions() const noexcept override { return true; }
    std::string location() const override { return {}; }
    void reload(std::shared_ptr<const config::Config>) override {}
    void prepare(Request&) override {}
    void describe(Json&) const override {}
    void submit(const Request&) override {}
    void cancel(const std::string&, const std::string&) override {}
    std::string how_to_approve(const std::string& id) const override;
    std::string waiting_hint(const std::string& id) const override;
    Json shutdown(std::chrono::milliseconds) override { return Json::object(); }
    void add_status(Json& status) const override;
};

} // namespace jitgate::approval
