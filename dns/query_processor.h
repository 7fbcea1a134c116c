// The transport-independent heart of the DNS front end: query bytes in, response
// bytes (or "drop", or "look this service up first") out. UDP and TCP code only
// move bytes to and from it, so every protocol rule is testable without sockets.
//
// The processor never blocks: when a query needs a service that the lookup does
// not hold in memory, process() returns Outcome::Kind::needs_lookup; the caller
// fetches the service (ServiceLookup::fetch) and calls process() again with the
// result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dns/options.h"
#include "dns/zone.h"
#include "store/balancing/load_balancing.h"
#include "store/lookup.h"

namespace dns {

enum class Transport : std::uint8_t { udp, tcp };

struct Outcome {
  enum class Kind : std::uint8_t {
    respond,       // send the `size` bytes at the start of the response buffer
    drop,          // send nothing (too short to answer, or a response)
    needs_lookup,  // fetch `service`, then call process() again with the result
  };
  Kind kind = Kind::drop;
  std::size_t size = 0;
  std::uint16_t rcode = 0;  // respond: the full RCODE, extended ones included
  bool truncated = false;   // respond: TC is set
  std::string service{};    // needs_lookup
  // The bytes are not a DNS message we could read: shorter than a header (drop)
  // or unparsable after it (FORMERR). A stream transport cannot trust the rest of
  // the stream and closes the connection after sending the response, if any.
  bool malformed = false;
};

class QueryProcessor {
 public:
  QueryProcessor(std::shared_ptr<const Zone> zone, store::ServiceLookup& lookup, Options options);

  // The response buffer size a transport needs: responses never exceed it.
  std::size_t buffer_size(Transport transport) const;

  // Answers `query` into `response`; thread-safe (the only mutable state, the
  // load balancer's rotation counters, is synchronised).
  Outcome process(std::span<const std::uint8_t> query, Transport transport,
                  std::span<std::uint8_t> response) const;
  // The same, with the result of fetching the service that a previous call asked
  // for: its snapshot is used instead of the lookup's cache; a failed fetch
  // (ok == false) answers SERVFAIL.
  Outcome process(std::span<const std::uint8_t> query, Transport transport,
                  std::span<std::uint8_t> response, const store::LookupResult& fetched) const;

  const Options& options() const { return options_; }
  const Zone& zone() const { return *zone_; }

 private:
  Outcome run(std::span<const std::uint8_t> query, Transport transport,
              std::span<std::uint8_t> response, const store::LookupResult* fetched) const;

  std::shared_ptr<const Zone> zone_;
  store::ServiceLookup& lookup_;
  Options options_;
  std::unique_ptr<store::lb::Balancer> balancer_;
};

}  // namespace dns
