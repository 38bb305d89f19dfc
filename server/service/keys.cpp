// server/service/keys.cpp — see keys.hpp.
#include "server/service/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <system_error>
#include <utility>

#include <openssl/crypto.h>

#include "jitgate/error.hpp"
#include "lib/file_io.hpp"

namespace jitgate::server::service {
namespace {

std::string errno_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

// Writes all of `data` to `fd`, then fsync. Returns 0 or the errno.
int write_synced(int fd, std::string_view data) {
    if (const int error = file_io::write_all(fd, data); error != 0) return error;
    return fsync(fd) == 0 ? 0 : errno;
}

// A file this call created; removed on destruction unless kept.
class NewFile {
public:
    NewFile(std::string path, mode_t mode) : m_path(std::move(path)) {
        m_fd = open(m_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (m_fd < 0) {
            const int error = errno;
            if (error == EEXIST)
                throw Error(ErrorCode::bad_input, m_path,
                            "already exists; keygen never overwrites a key (pick another --kid, or remove the old "
                            "pair yourself)");
            throw Error(ErrorCode::bad_input, m_path, "cannot create: " + errno_text(error));
        }
        // The umask may have taken bits away (0644 -> 0600) or the mode may be wider; set it exactly.
        if (fchmod(m_fd, mode) != 0) fail("cannot set the mode");
    }
    NewFile(const NewFile&) = delete;
    NewFile& operator=(const NewFile&) = delete;
    ~NewFile() {
        if (m_fd >= 0) close(m_fd);
        if (!m_kept) unlink(m_path.c_str());
    }
    void write(std::string_view data) {
        if (const int error = write_synced(m_fd, data); error != 0) {
            errno = error;
            fail("cannot write");
        }
    }
    void keep() {
        if (close(m_fd) != 0) {
            m_fd = -1;
            fail("cannot close");
        }
        m_fd = -1;
        m_kept = true;
    }
    const std::string& path() const noexcept { return m_path; }

private:
    [[noreturn]] void fail(const char* what) {
        throw Error(ErrorCode::internal, m_path, std::string(what) + ": " + errno_text(errno));
    }
    std::string m_path;
    int m_fd = -1;
    bool m_kept = false;
};

void check_kids(const std::vector<grant_token::SigningKey>& keys) {
    if (keys.empty()) throw Error(ErrorCode::bad_input, "signing.keys", "no signing key is configured");
    std::set<std::string> seen;
    for (const auto& key : keys)
        if (!seen.insert(key.kid()).second)
            throw Error(ErrorCode::bad_input, "signing.keys", "kid \"" + key.kid() + "\" is listed twice");
}

} // namespace

KeySet KeySet::from_keys(std::vector<grant_token::SigningKey> keys, const std::string& active) {
    check_kids(keys);
    KeySet set;
    set.m_keys = std::move(keys);
    const auto it = std::find_if(set.m_keys.begin(), set.m_keys.end(),
                                 [&active](const grant_token::SigningKey& k) { return k.kid() == active; });
    if (it == set.m_keys.end())
        throw Error(ErrorCode::bad_input, "signing.active",
                    "\"" + active + "\" is not a kid of signing.keys" +
                        (grant_token::is_valid_kid(active) ? "" : " (and not a valid kid)"));
    set.m_active = static_cast<std::size_t>(it - set.m_keys.begin());
    return set;
}

KeySet KeySet::load(const config::Config::Signing& signing, unsigned allowed_uid) {
    std::vector<grant_token::SigningKey> keys;
    for (std::size_t i = 0; i < signing.keys.size(); ++i) {
        const auto& key = signing.keys[i];
        try {
            keys.push_back(grant_token::SigningKey::load(key.kid, key.private_key, allowed_uid));
        } catch (const Error& e) {
            throw Error(ErrorCode::bad_input, "signing.keys[" + std::to_string(i) + "] (kid " + key.kid + ")",
                        e.what());
        }
    }
    const std::string active = signing.active.empty() && !keys.empty() ? keys.front().kid() : signing.active;
    return from_keys(std::move(keys), active);
}

const grant_token::SigningKey* KeySet::find(std::string_view kid) const noexcept {
    for (const auto& key : m_keys)
        if (key.kid() == kid) return &key;
    return nullptr;
}

std::vector<std::string> KeySet::kids() const {
    std::vector<std::string> out;
    out.reserve(m_keys.size());
    for (const auto& key : m_keys) out.push_back(key.kid());
    return out;
}

std::string KeySet::sign(const grant_token::Claims& claims) const {
    return grant_token::sign(active(), claims);
}

KeygenResult keygen(const std::string& dir, const std::string& kid) {
    if (!grant_token::is_valid_kid(kid))
        throw Error(ErrorCode::bad_input, "keygen", "kid \"" + kid + "\" is not 1-64 characters of [A-Za-z0-9._-]");
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0)
        throw Error(ErrorCode::bad_input, dir, "cannot use the directory: " + errno_text(errno));
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorCode::bad_input, dir, "is not a directory");

    const std::string base = dir + (dir.empty() || dir.back() != '/' ? "/" : "") + kid;
    const grant_token::SigningKey key = grant_token::SigningKey::generate(kid);
    KeygenResult result;
    result.public_pem = key.public_key_pem();
    // Both files are created before either is written: an existing .pub leaves no new .key.
    NewFile private_file(base + ".key", 0600);
    NewFile public_file(base + ".pub", 0644);
    std::string pem = key.private_key_pem();
    try {
        private_file.write(pem);
    } catch (...) {
        OPENSSL_cleanse(pem.data(), pem.size());
        throw;
    }
    OPENSSL_cleanse(pem.data(), pem.size());
    public_file.write(result.public_pem);
    private_file.keep();
    public_file.keep();
    // The new names are durable only once the directory is.
    const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        fsync(dir_fd);
        close(dir_fd);
    }
    result.private_key = private_file.path();
    result.public_key = public_file.path();
    return result;
}

} // namespace jitgate::server::service
