#include "tests/support/http_client.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace test_support {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

nlohmann::json HttpResult::json() const {
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json() : parsed;
}

struct HttpClient::Connection {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  bool open = false;
};

HttpClient::HttpClient(std::uint16_t port, std::string host)
    : port_(port), host_(std::move(host)), connection_(std::make_unique<Connection>()) {}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body, const std::string& content_type) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto& c = *connection_;
    beast::error_code ec;
    if (!c.open) {
      c.stream.close();
      c.buffer.clear();
      c.stream.expires_after(std::chrono::seconds(10));
      c.stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(host_), port_), ec);
      if (ec) return {};
      c.open = true;
    }
    http::request<http::string_body> request{http::string_to_verb(method), target, 11};
    request.set(http::field::host, host_);
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    request.body() = body;
    request.keep_alive(true);
    request.prepare_payload();
    c.stream.expires_after(std::chrono::seconds(30));
    http::write(c.stream, request, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    if (!ec) http::read(c.stream, c.buffer, parser, ec);
    if (ec) {
      // A keep-alive connection the server closed: retry once on a new one.
      c.open = false;
      continue;
    }
    auto& response = parser.get();
    HttpResult result;
    result.status = static_cast<int>(response.result_int());
    result.body = response.body();
    for (const auto& field : response) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      result.headers[name] = std::string(field.value());
    }
    if (!response.keep_alive()) c.open = false;
    return result;
  }
  return {};
}

int connect_tcp(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_until_close(int fd, std::chrono::milliseconds timeout, std::size_t max_bytes) {
  std::string data;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[4096];
  while (data.size() < max_bytes) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd descriptor{fd, POLLIN, 0};
    if (::poll(&descriptor, 1, static_cast<int>(left.count())) <= 0) break;
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

bool send_all(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace test_support
