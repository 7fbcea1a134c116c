// The token file, scope matching and Authorization parsing, without HTTP. The
// routes' use of them is in api_test.cpp, and over real HTTP in
// tests/integration/auth_daemon_test.cpp.
#include "registry/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/support/process.h"

namespace {

using registry::Access;
using registry::AccessControl;
using registry::AuthConfigError;
using registry::ReadAccess;
using registry::ServicePattern;
using registry::TokenStore;

const std::string kOrdersToken = "orders-token-0123456789abcdef";
const std::string kPaymentsToken = "cGF5bWVudHMtdG9rZW4tMDEyMzQ1Njc4OQ==";
const std::string kAdminToken = "admin.token_~+/0123456789";

const std::string kTokenFile =
    "# scoped tokens\n"
    "\n"
    "   # an indented comment\n" +
    kOrdersToken + " order-*, inventory\n" + kPaymentsToken + "\tpayments\r\n" + kAdminToken +
    " *\n";

// The message of the AuthConfigError that parsing `text` throws ("" if none).
std::string parse_error(const std::string& text) {
  try {
    TokenStore::parse(text, "tokens.txt");
  } catch (const AuthConfigError& error) {
    return error.what();
  }
  return "";
}

TEST(TokenStore, ParsesCommentsBlankLinesAndPatternLists) {
  const auto tokens = TokenStore::parse(kTokenFile, "tokens.txt");
  EXPECT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens.admin_count(), 1u);
  EXPECT_TRUE(tokens.warnings().empty());

  const auto* orders = tokens.find(kOrdersToken);
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->origin, "tokens.txt:4");
  ASSERT_EQ(orders->patterns.size(), 2u);
  EXPECT_EQ(orders->patterns[0].kind, ServicePattern::Kind::prefix);
  EXPECT_EQ(orders->patterns[0].text, "order-");
  EXPECT_EQ(orders->patterns[1].kind, ServicePattern::Kind::exact);
  EXPECT_EQ(orders->patterns[1].text, "inventory");
  EXPECT_FALSE(orders->admin());

  // A tab separates too, and a CRLF line ending is not part of the pattern.
  const auto* payments = tokens.find(kPaymentsToken);
  ASSERT_NE(payments, nullptr);
  EXPECT_EQ(payments->origin, "tokens.txt:5");
  EXPECT_TRUE(payments->allows("payments"));

  const auto* admin = tokens.find(kAdminToken);
  ASSERT_NE(admin, nullptr);
  EXPECT_TRUE(admin->admin());
}

TEST(TokenStore, EmptyTextHasNoTokens) {
  EXPECT_EQ(TokenStore::parse("", "t").size(), 0u);
  EXPECT_EQ(TokenStore::parse("# nothing yet\n\n", "t").size(), 0u);
}

TEST(TokenStore, ErrorsNameTheFileAndLineButNeverTheToken) {
  const std::string token = "secret-token-0123456789";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"# fine\n" + token + "\n", "tokens.txt:2: expected"},
      {"short-token *\n", "tokens.txt:1: token is shorter than 16"},
      {std::string(1025, 'a') + " *\n", "tokens.txt:1: token is longer than 1024"},
      {"secret\"token\"0123456789 *\n", "tokens.txt:1: token may only contain"},
      {"\n\n" + token + " pay_ments\n", "tokens.txt:3: bad pattern \"pay_ments\""},
      {token + " order*x\n", "bad pattern \"order*x\""},
      {token + " *orders\n", "bad pattern \"*orders\""},
      {token + " -order*\n", "bad pattern \"-order*\""},
      {token + " order-**\n", "bad pattern \"order-**\""},
      {token + " " + std::string(64, 'a') + "\n", "bad pattern"},
      {token + " a,,b\n", "tokens.txt:1: empty pattern"},
      {token + " orders,\n", "empty pattern"},
      // A token with a space in it reads as a token plus a pattern with a space.
      {token + " more orders\n", "contains whitespace"},
      {token + " orders\n" + token + " *\n", "tokens.txt:2: token already listed at tokens.txt:1"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = parse_error(text);
    EXPECT_NE(message.find(expected), std::string::npos)
        << "expected \"" << expected << "\" in \"" << message << "\"";
    EXPECT_EQ(message.find("secret"), std::string::npos) << message;
  }
}

