#include "daemon/policy/grants.hpp"

#include <algorithm>

namespace jitgate::grants {
namespace {
// Length-prefixed fields: no two different actions can produce the same key.
void put(std::string& key, const std::string& field) {
    key += std::to_string(field.size());
    key += ':';
    key += field;
}
} // namespace

std::string GrantCache::key_for(const Action& action, config::Scope scope) {
    std::string key;
    put(key, action.kind);
    put(key, action.user);
    put(key, std::to_string(action.requester_uid));
    put(key, std::to_string(action.login_uid));
    put(key, action.rule);
    put(key, config::to_string(scope));
    if (scope == config::Scope::command) {
        put(key, action.runas_user);
        put(key, action.command);
        put(key, action.cwd);
        put(key, action.runas_group);
        put(key, action.chroot);
        put(key, action.program);
        // Counted lists: argv {"a=b"} with no env never equals argv {} with env {"a=b"}.
        const auto put_list = [&](const std::vector<std::string>* list) {
            put(key, std::to_string(list != nullptr ? list->size() : 0));
            if (list != nullptr)
                for (const auto& a : *list) put(key, a);
        };
        put_list(action.argv);
        put_list(action.env);
    }
    return key;
}

const Grant* GrantCache::find(const Action& action, Clock::time_point now) {
    const config::Scope scopes[] = {action.kind == "login" ? config::Scope::login : config::Scope::command,
                                    config::Scope::session};
    for (const auto scope : scopes) {
        const auto it = m_by_key.find(key_for(action, scope));
        if (it == m_by_key.end()) continue;
        if (it->second.expires <= now) {
            m_by_key.erase(it);
            continue;
        }
        return &it->second;
    }
    return nullptr;
}

void GrantCache::add(Grant grant) {
    Action a{grant.user, grant.kind,        grant.rule,   grant.runas_user, grant.command, &grant.argv,
             grant.cwd,  grant.runas_group, grant.chroot, grant.program,    &grant.env};
    a.requester_uid = grant.requester_uid;
    a.login_uid = grant.login_uid;
    auto key = key_for(a, grant.scope);
    m_by_key.insert_or_assign(std::move(key), std::move(grant));
}

const Grant* GrantCache::by_id(const std::string& id, Clock::time_point now) const {
    for (const auto& [key, g] : m_by_key)
        if (g.id == id && g.expires > now) return &g;
    return nullptr;
}

std::optional<Grant> GrantCache::revoke(const std::string& id) {
    for (auto it = m_by_key.begin(); it != m_by_key.end(); ++it) {
        if (it->second.id == id) {
            Grant g = std::move(it->second);
            m_by_key.erase(it);
            return g;
        }
    }
    return std::nullopt;
}

void GrantCache::expire(Clock::time_point now) {
    std::erase_if(m_by_key, [&](const auto& kv) { return kv.second.expires <= now; });
}

std::vector<Grant> GrantCache::list(Clock::time_point now) {
    expire(now);
    std::vector<Grant> out;
    out.reserve(m_by_key.size());
    for (const auto& [k, g] : m_by_key) out.push_back(g);
    std::sort(out.begin(), out.end(), [](const Grant& a, const Grant& b) { return a.granted_unix < b.granted_unix; });
    return out;
}

} // namespace jitgate::grants
