#include "test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <gtest/gtest.h>

namespace dns::testing {

namespace {

void put16(Bytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

std::vector<std::string> section_lines(const ldns_rr_list* list) {
  std::vector<std::string> lines;
  for (std::size_t i = 0; list != nullptr && i < ldns_rr_list_rr_count(list); ++i) {
    lines.push_back(normalize_record(ldns_rr_list_rr(list, i)));
  }
  std::ranges::sort(lines);
  return lines;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd entry{fd, POLLIN, 0};
  return ::poll(&entry, 1, static_cast<int>(left.count())) == 1;
}

bool read_exactly(int fd, std::uint8_t* data, std::size_t size,
                  std::chrono::steady_clock::time_point deadline) {
  std::size_t done = 0;
  while (done < size) {
    if (!wait_readable(fd, deadline)) return false;
    const ssize_t got = ::recv(fd, data + done, size - done, 0);
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

}  // namespace

store::Instance make_instance(const std::string& service, const std::string& id,
                              const std::string& address, std::uint16_t port, std::uint16_t weight,
                              std::vector<std::string> tags) {
  store::Instance instance;
  instance.registration.service = service;
  instance.registration.id = id;
  auto parsed = store::IpAddress::parse(address);
  if (!parsed) throw std::invalid_argument("bad address " + address);
  instance.registration.address = *parsed;
  instance.registration.port = port;
  instance.registration.weight = weight;
  std::ranges::sort(tags);
  instance.registration.tags = std::move(tags);
  return instance;
}

store::ServiceSnapshotPtr make_snapshot(const std::string& service,
                                        std::vector<store::Instance> instances) {
  auto snapshot = std::make_shared<store::ServiceSnapshot>();
  snapshot->service = service;
  snapshot->version = 1;
  std::ranges::sort(instances, {}, [](const store::Instance& i) { return i.id(); });
  snapshot->instances = std::move(instances);
  return snapshot;
}

store::ServiceSnapshotPtr make_ipv4_snapshot(const std::string& service, std::size_t count) {
  std::vector<store::Instance> instances;
  for (std::size_t i = 0; i < count; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "i%04zu", i);
    const std::string address = "10." + std::to_string((i >> 16) & 0xFF) + "." +
                                std::to_string((i >> 8) & 0xFF) + "." + std::to_string(i & 0xFF);
    instances.push_back(make_instance(service, id, address, static_cast<std::uint16_t>(1000 + i)));
  }
  return make_snapshot(service, std::move(instances));
}

FakeLookup::~FakeLookup() {
  for (std::thread& thread : threads_) thread.join();
}

void FakeLookup::set(store::ServiceSnapshotPtr snapshot) {
  std::lock_guard lock(mutex_);
  services_[snapshot->service] = std::move(snapshot);
}

store::ServiceSnapshotPtr FakeLookup::find_cached(std::string_view service) {
  std::lock_guard lock(mutex_);
  cached_queries_.emplace_back(service);
  if (!cached) return nullptr;
  const auto it = services_.find(service);
  if (it != services_.end()) return it->second;
  // A cache that knows the service is absent answers with an empty snapshot.
  auto empty = std::make_shared<store::ServiceSnapshot>();
  empty->service = std::string(service);
  return empty;
}

store::LookupResult FakeLookup::result_for(const std::string& service) {
  std::lock_guard lock(mutex_);
  if (fail_fetches) return {false, nullptr, "database unavailable"};
  const auto it = services_.find(service);
  if (it != services_.end()) return {true, it->second, {}};
  auto empty = std::make_shared<store::ServiceSnapshot>();
  empty->service = service;
  return {true, empty, {}};
}

void FakeLookup::fetch(std::string service, std::function<void(store::LookupResult)> done) {
  std::lock_guard lock(mutex_);
  ++fetch_count_;
  threads_.emplace_back(
      [this, service = std::move(service), done = std::move(done)] { done(result_for(service)); });
}

int FakeLookup::fetch_count() const {
  std::lock_guard lock(mutex_);
  return fetch_count_;
}

std::vector<std::string> FakeLookup::cached_queries() const {
  std::lock_guard lock(mutex_);
  return cached_queries_;
}

Bytes make_query(const QuerySpec& spec) {
  Bytes out;
  put16(out, spec.id);
  put16(out, static_cast<std::uint16_t>((spec.opcode << 11) | (spec.rd ? 0x0100 : 0)));
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, spec.edns_payload ? 1 : 0);
  std::string name = spec.name;
  if (name.ends_with('.')) name.pop_back();
  std::size_t start = 0;
  while (!name.empty() && start <= name.size()) {
    const std::size_t dot = std::min(name.find('.', start), name.size());
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
               name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  put16(out, spec.type);
  put16(out, spec.rrclass);
  if (spec.edns_payload) {
    out.push_back(0);
    put16(out, 41);
    put16(out, *spec.edns_payload);
    out.push_back(0);
    out.push_back(spec.edns_version);
    put16(out, spec.dnssec_ok ? 0x8000 : 0);
    put16(out, static_cast<std::uint16_t>(spec.edns_options.size()));
    out.insert(out.end(), spec.edns_options.begin(), spec.edns_options.end());
  }
  return out;
}

Response::Response(const Bytes& wire) : Response(wire.data(), wire.size()) {}

Response::Response(const std::uint8_t* data, std::size_t size) {
  if (ldns_wire2pkt(&packet_, data, size) != LDNS_STATUS_OK) packet_ = nullptr;
}

Response::~Response() {
  if (packet_ != nullptr) ldns_pkt_free(packet_);
}

Response::Response(Response&& other) noexcept : packet_(std::exchange(other.packet_, nullptr)) {}

ldns_pkt_rcode Response::rcode() const {
  return ldns_pkt_get_rcode(packet_);
}
bool Response::aa() const {
  return ldns_pkt_aa(packet_);
}
bool Response::tc() const {
  return ldns_pkt_tc(packet_);
}
bool Response::rd() const {
  return ldns_pkt_rd(packet_);
}
bool Response::ra() const {
  return ldns_pkt_ra(packet_);
}
std::uint16_t Response::id() const {
  return ldns_pkt_id(packet_);
}

std::string Response::question_name() const {
  const ldns_rr_list* question = ldns_pkt_question(packet_);
  if (question == nullptr || ldns_rr_list_rr_count(question) != 1) return {};
  char* text = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(question, 0)));
  std::string result(text);
  std::free(text);
  return result;
}

std::vector<std::string> Response::answer() const {
  return section_lines(ldns_pkt_answer(packet_));
}
std::vector<std::string> Response::authority() const {
  return section_lines(ldns_pkt_authority(packet_));
}
std::vector<std::string> Response::additional() const {
  return section_lines(ldns_pkt_additional(packet_));
}
std::size_t Response::answer_count() const {
  return ldns_rr_list_rr_count(ldns_pkt_answer(packet_));
}
std::size_t Response::additional_count() const {
  return ldns_rr_list_rr_count(ldns_pkt_additional(packet_));
}
bool Response::has_opt() const {
  return ldns_pkt_edns(packet_);
}
std::uint16_t Response::opt_payload() const {
  return ldns_pkt_edns_udp_size(packet_);
}
std::uint8_t Response::extended_rcode() const {
  return ldns_pkt_edns_extended_rcode(packet_);
}
bool Response::dnssec_ok() const {
  return ldns_pkt_edns_do(packet_);
}

std::string normalize_record(const ldns_rr* rr) {
  ldns_rr* copy = ldns_rr_clone(rr);
  ldns_dname2canonical(ldns_rr_owner(copy));
  char* text = ldns_rr2str(copy);
  std::string line(text);
  std::free(text);
  ldns_rr_free(copy);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

std::vector<std::string> records(const std::vector<std::string>& zone_lines) {
  std::vector<std::string> lines;
  for (const std::string& text : zone_lines) {
    ldns_rr* rr = nullptr;
    const ldns_status status = ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr);
    if (status != LDNS_STATUS_OK) {
      ADD_FAILURE() << "bad expected record '" << text << "': " << ldns_get_errorstr_by_id(status);
      continue;
    }
    lines.push_back(normalize_record(rr));
    ldns_rr_free(rr);
  }
  std::ranges::sort(lines);
  return lines;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "dns-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& content) const {
  const auto file = path_ / name;
  std::FILE* out = std::fopen(file.c_str(), "w");
  if (out == nullptr) throw std::runtime_error("cannot write " + file.string());
  std::fwrite(content.data(), 1, content.size(), out);
  std::fclose(out);
  return file;
}

std::optional<Bytes> udp_exchange(std::uint16_t port, const Bytes& query,
                                  std::chrono::milliseconds timeout) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM, 0));
  const sockaddr_in address = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return std::nullopt;
  }
  if (::send(fd.get(), query.data(), query.size(), 0) < 0) return std::nullopt;
  if (!wait_readable(fd.get(), std::chrono::steady_clock::now() + timeout)) return std::nullopt;
  Bytes response(65535);
  const ssize_t got = ::recv(fd.get(), response.data(), response.size(), 0);
  if (got < 0) return std::nullopt;
  response.resize(static_cast<std::size_t>(got));
  return response;
}

