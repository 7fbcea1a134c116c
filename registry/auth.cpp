#include "registry/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "registry/validation.h"
#include "store/logging.h"

namespace registry {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("auth");
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view token) {
  const auto padding = token.find_last_not_of('=');
  if (padding == std::string_view::npos) return false;
  return std::all_of(
      token.begin(), token.begin() + static_cast<std::ptrdiff_t>(padding) + 1, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
      });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

TokenStore::Digest sha256(std::string_view text) {
  TokenStore::Digest digest{};
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != digest.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return digest;
}

}  // namespace

std::optional<ReadAccess> parse_read_access(std::string_view text) {
  if (text == "open") return ReadAccess::open;
  if (text == "token") return ReadAccess::token;
  return std::nullopt;
}

std::string_view to_string(ReadAccess access) {
  return access == ReadAccess::open ? "open" : "token";
}

std::optional<ServicePattern> ServicePattern::parse(std::string_view pattern) {
  if (pattern == "*") return ServicePattern{Kind::any, {}};
  if (!pattern.empty() && pattern.back() == '*') {
    // The prefix must begin a possible DNS label with room for the character
    // '*' stands for at least: check it as the label it would begin.
    auto label = normalize_label(std::string(pattern.substr(0, pattern.size() - 1)) + "x");
    if (!label) return std::nullopt;
    label->pop_back();
    return ServicePattern{Kind::prefix, std::move(*label)};
  }
  auto service = normalize_label(pattern);
  if (!service) return std::nullopt;
  return ServicePattern{Kind::exact, std::move(*service)};
}

bool ServicePattern::matches(std::string_view service) const {
  switch (kind) {
    case Kind::any:
      return true;
    case Kind::exact:
      return service == text;
    case Kind::prefix:
      // '*' stands for at least one character: "order-*" does not match "order-".
      return service.size() > text.size() && service.substr(0, text.size()) == text;
  }
  return false;
}

bool TokenScope::admin() const {
  return std::any_of(patterns.begin(), patterns.end(),
                     [](const ServicePattern& p) { return p.kind == ServicePattern::Kind::any; });
}

bool TokenScope::allows(std::string_view service) const {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const ServicePattern& p) { return p.matches(service); });
}

TokenStore TokenStore::parse(std::string_view text, const std::string& source_name) {
  TokenStore store;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    const std::string_view raw = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++line_number;
    const std::string origin = source_name + ":" + std::to_string(line_number);
    const auto fail = [&](const std::string& what) { throw AuthConfigError(origin + ": " + what); };

    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;

    // The messages below never quote the token: they end up in logs.
    const auto token_end = std::find_if(line.begin(), line.end(), is_space);
    const std::string_view token =
        line.substr(0, static_cast<std::size_t>(token_end - line.begin()));
    const std::string_view pattern_list = trim(line.substr(token.size()));
    if (pattern_list.empty()) {
      fail("expected \"<token> <pattern>[,<pattern>...]\" (use \"*\" for an admin token)");
    }
    if (token.size() < kMinTokenLength) {
      fail("token is shorter than " + std::to_string(kMinTokenLength) + " characters");
    }
    if (token.size() > kMaxTokenLength) {
      fail("token is longer than " + std::to_string(kMaxTokenLength) + " characters");
    }
    if (!is_b64token(token)) {
      fail("token may only contain A-Z a-z 0-9 - . _ ~ + / and trailing '=' (RFC 6750)");
    }

    TokenScope scope;
    scope.origin = origin;
    std::string_view rest = pattern_list;
    while (true) {
      const auto comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (item.empty()) fail("empty pattern in \"" + std::string(pattern_list) + "\"");
      if (std::any_of(item.begin(), item.end(), is_space)) {
        fail("pattern \"" + std::string(item) +
             "\" contains whitespace (one token per line, patterns separated by commas)");
      }
      auto pattern = ServicePattern::parse(item);
      if (!pattern) {
        fail("bad pattern \"" + std::string(item) +
             "\": expected a service name, a prefix glob such as \"order-*\", or \"*\"");
      }
      scope.patterns.push_back(std::move(*pattern));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }

    Digest digest = sha256(token);
    for (const auto& entry : store.entries_) {
      if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0) {
        fail("token already listed at " + entry.scope.origin);
      }
    }
    store.entries_.push_back({digest, std::move(scope)});
  }
  return store;
}

