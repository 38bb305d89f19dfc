// server/web/oidc_sign_in.hpp — the web UI's SignIn (sign_in.hpp) done with OpenID Connect
// (oidc.hpp): begin() makes the authorization URL and the login state to store; complete()
// exchanges the code and checks the ID token. The login state's lifetime is 10 minutes.
// Threading and errors: as SignIn and oidc::Client say. The code exchange blocks the calling
// thread for at most the IdP timeout.
#pragma once

#include "server/web/oidc.hpp"
#include "server/web/sign_in.hpp"

#include <cstdint>
#include <functional>
#include <memory>

namespace jitgate::server::web {

class OidcSignIn final : public SignIn {
public:
    // `now` gives Unix seconds (null: the system clock).
    explicit OidcSignIn(oidc::Settings settings, std::function<std::int64_t()> now = nullptr);
    std::pair<std::string, store::LoginState> begin(const std::string& return_to) override;
    Identity complete(const std::string& code, const store::LoginState& login) override;
    oidc::Client& client() noexcept { return m_client; }

private:
    oidc::Client m_client;
    std::function<std::int64_t()> m_now;
};

} // namespace jitgate::server::web
