// Shared helpers of the DNS tests: a fake ServiceLookup, query construction by
// hand (independent of the code under test), response inspection through ldns,
// and small socket clients.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dns/ldns.h"
#include "store/lookup.h"

namespace dns::testing {

using Bytes = std::vector<std::uint8_t>;

store::Instance make_instance(const std::string& service, const std::string& id,
                              const std::string& address, std::uint16_t port = 8080,
                              std::uint16_t weight = 1, std::vector<std::string> tags = {});
// Instances "i0000".."i<count-1>" at 10.x.y.z (IPv4) in id order.
store::ServiceSnapshotPtr make_snapshot(const std::string& service,
                                        std::vector<store::Instance> instances);
store::ServiceSnapshotPtr make_ipv4_snapshot(const std::string& service, std::size_t count);

// A ServiceLookup with scripted contents. find_cached() answers from `services`
// when `cached` is true; fetch() answers on a separate thread (as real
// implementations may), or fails when `fail_fetches` is set.
class FakeLookup : public store::ServiceLookup {
 public:
  ~FakeLookup() override;
  void set(store::ServiceSnapshotPtr snapshot);
  store::ServiceSnapshotPtr find_cached(std::string_view service) override;
  void fetch(std::string service, std::function<void(store::LookupResult)> done) override;

  store::LookupResult result_for(const std::string& service);
  int fetch_count() const;
  std::vector<std::string> cached_queries() const;

  bool cached = true;
  bool fail_fetches = false;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, store::ServiceSnapshotPtr, std::less<>> services_;
  std::vector<std::string> cached_queries_;
  int fetch_count_ = 0;
  std::vector<std::thread> threads_;
};

struct QuerySpec {
  std::string name;
  std::uint16_t type = LDNS_RR_TYPE_A;
  std::uint16_t rrclass = LDNS_RR_CLASS_IN;
  std::uint16_t id = 0x1234;
  bool rd = true;
  std::uint8_t opcode = 0;
  std::optional<std::uint16_t> edns_payload{};  // set: add an OPT record
  std::uint8_t edns_version = 0;
  bool dnssec_ok = false;
  Bytes edns_options{};  // raw OPT RDATA
};
Bytes make_query(const QuerySpec& spec);

// A parsed response; test failures name what ldns could not read.
class Response {
 public:
  explicit Response(const Bytes& wire);
  explicit Response(const std::uint8_t* data, std::size_t size);
  ~Response();
  Response(Response&& other) noexcept;
  Response(const Response&) = delete;
  Response& operator=(const Response&) = delete;

  bool parsed() const { return packet_ != nullptr; }
  const ldns_pkt* packet() const { return packet_; }
  ldns_pkt_rcode rcode() const;  // 4-bit header RCODE
  bool aa() const;
  bool tc() const;
  bool rd() const;
  bool ra() const;
  std::uint16_t id() const;
  std::string question_name() const;  // as received (case kept)
  // Records of a section as sorted presentation lines ("name ttl class type rdata").
  std::vector<std::string> answer() const;
  std::vector<std::string> authority() const;
  std::vector<std::string> additional() const;
  std::size_t answer_count() const;
  std::size_t additional_count() const;
  bool has_opt() const;
  std::uint16_t opt_payload() const;
  std::uint8_t extended_rcode() const;
  bool dnssec_ok() const;

 private:
  ldns_pkt* packet_ = nullptr;
};

// Records in zone-file syntax, parsed and printed by ldns so they compare equal
// with Response's lines; sorted.
std::vector<std::string> records(const std::vector<std::string>& zone_lines);
// ldns_rr_new_frm_str + ldns_rr2str, lower-cased owner; for sorting comparisons.
std::string normalize_record(const ldns_rr* rr);

// A temporary directory removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// Socket clients with deadlines (never block a test forever).
std::optional<Bytes> udp_exchange(std::uint16_t port, const Bytes& query,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(2));
std::optional<Bytes> tcp_exchange(std::uint16_t port, const Bytes& query,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
Bytes frame(const Bytes& message);  // 2-byte length prefix
// The addresses of the A records answered for `name` over UDP, sorted; nullopt
// when no parsable answer arrived within `timeout`.
std::optional<std::vector<std::string>> a_record_addresses(
    std::uint16_t port, const std::string& name,
    std::chrono::milliseconds timeout = std::chrono::seconds(2));

// A TCP connection to a DNS server on loopback, closed at destruction. `source`:
// the local address (any 127/8 address is a distinct client on loopback).
class TcpClient {
 public:
  explicit TcpClient(std::uint16_t port, const char* source = nullptr);
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const Bytes& bytes);
  // The next framed message, or nullopt on EOF/timeout.
  std::optional<Bytes> receive(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Sends `query` framed and returns the next message.
  std::optional<Bytes> ask(const Bytes& query,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True when the server closed the connection before the deadline.
  bool closed_by_peer(std::chrono::milliseconds timeout);

 private:
  int fd_;
  bool connected_ = false;
};

// Sends every query from one UDP socket bound to `source` (any 127/8 address is a
// distinct client on loopback) as fast as it can, then collects replies until
// none came for `quiet`. `elapsed` runs from the first send to the last reply.
struct UdpBurst {
  std::vector<Bytes> replies;
  std::chrono::steady_clock::duration elapsed{};
};
UdpBurst udp_burst(std::uint16_t port, const std::vector<Bytes>& queries,
                   const std::string& source = "127.0.0.1",
                   std::chrono::milliseconds quiet = std::chrono::milliseconds(500));

// Replies of a UDP burst by kind: an answer, an empty TC=1 slip of the rate
// limiter, or anything else.
struct Tally {
  int answered = 0;
  int slipped = 0;
  int other = 0;
};
Tally tally(const UdpBurst& burst);

// Runs a command, returns its standard output (nullopt if it could not run).
std::optional<std::string> run_command(const std::string& command);
bool command_exists(const std::string& name);
// Polls `condition` until true or the deadline passes.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));

std::string source_dir();  // the repository root

}  // namespace dns::testing