TokenStore TokenStore::load(const std::string& path) {
  const auto unreadable = [&](int error) {
    return AuthConfigError("cannot read token file " + path + ": " + std::strerror(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw unreadable(errno);
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    throw unreadable(error);
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    throw AuthConfigError("token file " + path + " is not a regular file");
  }
  // One buffer, wiped after parsing, so the plaintext does not outlive load()
  // in this process (best effort: the kernel's page cache is out of reach).
  std::string text(static_cast<std::size_t>(status.st_size), '\0');
  std::size_t filled = 0;
  while (filled < text.size()) {
    const auto got = ::read(fd, text.data() + filled, text.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      OPENSSL_cleanse(text.data(), text.size());
      throw unreadable(error);
    }
    if (got == 0) break;  // truncated while reading: parse what arrived
    filled += static_cast<std::size_t>(got);
  }
  ::close(fd);
  text.resize(filled);

  TokenStore store;
  try {
    store = parse(text, path);
  } catch (...) {
    OPENSSL_cleanse(text.data(), text.size());
    throw;
  }
  OPENSSL_cleanse(text.data(), text.size());

  if ((status.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(status.st_mode & 07777));
    store.warnings_.push_back("token file " + path + " is accessible by group or others (mode " +
                              mode + "); chmod 600 it");
  }
  if (store.entries_.empty()) {
    store.warnings_.push_back("token file " + path +
                              " lists no token: every protected request will be refused");
  }
  for (const auto& warning : store.warnings_) logger()->warn("{}", warning);
  return store;
}

const TokenScope* TokenStore::find(std::string_view token) const {
  const Digest digest = sha256(token);
  const TokenScope* found = nullptr;
  // No early exit: every entry is compared, whichever one matches.
  for (const auto& entry : entries_) {
    const bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    found = equal ? &entry.scope : found;
  }
  return found;
}

std::size_t TokenStore::admin_count() const {
  return static_cast<std::size_t>(std::count_if(
      entries_.begin(), entries_.end(), [](const Entry& entry) { return entry.scope.admin(); }));
}

std::optional<std::string_view> parse_bearer(std::string_view authorization) {
  authorization = trim(authorization);
  constexpr std::string_view kScheme = "Bearer";
  if (authorization.size() <= kScheme.size() ||
      !iequals(authorization.substr(0, kScheme.size()), kScheme) ||
      authorization[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  const std::string_view token = trim(authorization.substr(kScheme.size()));
  if (!is_b64token(token)) return std::nullopt;
  return token;
}

AccessControl::AccessControl(TokenStore tokens, ReadAccess read_access)
    : tokens_(std::move(tokens)), read_access_(read_access) {}

AccessDecision AccessControl::authenticate(std::string_view authorization) const {
  if (trim(authorization).empty()) return {Access::missing_token, nullptr};
  const auto token = parse_bearer(authorization);
  if (!token) {
    // Another scheme (Basic, ...) carries no bearer token; a "Bearer" header
    // whose token is malformed presented one that is invalid.
    const std::string_view trimmed = trim(authorization);
    const bool says_bearer =
        iequals(trimmed.substr(0, 6), "Bearer") && (trimmed.size() == 6 || is_space(trimmed[6]));
    return {says_bearer ? Access::invalid_token : Access::missing_token, nullptr};
  }
  const TokenScope* scope = tokens_.find(*token);
  if (!scope) return {Access::invalid_token, nullptr};
  return {Access::granted, scope};
}

AccessDecision AccessControl::authorize_read(std::string_view authorization) const {
  if (read_access_ == ReadAccess::open) return {Access::granted, nullptr};
  // Any known token may read: scopes limit what a token may change, and the
  // registry's content is what DNS answers anyone anyway.
  return authenticate(authorization);
}

AccessDecision AccessControl::authorize_write(std::string_view authorization,
                                              std::string_view service) const {
  auto decision = authenticate(authorization);
  if (decision.granted() && !decision.scope->allows(service))
    decision.access = Access::out_of_scope;
  return decision;
}

}  // namespace registry
