#include "store/model.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace store {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a terminated string; IP literals are short.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress address;
  if (inet_pton(AF_INET, buffer, address.bytes.data()) == 1) {
    address.family = Family::v4;
    return address;
  }
  if (inet_pton(AF_INET6, buffer, address.bytes.data()) == 1) {
    address.family = Family::v6;
    return address;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr& address) {
  IpAddress result;
  if (address.sa_family == AF_INET) {
    std::memcpy(result.bytes.data(), &reinterpret_cast<const sockaddr_in&>(address).sin_addr, 4);
    return result;
  }
  if (address.sa_family == AF_INET6) {
    result.family = Family::v6;
    std::memcpy(result.bytes.data(), &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, 16);
    return result;
  }
  return std::nullopt;
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buffer, sizeof buffer);
  return buffer;
}

std::string_view to_string(CheckType type) {
  switch (type) {
    case CheckType::http:
      return "http";
    case CheckType::tcp:
      return "tcp";
    case CheckType::ttl:
      return "ttl";
  }
  return "tcp";
}

std::optional<CheckType> parse_check_type(std::string_view text) {
  if (text == "http") return CheckType::http;
  if (text == "tcp") return CheckType::tcp;
  if (text == "ttl") return CheckType::ttl;
  return std::nullopt;
}

std::string_view to_string(LbStrategy strategy) {
  switch (strategy) {
    case LbStrategy::round_robin:
      return "round_robin";
    case LbStrategy::weighted:
      return "weighted";
    case LbStrategy::least_loaded:
      return "least_loaded";
    case LbStrategy::random:
      return "random";
  }
  return "round_robin";
}

std::optional<LbStrategy> parse_lb_strategy(std::string_view text) {
  if (text == "round_robin") return LbStrategy::round_robin;
  if (text == "weighted") return LbStrategy::weighted;
  if (text == "least_loaded") return LbStrategy::least_loaded;
  if (text == "random") return LbStrategy::random;
  return std::nullopt;
}

}  // namespace store