TEST(ServicePattern, ExactPrefixAndAny) {
  const auto exact = ServicePattern::parse("Payments");
  ASSERT_TRUE(exact);
  EXPECT_TRUE(exact->matches("payments"));
  EXPECT_FALSE(exact->matches("payments-v2"));
  EXPECT_FALSE(exact->matches("payment"));

  // "order-*" means: names that start with "order-" and go on.
  const auto prefix = ServicePattern::parse("ORDER-*");
  ASSERT_TRUE(prefix);
  EXPECT_TRUE(prefix->matches("order-service"));
  EXPECT_TRUE(prefix->matches("order-a"));
  EXPECT_FALSE(prefix->matches("orders"));
  EXPECT_FALSE(prefix->matches("order"));
  EXPECT_FALSE(prefix->matches("order-"));
  EXPECT_FALSE(prefix->matches("my-order-service"));

  const auto bare_prefix = ServicePattern::parse("order*");
  ASSERT_TRUE(bare_prefix);
  EXPECT_TRUE(bare_prefix->matches("orders"));
  EXPECT_TRUE(bare_prefix->matches("order-service"));
  EXPECT_FALSE(bare_prefix->matches("order"));

  const auto any = ServicePattern::parse("*");
  ASSERT_TRUE(any);
  EXPECT_TRUE(any->matches("payments"));
  EXPECT_TRUE(any->matches("x"));

  for (const char* bad : {"", "a*b", "**", "*-a", "-a*", "a.b", "a_b*", "a b"}) {
    EXPECT_FALSE(ServicePattern::parse(bad)) << bad;
  }
  // A prefix must leave room for the one character '*' stands for at least.
  EXPECT_TRUE(ServicePattern::parse(std::string(62, 'a') + "*"));
  EXPECT_FALSE(ServicePattern::parse(std::string(63, 'a') + "*"));
}

TEST(TokenStore, FindsOnlyTheExactToken) {
  const auto tokens = TokenStore::parse(kTokenFile, "tokens.txt");
  EXPECT_EQ(tokens.find(""), nullptr);
  EXPECT_EQ(tokens.find(kOrdersToken.substr(0, kOrdersToken.size() - 1)), nullptr);
  EXPECT_EQ(tokens.find(kOrdersToken + "x"), nullptr);
  EXPECT_EQ(tokens.find(" " + kOrdersToken), nullptr);
  std::string upper = kOrdersToken;
  upper[0] = 'O';
  EXPECT_EQ(tokens.find(upper), nullptr);
}

TEST(TokenStore, KeepsNoPlaintextInWhatItExposes) {
  const auto tokens = TokenStore::parse(kTokenFile, "tokens.txt");
  for (const auto& token : {kOrdersToken, kPaymentsToken, kAdminToken}) {
    const auto* scope = tokens.find(token);
    ASSERT_NE(scope, nullptr);
    EXPECT_EQ(scope->origin.find(token), std::string::npos);
    for (const auto& pattern : scope->patterns)
      EXPECT_EQ(pattern.text.find(token), std::string::npos);
  }
  // The store holds a digest per token and its scope: nothing sized like a
  // token's text besides the 32 bytes of SHA-256.
  static_assert(std::tuple_size_v<TokenStore::Digest> == 32);
}

TEST(TokenStore, LoadWarnsAboutAFileOthersCanRead) {
  test_support::TempDir dir;
  const std::string path = dir.file("tokens");
  std::ofstream(path) << kTokenFile;

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const auto open_file = TokenStore::load(path);
  EXPECT_EQ(open_file.size(), 3u);
  ASSERT_EQ(open_file.warnings().size(), 1u);
  EXPECT_NE(open_file.warnings()[0].find("mode 0644"), std::string::npos)
      << open_file.warnings()[0];

  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  const auto private_file = TokenStore::load(path);
  EXPECT_EQ(private_file.size(), 3u);
  EXPECT_TRUE(private_file.warnings().empty());
  EXPECT_NE(private_file.find(kAdminToken), nullptr);
}

TEST(TokenStore, LoadWarnsAboutAnEmptyFileAndFailsOnAMissingOne) {
  test_support::TempDir dir;
  const std::string path = dir.file("tokens");
  std::ofstream(path) << "# no tokens yet\n";
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  const auto empty = TokenStore::load(path);
  EXPECT_EQ(empty.size(), 0u);
  ASSERT_EQ(empty.warnings().size(), 1u);
  EXPECT_NE(empty.warnings()[0].find("lists no token"), std::string::npos);

  EXPECT_THROW(TokenStore::load(dir.file("missing")), AuthConfigError);
  EXPECT_THROW(TokenStore::load(dir.path().string()), AuthConfigError);
  std::ofstream(path) << "short *\n";
  try {
    TokenStore::load(path);
    FAIL() << "expected AuthConfigError";
  } catch (const AuthConfigError& error) {
    EXPECT_EQ(std::string(error.what()).rfind(path + ":1: ", 0), 0u) << error.what();
  }
}

