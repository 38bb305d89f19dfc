// server/web/oidc_sign_in.cpp — see oidc_sign_in.hpp.
#include "server/web/oidc_sign_in.hpp"

#include <chrono>

namespace jitgate::server::web {
namespace {

constexpr std::int64_t k_login_lifetime_s = 600;

} // namespace

OidcSignIn::OidcSignIn(oidc::Settings settings, std::function<std::int64_t()> now)
    : m_client(std::move(settings)), m_now(std::move(now)) {
    if (!m_now)
        m_now = [] {
            return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        };
}

std::pair<std::string, store::LoginState> OidcSignIn::begin(const std::string& return_to) {
    oidc::AuthorizationRequest request = m_client.begin();
    store::LoginState login;
    login.state = request.pending.state;
    login.nonce = request.pending.nonce;
    login.code_verifier = request.pending.code_verifier;
    login.return_to = return_to;
    login.expires_at = m_now() + k_login_lifetime_s;
    return {std::move(request.url), std::move(login)};
}

Identity OidcSignIn::complete(const std::string& code, const store::LoginState& login) {
    oidc::Callback callback;
    callback.code = code;
    callback.state = login.state; // the web UI found `login` by the state the IdP sent back
    const oidc::PendingLogin pending{login.state, login.nonce, login.code_verifier};
    oidc::Identity who = m_client.finish(callback, pending);
    Identity out;
    out.issuer = std::move(who.issuer);
    out.subject = std::move(who.subject);
    out.username = std::move(who.username);
    out.display_name = std::move(who.display_name);
    out.groups = std::move(who.groups);
    return out;
}

} // namespace jitgate::server::web
