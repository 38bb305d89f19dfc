// tests/unit/dlopen_check.cpp — loads a plugin as its host does and resolves its exports.
//
// usage: dlopen_check PLUGIN.so SYMBOL[=approval|=audit]...
// Loads PLUGIN.so with RTLD_NOW (as sudo and libpam do: every undefined symbol must resolve
// now, not at the first call inside sudo) and looks up each SYMBOL with dlsym. A SYMBOL
// suffixed =approval or =audit is a sudo plugin struct: its `type` must be
// SUDO_APPROVAL_PLUGIN or SUDO_AUDIT_PLUGIN, and its `version` of sudo's major API version,
// or sudo refuses to load it. Exits 0 when all hold, 1 with a message on stderr otherwise.
// check_plugin_abi.sh runs it; bash cannot dlopen.
#include <dlfcn.h>
#include <sudo_plugin.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace {

// The type and version every sudo plugin struct starts with.
struct PluginHead {
    unsigned int type;
    unsigned int version;
};

// Checks one "SYMBOL[=kind]" argument against the loaded `handle`. Returns an empty string
// when it holds, else what is wrong.
std::string check_symbol(void* handle, const std::string& arg) {
    const std::size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string kind = eq == std::string::npos ? std::string() : arg.substr(eq + 1);
    ::dlerror();
    void* address = ::dlsym(handle, name.c_str());
    if (const char* err = ::dlerror(); err != nullptr) return "dlsym(" + name + "): " + err;
    if (address == nullptr) return "dlsym(" + name + ") is null";
    if (kind.empty()) return {};
    unsigned int expected_type = 0;
    if (kind == "approval")
        expected_type = SUDO_APPROVAL_PLUGIN;
    else if (kind == "audit")
        expected_type = SUDO_AUDIT_PLUGIN;
    else
        return "unknown plugin kind '" + kind + "' for " + name + " (approval or audit)";
    PluginHead head{};
    std::memcpy(&head, address, sizeof head);
    if (head.type != expected_type)
        return name + ".type is " + std::to_string(head.type) + ", expected " + std::to_string(expected_type) +
               " (SUDO_" + (kind == "approval" ? "APPROVAL" : "AUDIT") + "_PLUGIN)";
    if (SUDO_API_VERSION_GET_MAJOR(head.version) != SUDO_API_VERSION_MAJOR)
        return name + ".version has major " + std::to_string(SUDO_API_VERSION_GET_MAJOR(head.version)) +
               ", sudo's is " + std::to_string(SUDO_API_VERSION_MAJOR);
    return {};
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s PLUGIN.so SYMBOL[=approval|=audit]...\n", argv[0]);
        return 2;
    }
    try {
        void* handle = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            std::fprintf(stderr, "FAIL: dlopen(%s, RTLD_NOW): %s\n", argv[1], ::dlerror());
            return 1;
        }
        int failures = 0;
        for (int i = 2; i < argc; ++i) {
            const std::string problem = check_symbol(handle, argv[i]);
            if (!problem.empty()) {
                std::fprintf(stderr, "FAIL: %s: %s\n", argv[1], problem.c_str());
                ++failures;
            }
        }
        ::dlclose(handle);
        if (failures != 0) return 1;
        std::printf("OK: dlopen(%s, RTLD_NOW) resolves %d symbol(s)\n", argv[1], argc - 2);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL: %s: %s\n", argv[1], e.what());
    } catch (...) {
        std::fprintf(stderr, "FAIL: %s: unknown exception\n", argv[1]);
    }
    return 1;
}