TEST(Bearer, SchemeIsCaseInsensitiveAndTheTokenA64Token) {
  EXPECT_EQ(registry::parse_bearer("Bearer abc.DEF-123"), "abc.DEF-123");
  EXPECT_EQ(registry::parse_bearer("bearer abc"), "abc");
  EXPECT_EQ(registry::parse_bearer("BEARER abc=="), "abc==");
  EXPECT_EQ(registry::parse_bearer("Bearer   abc  "), "abc");
  EXPECT_FALSE(registry::parse_bearer(""));
  EXPECT_FALSE(registry::parse_bearer("Bearer"));
  EXPECT_FALSE(registry::parse_bearer("Bearer "));
  EXPECT_FALSE(registry::parse_bearer("Bearerabc"));
  EXPECT_FALSE(registry::parse_bearer("Basic YWxhZGRpbjpvcGVuc2VzYW1l"));
  EXPECT_FALSE(registry::parse_bearer("abc"));
  EXPECT_FALSE(registry::parse_bearer("Bearer a b"));
  EXPECT_FALSE(registry::parse_bearer("Bearer a=b"));
  EXPECT_FALSE(registry::parse_bearer("Bearer ="));
}

TEST(ReadAccessSetting, ParsesOpenAndToken) {
  EXPECT_EQ(registry::parse_read_access("open"), ReadAccess::open);
  EXPECT_EQ(registry::parse_read_access("token"), ReadAccess::token);
  EXPECT_FALSE(registry::parse_read_access("closed"));
  EXPECT_FALSE(registry::parse_read_access(""));
  EXPECT_EQ(registry::to_string(ReadAccess::token), "token");
}

TEST(AccessControl, WritesNeedATokenScopedToTheService) {
  const AccessControl access(TokenStore::parse(kTokenFile, "t"), ReadAccess::open);
  const std::string orders = "Bearer " + kOrdersToken;
  EXPECT_EQ(access.authorize_write("", "order-service").access, Access::missing_token);
  EXPECT_EQ(access.authorize_write("Basic dXNlcjpwYXNz", "order-service").access,
            Access::missing_token);
  EXPECT_EQ(access.authorize_write("Bearer not-a-known-token-at-all", "order-service").access,
            Access::invalid_token);
  EXPECT_EQ(access.authorize_write("Bearer", "order-service").access, Access::invalid_token);
  EXPECT_EQ(access.authorize_write("Bearer a b", "order-service").access, Access::invalid_token);
  EXPECT_EQ(access.authorize_write(orders, "order-service").access, Access::granted);
  EXPECT_EQ(access.authorize_write(orders, "inventory").access, Access::granted);
  EXPECT_EQ(access.authorize_write(orders, "payments").access, Access::out_of_scope);
  EXPECT_EQ(access.authorize_write(orders, "orders").access, Access::out_of_scope);
  const auto admin = access.authorize_write("bearer " + kAdminToken, "payments");
  EXPECT_EQ(admin.access, Access::granted);
  ASSERT_NE(admin.scope, nullptr);
  EXPECT_EQ(admin.scope->origin, "t:6");
}

TEST(AccessControl, ReadsAreOpenOrNeedAnyKnownToken) {
  const AccessControl open(TokenStore::parse(kTokenFile, "t"), ReadAccess::open);
  EXPECT_TRUE(open.authorize_read("").granted());
  EXPECT_TRUE(open.authorize_read("Bearer junk-junk-junk-junk").granted());

  const AccessControl closed(TokenStore::parse(kTokenFile, "t"), ReadAccess::token);
  EXPECT_EQ(closed.authorize_read("").access, Access::missing_token);
  EXPECT_EQ(closed.authorize_read("Bearer junk-junk-junk-junk").access, Access::invalid_token);
  EXPECT_TRUE(closed.authorize_read("Bearer " + kPaymentsToken).granted());
  EXPECT_TRUE(closed.authorize_read("Bearer " + kAdminToken).granted());
}

}  // namespace
