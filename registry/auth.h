// Bearer-token access control for the registration API.
//
// Tokens come from a token file, one per line:
//
//   # comment
//   <token> <pattern>[,<pattern>...]
//
// A pattern is a service name ("payments"), a prefix glob ("order-*": every
// service whose name starts with "order-"; the '*' stands for one or more
// characters and only at the end) or "*", which makes an admin token allowed to
// change every service. Only SHA-256 digests of the tokens are kept in memory.
//
// Nothing here knows HTTP routes: registry::Api asks AccessControl for a decision
// and renders the 401/403 itself.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

// A token file that cannot be used: "file:line: what is wrong". Never contains a
// token.
class AuthConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether the GET routes need a token too (writes always do once tokens exist).
enum class ReadAccess { open, token };
std::optional<ReadAccess> parse_read_access(std::string_view text);  // "open" / "token"
std::string_view to_string(ReadAccess access);

// Shorter tokens are refused: 16 characters of base64 are 96 bits, the least a
// guessable-by-network secret should have. `openssl rand -base64 32` gives 44.
inline constexpr std::size_t kMinTokenLength = 16;
inline constexpr std::size_t kMaxTokenLength = 1024;

// One entry of a token's scope.
struct ServicePattern {
  enum class Kind { exact, prefix, any };
  Kind kind = Kind::exact;
  std::string text;  // the service name, or the prefix without '*'; empty for any

  // Parses "payments", "order-*" or "*" (case-insensitive, stored lower-case).
  static std::optional<ServicePattern> parse(std::string_view pattern);
  // `service` is a normalised (lower-case) DNS label.
  bool matches(std::string_view service) const;
};

// What a known token may do: the services it may change.
struct TokenScope {
  std::vector<ServicePattern> patterns;
  std::string origin;  // "tokens.txt:3": names the token in logs without revealing it

  bool admin() const;
  bool allows(std::string_view service) const;
};

class TokenStore {
 public:
  using Digest = std::array<unsigned char, 32>;  // SHA-256

  TokenStore() = default;

  // Parses the token file format above; `source_name` prefixes error messages.
  // Throws AuthConfigError for: a token without patterns, a token shorter than
  // kMinTokenLength or longer than kMaxTokenLength, a token with characters
  // outside RFC 6750's b64token (A-Z a-z 0-9 - . _ ~ + / and trailing '='), a
  // bad pattern, or a token listed twice (its scope would be ambiguous).
  static TokenStore parse(std::string_view text, const std::string& source_name);
  // Reads and parses `path`. Adds a warning (see warnings()) and logs it when the
  // file is accessible by group or others, or lists no token at all (every
  // protected request is then refused, which is the safe reading of an empty
  // file). Throws AuthConfigError when the file cannot be read or parsed.
  static TokenStore load(const std::string& path);

  // The scope of `token`, or nullptr when it is unknown. Hashes the token and
  // compares the digest with every entry in constant time, so neither the time
  // to the first differing byte nor which entry matched shows in the timing.
  // The pointer lives as long as the store.
  const TokenScope* find(std::string_view token) const;

  std::size_t size() const { return entries_.size(); }
  std::size_t admin_count() const;
  // Problems worth an operator's attention that do not stop the file from
  // being used.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Entry {
    Digest digest;
    TokenScope scope;
  };
  std::vector<Entry> entries_;
  std::vector<std::string> warnings_;
};

// The token of an `Authorization: Bearer <token>` header (the scheme is
// case-insensitive, RFC 7235), or nullopt when the header is something else or
// the token is not a b64token.
std::optional<std::string_view> parse_bearer(std::string_view authorization);

enum class Access {
  granted,
  missing_token,  // no Authorization header, or another scheme: 401
  invalid_token,  // a bearer token that is malformed or unknown: 401
  out_of_scope,   // a known token that may not change this service: 403
};

struct AccessDecision {
  Access access = Access::granted;
  const TokenScope* scope = nullptr;  // the token used, when it was known
  bool granted() const { return access == Access::granted; }
};

// The daemon's access policy, immutable once built; replaced as a whole when the
// token file is reloaded.
class AccessControl {
 public:
  AccessControl(TokenStore tokens, ReadAccess read_access);

  // `authorization` is the Authorization header verbatim ("" when absent).
  // Whether it carries a known token, whatever that token may do.
  AccessDecision authenticate(std::string_view authorization) const;
  // A known token when reads are protected; anything when they are open.
  AccessDecision authorize_read(std::string_view authorization) const;
  // A known token whose scope matches `service`, the normalised name of the
  // service to change.
  AccessDecision authorize_write(std::string_view authorization, std::string_view service) const;

  ReadAccess read_access() const { return read_access_; }
  const TokenStore& tokens() const { return tokens_; }

 private:
  TokenStore tokens_;
  ReadAccess read_access_;
};

}  // namespace registry
