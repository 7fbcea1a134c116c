// Step three of answering: the RFC 1034 section 4.3.2 decisions for a name that is
// in the zone. Given the classified name (and the service snapshot when the name
// is dynamic) it writes the answer, authority and additional sections and returns
// the RCODE: NXDOMAIN or NODATA with the SOA for negative caching (RFC 2308),
// minimal ANY answers (RFC 8482), TC when answer or authority records are cut.
#pragma once

#include <cstdint>

#include "dns/message_builder.h"
#include "dns/name_classifier.h"
#include "dns/options.h"
#include "dns/query_parser.h"
#include "dns/zone.h"
#include "store/balancing/instance_selection.h"
#include "store/model.h"

namespace dns {

using store::lb::InstanceSelection;

class Responder {
 public:
  Responder(const Zone& zone, const Options& options, const Query& query, MessageBuilder& message);

  // A node of the zone file. Returns the RCODE.
  std::uint16_t answer_static(const ZoneNode& node);
  // Always-present empty non-terminals.
  std::uint16_t answer_structural() { return nodata(); }
  std::uint16_t answer_nonexistent() { return nxdomain(); }
  // A dynamic name (ClassifiedName::needs_service()) with its service's snapshot.
  // Instances are ordered by the service's strategy (the snapshot's, else
  // Options::default_lb) with `balancer`'s rotation and random state.
  std::uint16_t answer_dynamic(const ClassifiedName& name, const store::ServiceSnapshot& snapshot,
                               store::lb::Balancer& balancer);

 private:
  std::uint16_t nxdomain();
  std::uint16_t nodata();
  std::uint16_t positive_or_nodata(bool complete);
  void add_negative_soa();
  bool add_static_rrset(Section section, Owner owner, const StaticRRset& rrset);
  void add_static_additionals(const StaticRRset& rrset);
  std::uint16_t answer_addresses(const InstanceSelection& selection);
  std::uint16_t answer_srv(const InstanceSelection& selection);
  void mark_truncated() { message_.set_flags(flag::tc); }

  const Zone& zone_;
  const Options& options_;
  const Query& query_;
  MessageBuilder& message_;
};

}  // namespace dns
