// Test support: a small blocking HTTP/1.1 client (Boost.Beast) for driving the
// real daemon, plus raw-socket helpers for sending what a polite client never would.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace test_support {

struct HttpResult {
  int status = 0;  // 0: no response (connection failed or closed)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::json json() const;                 // parsed body, or null on bad JSON
};

class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, std::string host = "127.0.0.1");
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // One request on the client's keep-alive connection (reconnects if needed).
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = {},
                     const std::string& content_type = "application/json");
  HttpResult get(const std::string& target) { return request("GET", target, {}, {}); }
  HttpResult put(const std::string& target, const nlohmann::json& body) {
    return request("PUT", target, body.dump());
  }
  HttpResult post(const std::string& target, const nlohmann::json& body) {
    return request("POST", target, body.dump());
  }
  HttpResult del(const std::string& target) { return request("DELETE", target, {}, {}); }

 private:
  struct Connection;
  std::uint16_t port_;
  std::string host_;
  std::unique_ptr<Connection> connection_;
};

// Opens a TCP connection to 127.0.0.1:port; returns the fd or -1.
int connect_tcp(std::uint16_t port);
// Reads until EOF, `max_bytes` or `timeout`; returns what arrived.
std::string read_until_close(int fd, std::chrono::milliseconds timeout,
                             std::size_t max_bytes = 1 << 20);
// Sends all bytes; false on error.
bool send_all(int fd, const std::string& bytes);

}  // namespace test_support
