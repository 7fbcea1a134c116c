// The transport-independent heart of the DNS front end: query bytes in, response
// bytes (or "drop", or "look this service up first") out. UDP and TCP code only
// move bytes to and from it, so every protocol rule is testable without sockets.
//
// The processor never blocks: when a query needs a service that the lookup does
// not hold in memory, process() returns Outcome::Kind::needs_lookup with the
// parsed query (PendingQuery); the transport fetches the service
// (dns/deferred_answer.h, the one slow path of UDP and TCP) and resume() answers
// the parsed query with the result, without parsing the bytes again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dns/name_classifier.h"
#include "dns/options.h"
#include "dns/query_parser.h"
#include "dns/zone.h"
#include "store/balancing/load_balancing.h"
#include "store/lookup.h"

namespace dns {

class MessageBuilder;

enum class Transport : std::uint8_t { udp, tcp };

// A parsed query waiting for its service to be fetched: owns a copy of the
// question (the only bytes of the query the answer echoes), so the transport's
// receive buffer can be reused meanwhile. Not copyable: the classified name
// views into the query's name.
class PendingQuery {
 public:
  PendingQuery(const Query& query, const Zone& zone);
  PendingQuery(const PendingQuery&) = delete;
  PendingQuery& operator=(const PendingQuery&) = delete;

  const Query& query() const { return query_; }
  const ClassifiedName& name() const { return name_; }
  std::string_view service() const { return name_.service; }

 private:
  std::vector<std::uint8_t> question_;
  Query query_;
  ClassifiedName name_;
};

struct Outcome {
  enum class Kind : std::uint8_t {
    respond,       // send the `size` bytes at the start of the response buffer
    drop,          // send nothing (too short to answer, or a response)
    needs_lookup,  // fetch pending->service(), then resume(*pending, ...) with the result
    transfer,      // AXFR or IXFR: hand the query to the TransferHandler (dns/transfer.h)
  };
  Kind kind = Kind::drop;
  std::size_t size = 0;
  std::uint16_t rcode = 0;                        // respond: the full RCODE, extended ones included
  bool truncated = false;                         // respond: TC is set
  std::shared_ptr<const PendingQuery> pending{};  // needs_lookup
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
  // Answers a query that process() left pending, with the result of fetching its
  // service: the fetched snapshot is used instead of the lookup's cache; a failed
  // fetch (ok == false) answers SERVFAIL.
  Outcome resume(const PendingQuery& pending, Transport transport, std::span<std::uint8_t> response,
                 const store::LookupResult& fetched) const;

  const Options& options() const { return options_; }
  const Zone& zone() const { return *zone_; }

 private:
  // Writes the response to a parsed query. `early_code` is rcode_before_name's
  // verdict (0: the name decides). `snapshot` is the service's when the name
  // needs one; null there means the store could not be read (SERVFAIL).
  Outcome answer(const Query& query, std::uint16_t early_code, const ClassifiedName& name,
                 const store::ServiceSnapshot* snapshot, Transport transport,
                 std::span<std::uint8_t> response) const;
  // The RCODE (and records) for a class IN question, by the name's place in the
  // zone.
  std::uint16_t answer_in(const Query& query, const ClassifiedName& name,
                          const store::ServiceSnapshot* snapshot, MessageBuilder& message) const;

  std::shared_ptr<const Zone> zone_;
  store::ServiceLookup& lookup_;
  Options options_;
  std::unique_ptr<store::lb::Balancer> balancer_;
};

}  // namespace dns