UdpBurst udp_burst(std::uint16_t port, const std::vector<Bytes>& queries, const std::string& source,
                   std::chrono::milliseconds quiet) {
  UdpBurst burst;
  Fd fd(::socket(AF_INET, SOCK_DGRAM, 0));
  // Room for every reply while the queries are still being sent.
  const int buffer = 4 * 1024 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  if (::inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    return burst;
  }
  const sockaddr_in address = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return burst;
  }
  const auto started = std::chrono::steady_clock::now();
  for (const Bytes& query : queries) {
    if (::send(fd.get(), query.data(), query.size(), 0) < 0) return burst;
  }
  Bytes reply(65535);
  while (wait_readable(fd.get(), std::chrono::steady_clock::now() + quiet)) {
    const ssize_t got = ::recv(fd.get(), reply.data(), reply.size(), 0);
    if (got < 0) break;
    burst.replies.emplace_back(reply.begin(), reply.begin() + got);
    burst.elapsed = std::chrono::steady_clock::now() - started;
  }
  return burst;
}

Bytes frame(const Bytes& message) {
  Bytes out;
  put16(out, static_cast<std::uint16_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

std::optional<std::vector<std::string>> a_record_addresses(std::uint16_t port,
                                                           const std::string& name,
                                                           std::chrono::milliseconds timeout) {
  const auto reply = udp_exchange(port, make_query({.name = name, .type = 1}), timeout);
  if (!reply) return std::nullopt;
  const Response response(*reply);
  if (!response.parsed()) return std::nullopt;
  std::vector<std::string> addresses;
  for (const auto& line : response.answer()) addresses.push_back(line.substr(line.rfind('\t') + 1));
  std::sort(addresses.begin(), addresses.end());
  return addresses;
}

std::optional<Bytes> tcp_exchange(std::uint16_t port, const Bytes& query,
                                  std::chrono::milliseconds timeout) {
  TcpClient client(port);
  if (!client.connected()) return std::nullopt;
  return client.ask(query, timeout);
}

TcpClient::TcpClient(std::uint16_t port, const char* source)
    : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
  if (source != nullptr) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source, &local.sin_addr) != 1 ||
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
      return;
    }
  }
  const sockaddr_in address = loopback(port);
  connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

