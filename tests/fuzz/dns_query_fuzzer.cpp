// libFuzzer target: arbitrary bytes into the DNS query processor, over both
// transports, through the cached path and the fetched path (ok and failed).
// Invariants beyond "no crash or sanitizer report": responses stay inside the
// buffer, carry a full header and echo the query ID.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dns/query_processor.h"
#include "dns/zone.h"

namespace {

constexpr const char* kZone = R"(
$ORIGIN discovery.
$TTL 300
@     5   IN SOA ns1 hostmaster 1 3600 600 86400 5
@         IN NS  ns1
@         IN MX  10 mail
ns1       IN A   127.0.0.1
ns1       IN AAAA ::1
mail      IN A   192.0.2.25
www       IN A   192.0.2.80
www       IN TXT "hello"
alias     IN CNAME www
a.b.deep  IN A   192.0.2.99
)";

store::Instance instance(const char* id, const char* address, std::vector<std::string> tags) {
  store::Instance result;
  result.registration.service = "web";
  result.registration.id = id;
  result.registration.address = *store::IpAddress::parse(address);
  result.registration.port = 8080;
  result.registration.weight = 3;
  result.registration.tags = std::move(tags);
  return result;
}

// "web" is cached; every other service needs a fetch.
class FuzzLookup : public store::ServiceLookup {
 public:
  FuzzLookup() {
    auto snapshot = std::make_shared<store::ServiceSnapshot>();
    snapshot->service = "web";
    snapshot->instances = {instance("a1", "10.0.0.1", {"primary"}),
                           instance("a2", "10.0.0.2", {"canary", "primary"}),
                           instance("b6", "2001:db8::6", {})};
    web_ = snapshot;
  }
  store::ServiceSnapshotPtr find_cached(std::string_view service) override {
    return service == "web" ? web_ : nullptr;
  }
  void fetch(std::string, std::function<void(store::LookupResult)> done) override {
    done({true, web_, {}});
  }
  store::ServiceSnapshotPtr web() const { return web_; }

 private:
  store::ServiceSnapshotPtr web_;
};

void check(bool condition) {
  if (!condition) std::abort();
}

void check_response(const dns::Outcome& outcome, std::span<const std::uint8_t> query,
                    std::span<const std::uint8_t> response) {
  if (outcome.kind != dns::Outcome::Kind::respond) return;
  check(outcome.size >= 12 && outcome.size <= response.size());
  check(response[0] == query[0] && response[1] == query[1]);
  check((response[2] & 0x80) != 0);  // QR
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FuzzLookup lookup;
  static dns::Options options = [] {
    dns::Options o;
    o.version_bind = "fuzz";
    return o;
  }();
  static const dns::QueryProcessor processor(dns::Zone::parse(kZone, "discovery."), lookup,
                                             options);
  static std::vector<std::uint8_t> buffer(processor.buffer_size(dns::Transport::tcp));

  const std::span<const std::uint8_t> query(data, size);
  for (const dns::Transport transport : {dns::Transport::udp, dns::Transport::tcp}) {
    const std::span<std::uint8_t> response(buffer.data(), processor.buffer_size(transport));
    const dns::Outcome outcome = processor.process(query, transport, response);
    check_response(outcome, query, response);
    if (outcome.kind == dns::Outcome::Kind::needs_lookup) {
      check(outcome.pending && !outcome.pending->service().empty());
      // The same query answered from a fetched snapshot, and from a failed fetch.
      const store::LookupResult fetched{true, lookup.web(), {}};
      check_response(processor.resume(*outcome.pending, transport, response, fetched), query,
                     response);
      const store::LookupResult failed{false, nullptr, "down"};
      const dns::Outcome servfail = processor.resume(*outcome.pending, transport, response, failed);
      check_response(servfail, query, response);
      check(servfail.kind == dns::Outcome::Kind::respond && servfail.rcode == 2);
    }
  }
  return 0;
}
