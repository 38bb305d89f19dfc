// server/web/sign_in.hpp — the seam between the web UI and the sign-in protocol (OpenID Connect).
// The web UI owns the browser side (cookies, the login state's storage, sessions, the audit
// events); an implementation of SignIn owns the IdP side: discovery, the authorization URL
// (with state, nonce and PKCE), the token exchange, the ID token's checks and the claim
// mapping of Config::Oidc. server/web/oidc.hpp provides the OpenID Connect one.
//
// Threading: called on the loop thread, one call at a time. Errors: every failure throws
// jitgate::Error with a one-line detail fit for an approver to read (no secrets, no tokens);
// the web UI records it as `signin.failed` and shows it escaped.
// Must not depend on the web UI, the HTTP layer or the database implementation.
#pragma once

#include "server/store/store.hpp"

#include <string>
#include <utility>
#include <vector>

namespace jitgate::server::web {

// Who signed in, after the claim mapping. SECURITY NOTE: `username` is what approvals are
// recorded under and what self-approval is checked against, so it is the Unix name the
// person has on the hosts (Config::Oidc::users applied), never a display name.
struct Identity {
    std::string issuer;              // the ID token's `iss`
    std::string subject;             // the ID token's `sub`
    std::string username;            // the Unix name (Config::Oidc::username_claim, then Config::Oidc::users)
    std::string display_name;        // for pages only
    std::vector<std::string> groups; // approver groups after Config::Oidc::groups (unmapped ones dropped)
};

class SignIn {
public:
    virtual ~SignIn() = default;

    // Starts a sign-in that will come back to `return_to` (a local path the caller has
    // checked). Returns the IdP URL to send the browser to and the login state the caller
    // stores (Store::put_login) until the callback; `state` in it is random and URL-safe.
    virtual std::pair<std::string /*redirect URL*/, store::LoginState> begin(const std::string& return_to) = 0;

    // Finishes a sign-in: exchanges `code` (from the IdP's redirect) using `login` (taken from
    // the store, one use) and checks the ID token (issuer, audience, nonce, expiry,
    // signature). Returns who signed in; throws Error on any failure.
    virtual Identity complete(const std::string& code, const store::LoginState& login) = 0;
};

} // namespace jitgate::server::web
