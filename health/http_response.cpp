#include "health/http_response.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace health {
namespace {

HeadParse malformed(std::string error) {
  HeadParse result;
  result.state = HeadParse::State::malformed;
  result.error = std::move(error);
  return result;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::optional<double> parse_load(std::string_view text) {
  text = trim(text);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

HeadParse parse_response_head(std::string_view data) {
  // Reject garbage as soon as the first bytes show it is not HTTP.
  constexpr std::string_view kPrefix = "HTTP/1.";
  const std::size_t compared = std::min(data.size(), kPrefix.size());
  if (data.substr(0, compared) != kPrefix.substr(0, compared)) {
    return malformed("not an HTTP/1.x response");
  }
  const std::size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) return {};
  const std::string_view head = data.substr(0, end + 2);  // every line ends with CRLF

  std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.x SSS[ reason]"
  if (status_line.size() < 12 || !is_digit(status_line[7]) || status_line[8] != ' ' ||
      !is_digit(status_line[9]) || !is_digit(status_line[10]) || !is_digit(status_line[11]) ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return malformed("bad status line");
  }
  HeadParse result;
  result.state = HeadParse::State::complete;
  result.head.status =
      (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  if (result.head.status < 100) return malformed("bad status code");

  std::size_t position = line_end + 2;
  while (position < head.size()) {
    line_end = head.find("\r\n", position);
    const std::string_view line = head.substr(position, line_end - position);
    position = line_end + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return malformed("bad header line");
    const std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return malformed("bad header name");
    if (iequals(name, "x-load")) result.head.load = parse_load(line.substr(colon + 1));
  }
  return result;
}

bool status_passes(int status) {
  return status >= 200 && status <= 299;
}

std::string build_request(std::string_view host, std::uint16_t port, std::string_view path,
                          std::string_view user_agent) {
  std::string request;
  request.reserve(128 + path.size());
  request.append("GET ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  request.append(":").append(std::to_string(port));
  request.append("\r\nUser-Agent: ").append(user_agent);
  request.append("\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  return request;
}

bool safe_request_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (const char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) return false;
  }
  return true;
}

}  // namespace health
