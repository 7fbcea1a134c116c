// redact_database_url: a connection string fit for logs and /v1/status.
#include <string>
#include <string_view>

#include "store/postgres/postgres_store.h"

namespace store {
namespace {

bool is_password_parameter(std::string_view parameter) {
  return parameter.rfind("password=", 0) == 0 || parameter == "password";
}

// Drops password=... from a URI's query string ("a=1&password=x&b=2").
std::string without_password_parameter(std::string_view query) {
  std::string kept;
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const auto parameter = query.substr(start, end - start);
    if (!parameter.empty() && !is_password_parameter(parameter)) {
      if (!kept.empty()) kept += '&';
      kept += parameter;
    }
    start = end + 1;
  }
  return kept;
}

// The key=value form ("host=db password=secret dbname=x"): drop password=...
// (values are not quoted here in practice; a quoted one is dropped up to its
// closing quote).
std::string redact_keyword_value(std::string_view conninfo) {
  std::string result;
  std::size_t position = 0;
  while (position < conninfo.size()) {
    const std::size_t start = conninfo.find_first_not_of(' ', position);
    if (start == std::string_view::npos) break;
    std::size_t end = conninfo.find(' ', start);
    if (conninfo.compare(start, 10, "password='") == 0) {
      const std::size_t close = conninfo.find('\'', start + 10);
      end = close == std::string_view::npos ? conninfo.size() : close + 1;
    }
    if (end == std::string_view::npos) end = conninfo.size();
    const auto token = conninfo.substr(start, end - start);
    if (token.rfind("password=", 0) != 0) {
      if (!result.empty()) result += ' ';
      result += token;
    }
    position = end;
  }
  return result;
}

}  // namespace

std::string redact_database_url(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return redact_keyword_value(url);
  const std::size_t authority_start = scheme_end + 3;
  std::size_t authority_end = url.find_first_of("/?", authority_start);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  std::string result(url.substr(0, authority_start));
  const auto authority = url.substr(authority_start, authority_end - authority_start);
  // userinfo@host: the password is whatever follows the first ':' of userinfo.
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const auto userinfo = authority.substr(0, at);
    result += userinfo.substr(0, userinfo.find(':'));
    result += authority.substr(at);
  } else {
    result += authority;
  }
  const std::size_t query_start = url.find('?', authority_end);
  if (query_start == std::string_view::npos) {
    result += url.substr(authority_end);
    return result;
  }
  result += url.substr(authority_end, query_start - authority_end);
  const std::string query = without_password_parameter(url.substr(query_start + 1));
  if (!query.empty()) result += "?" + query;
  return result;
}

}  // namespace store
