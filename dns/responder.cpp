#include "dns/responder.h"

#include <array>

#include "dns/record_builders.h"

namespace dns {

Responder::Responder(const Zone& zone, const Options& options, const Query& query,
                     MessageBuilder& message)
    : zone_(zone), options_(options), query_(query), message_(message) {
  message_.set_flags(flag::aa);  // every name in the zone is ours
}

std::uint16_t Responder::nxdomain() {
  add_negative_soa();
  return rcode::nxdomain;
}

std::uint16_t Responder::nodata() {
  add_negative_soa();
  return rcode::noerror;
}

// RFC 2308 section 3: the SOA goes in the authority section with a TTL that tells
// resolvers how long to cache the negative answer.
void Responder::add_negative_soa() {
  std::array<std::uint8_t, Zone::kMaxSoaRdata> rdata;
  const std::uint32_t ttl = options_.negative_ttl.value_or(zone_.negative_ttl());
  if (!message_.add_record(Section::authority, Owner::name(zone_.apex()), rrtype::soa, rrclass::in,
                           ttl, zone_.soa_rdata(rdata))) {
    mark_truncated();
  }
}

// A positive answer that turned out empty (e.g. AAAA where only IPv4 exists) is
// NODATA; a cut one is TC.
std::uint16_t Responder::positive_or_nodata(bool complete) {
  if (!complete) {
    mark_truncated();
    return rcode::noerror;
  }
  return message_.count(Section::answer) == 0 ? nodata() : rcode::noerror;
}

bool Responder::add_static_rrset(Section section, Owner owner, const StaticRRset& rrset) {
  if (rrset.type == rrtype::soa) {  // the apex's: the serial is live
    std::array<std::uint8_t, Zone::kMaxSoaRdata> rdata;
    return message_.add_record(section, owner, rrset.type, rrclass::in, rrset.ttl,
                               zone_.soa_rdata(rdata));
  }
  for (const auto& rdata : rrset.rdatas) {
    if (!message_.add_record(section, owner, rrset.type, rrclass::in, rrset.ttl, rdata)) {
      return false;
    }
  }
  return true;
}

// Addresses of in-zone NS/MX/SRV targets; optional, so running out of room just
// stops adding them (RFC 2181 section 9: no TC for the additional section).
void Responder::add_static_additionals(const StaticRRset& rrset) {
  for (const ZoneNode* target : rrset.additional_nodes) {
    for (const std::uint16_t type : {rrtype::a, rrtype::aaaa}) {
      const StaticRRset* addresses = target->find(type);
      if (addresses &&
          !add_static_rrset(Section::additional, Owner::name(target->name), *addresses)) {
        return;
      }
    }
  }
}

std::uint16_t Responder::answer_static(const ZoneNode& node) {
  const StaticRRset* rrset = nullptr;
  if (query_.qtype == rrtype::any) {
    // RFC 8482 section 4.1: answer with one RRset of the name, not all of them.
    rrset = node.rrsets.empty() ? nullptr : &node.rrsets.front();
  } else {
    rrset = node.find(query_.qtype);
    // A CNAME answers every other type; following it is left to the resolver.
    if (rrset == nullptr) rrset = node.find(rrtype::cname);
  }
  if (rrset == nullptr) return nodata();
  if (!add_static_rrset(Section::answer, Owner::question(), *rrset)) {
    mark_truncated();
    return rcode::noerror;
  }
  add_static_additionals(*rrset);
  return rcode::noerror;
}

std::uint16_t Responder::answer_addresses(const InstanceSelection& selection) {
  const bool want_a = query_.qtype == rrtype::a || query_.qtype == rrtype::any;
  const bool want_aaaa = query_.qtype == rrtype::aaaa || query_.qtype == rrtype::any;
  bool complete = true;
  // The cap (max_answer_records) counts A and AAAA together and applies after
  // ordering, so the few addresses a client sees are the balanced first ones.
  std::size_t added = 0;
  if (want_a) {
    complete =
        add_address_records(message_, Section::answer, Owner::question(), selection, rrtype::a,
                            options_.answer_ttl, options_.max_answer_records, added);
  }
  if (complete && want_aaaa) {
    complete =
        add_address_records(message_, Section::answer, Owner::question(), selection, rrtype::aaaa,
                            options_.answer_ttl, options_.max_answer_records, added);
  }
  return positive_or_nodata(complete);
}

std::uint16_t Responder::answer_srv(const InstanceSelection& selection) {
  const RecordSettings settings{zone_.apex(), options_.answer_ttl, options_.srv_priority,
                                options_.compress_srv_targets};
  if (!add_srv_records(message_, selection, settings)) return positive_or_nodata(false);
  add_srv_target_addresses(message_, selection, settings);
  return positive_or_nodata(true);
}

std::uint16_t Responder::answer_dynamic(const ClassifiedName& name,
                                        const store::ServiceSnapshot& snapshot,
                                        store::lb::Balancer& balancer) {
  // Reused by every query of this thread: ordering allocates nothing in the
  // steady state.
  thread_local std::vector<const store::Instance*> storage;
  InstanceSelection selection(snapshot, name.tag, name.instance_id, storage);
  // A dynamic name exists exactly while it selects an instance.
  if (selection.empty()) return nxdomain();
  selection.balance(balancer, snapshot.lb.value_or(options_.default_lb));
  const std::uint16_t qtype = query_.qtype;
  switch (name.kind) {
    case NameKind::service:
      // ANY: the address RRsets only (RFC 8482 lets us pick; SRV is the big one).
      if (qtype == rrtype::a || qtype == rrtype::aaaa || qtype == rrtype::any) {
        return answer_addresses(selection);
      }
      if (qtype == rrtype::srv) return answer_srv(selection);
      return nodata();
    case NameKind::service_srv:
      if (qtype == rrtype::srv || qtype == rrtype::any) return answer_srv(selection);
      return nodata();
    case NameKind::instance:
      if (qtype == rrtype::a || qtype == rrtype::aaaa || qtype == rrtype::any) {
        return answer_addresses(selection);
      }
      return nodata();
    case NameKind::service_instances:
    default:
      return nodata();
  }
}

}  // namespace dns