TcpClient::~TcpClient() {
  ::close(fd_);
}

bool TcpClient::send(const Bytes& bytes) {
  return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(bytes.size());
}

std::optional<Bytes> TcpClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<std::uint8_t, 2> prefix{};
  if (!read_exactly(fd_, prefix.data(), 2, deadline)) return std::nullopt;
  Bytes message(static_cast<std::size_t>((prefix[0] << 8) | prefix[1]));
  if (!read_exactly(fd_, message.data(), message.size(), deadline)) return std::nullopt;
  return message;
}

std::optional<Bytes> TcpClient::ask(const Bytes& query, std::chrono::milliseconds timeout) {
  if (!send(frame(query))) return std::nullopt;
  return receive(timeout);
}

bool TcpClient::closed_by_peer(std::chrono::milliseconds timeout) {
  if (!wait_readable(fd_, std::chrono::steady_clock::now() + timeout)) return false;
  std::uint8_t byte;
  return ::recv(fd_, &byte, 1, 0) <= 0;
}

Tally tally(const UdpBurst& burst) {
  Tally counts;
  for (const Bytes& reply : burst.replies) {
    const Response response(reply);
    if (response.parsed() && !response.tc() && response.answer_count() > 0) {
      ++counts.answered;
    } else if (response.parsed() && response.tc() && response.answer_count() == 0) {
      ++counts.slipped;
    } else {
      ++counts.other;
    }
  }
  return counts;
}

std::optional<std::string> run_command(const std::string& command) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string output;
  std::array<char, 4096> chunk{};
  std::size_t got = 0;
  while ((got = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0)
    output.append(chunk.data(), got);
  const int status = ::pclose(pipe);
  if (status == -1) return std::nullopt;
  return output;
}

bool command_exists(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

std::string source_dir() {
  return DISCOVERYD_SOURCE_DIR;
}

}  // namespace dns::testing
